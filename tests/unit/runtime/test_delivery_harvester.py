"""The delivery harvest: one call per cycle for every waiting order, products fed to their
orders, the cursor kept on success, held on failure, and reset when partitions are assigned."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from unit.domain.builders import product

from worker.domain.model import Phase
from worker.domain.ports import DeliveryHarvest, PlacedOrder, TaskingProvider
from worker.events.models import Provider
from worker.events.products import DeliveredProduct
from worker.events.status import OrderStatus
from worker.kafka.statecodec import OrderIndex
from worker.runtime.deliveries import DeliveryHarvester

NOW = datetime(2026, 5, 1, tzinfo=UTC)


class Metrics:
    def __init__(self) -> None:
        self.errors = 0
        self.jobs: list[tuple[str, bool]] = []

    def scheduler_job(self, job: str, ok: bool) -> None:
        self.jobs.append((job, ok))

    def delivery_error(self, provider: str) -> None:
        self.errors += 1


class ScriptedProvider:
    """Answers each harvest with the next scripted products and cursor; records the calls."""

    name = Provider.UP42

    def __init__(self, *answers: DeliveryHarvest | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], dict[str, dict[str, str]], str | None]] = []

    async def find_deliveries(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        keys = sorted(o.tracking_key for o in orders)
        self.calls.append((keys, {o.tracking_key: dict(o.refs) for o in orders}, cursor))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def index(
    n: int, phase: Phase = Phase.AWAITING_PROVIDER, status: OrderStatus = OrderStatus.IN_PROGRESS
) -> OrderIndex:
    return OrderIndex(
        f"req-{n}", None, Provider.UP42, status, phase, NOW, f"ord-{n}", False, {"orderId": f"ord-{n}"}
    )


def harvester(
    provider: ScriptedProvider, metrics: Metrics, fed: list[tuple[str, str]], owned: list[int]
) -> DeliveryHarvester:
    waiting = [index(1), index(2, Phase.AWAITING_DELIVERY)]

    async def deliver(request_id: str, found: DeliveredProduct, at: datetime) -> None:
        if found.item_id == "poison":
            raise RuntimeError("cannot apply")
        fed.append((request_id, found.item_id))

    providers: dict[Provider, TaskingProvider] = {Provider.UP42: provider}  # type: ignore[dict-item]
    return DeliveryHarvester(
        AsyncIOScheduler(timezone=UTC),
        providers,
        lambda name: waiting,
        deliver,
        metrics,
        60.0,
        lambda: NOW,
        owned=lambda: owned,
    )


async def test_one_call_for_all_waiting_orders_and_products_go_to_their_orders() -> None:
    provider = ScriptedProvider(
        DeliveryHarvest(
            products=[product("i1", "ord-1"), product("i2", "ord-2"), product("x", "ord-9")], cursor="c1"
        ),
        DeliveryHarvest(products=[], cursor="c2"),
    )
    fed: list[tuple[str, str]] = []
    h = harvester(provider, Metrics(), fed, [0])
    assert await h.run_cycle(Provider.UP42) == 2
    assert sorted(fed) == [("req-1", "i1"), ("req-2", "i2")], "a product of an unknown order is dropped"
    await h.run_cycle(Provider.UP42)
    assert [c[2] for c in provider.calls] == [None, "c1"]
    assert provider.calls[0][0] == ["ord-1", "ord-2"]
    assert provider.calls[0][1]["ord-1"] == {"orderId": "ord-1"}, (
        "the placed order's refs come from the index"
    )
    assert h.cursor(Provider.UP42) == "c2"


async def test_a_bad_product_is_counted_the_others_go_on_and_the_cursor_is_held() -> None:
    provider = ScriptedProvider(
        DeliveryHarvest(products=[product("poison", "ord-1"), product("good", "ord-2")], cursor="c1"),
        DeliveryHarvest(products=[], cursor="c2"),
    )
    metrics, fed = Metrics(), []  # type: ignore[var-annotated]
    h = harvester(provider, metrics, fed, [0])
    assert await h.run_cycle(Provider.UP42) == 1
    assert fed == [("req-2", "good")]
    assert metrics.errors == 1
    assert h.cursor(Provider.UP42) is None, "the range is harvested again: the bad product gets another try"


async def test_a_failed_harvest_is_counted_and_never_raises() -> None:
    provider = ScriptedProvider(RuntimeError("provider down"), DeliveryHarvest(products=[], cursor="c1"))
    metrics = Metrics()
    h = harvester(provider, metrics, [], [0])
    assert await h.run_cycle(Provider.UP42) == 0
    assert metrics.errors == 1
    assert ("deliveries", False) in metrics.jobs
    await h.run_cycle(Provider.UP42)
    assert [c[2] for c in provider.calls] == [None, None]


async def test_new_partitions_restart_the_harvest_from_no_cursor() -> None:
    provider = ScriptedProvider(*(DeliveryHarvest(products=[], cursor=f"c{n}") for n in range(1, 5)))
    owned = [0]
    h = harvester(provider, Metrics(), [], owned)
    await h.run_cycle(Provider.UP42)
    await h.run_cycle(Provider.UP42)
    owned.append(3)  # a rebalance assigned partition 3: its orders' products may be older than c2
    await h.run_cycle(Provider.UP42)
    owned.remove(0)  # losing a partition does not need a look back
    await h.run_cycle(Provider.UP42)
    assert [c[2] for c in provider.calls] == [None, "c1", None, "c3"]


async def test_finished_and_completed_orders_are_harvested_and_settled_after_their_products() -> None:
    seen: list[list[PlacedOrder]] = []

    class Settling:
        name = Provider.UP42

        async def find_deliveries(
            self, orders: Collection[PlacedOrder], cursor: str | None
        ) -> DeliveryHarvest:
            seen.append(list(orders))
            found = [product("i-2", "ord-2"), product("i-3", "ord-3")]
            return DeliveryHarvest(products=found, cursor="c1", settled={"ord-2": ["i-2"]}, skipped=2)

    steps: list[tuple[str, str, str]] = []

    async def deliver(request_id: str, found: DeliveredProduct, at: datetime) -> None:
        steps.append(("product", request_id, found.item_id))

    async def settle(request_id: str, key: str, item_ids: list[str], at: datetime) -> None:
        steps.append(("settled", request_id, ",".join(item_ids)))

    metrics = Metrics()
    done = index(3, Phase.DONE, OrderStatus.COMPLETED)
    providers: dict[Provider, TaskingProvider] = {Provider.UP42: Settling()}  # type: ignore[dict-item]
    harvester = DeliveryHarvester(
        AsyncIOScheduler(timezone=UTC),
        providers,
        lambda name: [index(1), index(2, Phase.AWAITING_DELIVERY)],
        deliver,
        metrics,
        60.0,
        lambda: NOW,
        completed=lambda name: [done],
        settle=settle,
    )
    assert await harvester.run_cycle(Provider.UP42) == 2
    finished = {o.tracking_key: o.finished for o in seen[0]}
    assert finished == {"ord-1": False, "ord-2": True, "ord-3": False}, "the completed order is harvested too"
    assert steps == [("product", "req-2", "i-2"), ("product", "req-3", "i-3"), ("settled", "req-2", "i-2")]
    assert metrics.errors == 2, "the adapter's skipped reads are counted"
