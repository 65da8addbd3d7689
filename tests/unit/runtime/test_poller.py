"""The poller builds a snapshot only for the polled orders its ``news`` filter lets through."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime

from unit.domain.builders import placed, request, snapshot

from worker.domain.model import OrderState, Phase
from worker.domain.ports import Known, OrderSnapshot, PolledOrder, RemotePhase
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.runtime.timers import Poller

NOW = datetime(2026, 5, 1, tzinfo=UTC)


class NoMetrics:
    def scheduler_job(self, job: str, ok: bool) -> None:
        return None

    def poll_succeeded(self, provider: str) -> None:
        return None

    def poll_error(self, provider: str, kind: str) -> None:
        return None

    def set_tracking_errors(self, provider: str, orders: int) -> None:
        return None


class CountingProvider:
    """Polled orders whose fingerprint is their index and whose builds are counted."""

    name = Provider.ONEATLAS

    def __init__(self) -> None:
        self.built: list[str] = []

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        return {key: PolledOrder(int(key[3:]), self._builder(key)) for key in keys}

    def _builder(self, key: str) -> Callable[[], OrderSnapshot]:
        def build() -> OrderSnapshot:
            self.built.append(key)
            return snapshot(RemotePhase.ACTIVE, key=key)

        return build


def tracked_order(n: int) -> OrderState:
    return OrderState(
        request=request(requestId=f"order-{n}"),
        received_at=NOW,
        phase=Phase.AWAITING_PROVIDER,
        placed=placed(f"SO-{n}"),
        status=OrderStatus.IN_PROGRESS,
    )


async def test_only_news_is_built_and_dispatched() -> None:
    orders = [tracked_order(n) for n in range(10)]
    provider = CountingProvider()
    dispatched: dict[str, OrderSnapshot] = {}

    async def dispatch(request_id: str, polled: PolledOrder, at: datetime) -> None:
        dispatched[request_id] = polled.snapshot

    poller = Poller(
        scheduler=None,  # type: ignore[arg-type]  # run_cycle only
        providers={Provider.ONEATLAS: provider},  # type: ignore[dict-item]
        tracked=lambda name: orders,
        dispatch=dispatch,
        metrics=NoMetrics(),
        interval=1.0,
        clock=lambda: NOW,
        news=lambda request_id, fingerprint: fingerprint % 3 == 0,  # "known" unless a multiple of 3
    )
    assert await poller.run_cycle(Provider.ONEATLAS) == 10  # every order was polled...
    assert sorted(dispatched) == ["order-0", "order-3", "order-6", "order-9"]  # ...four were news
    assert sorted(provider.built) == ["SO-0", "SO-3", "SO-6", "SO-9"]  # and only those were built
    assert dispatched["order-3"].tracking_key == "SO-3"


def test_a_snapshot_is_built_once_and_of_keeps_its_fingerprint() -> None:
    builds: list[int] = []

    def build() -> OrderSnapshot:
        builds.append(1)
        return snapshot(RemotePhase.ACTIVE)

    polled = PolledOrder(7, build)
    assert polled.snapshot is polled.snapshot
    assert builds == [1]
    same = snapshot(RemotePhase.ACTIVE)
    assert PolledOrder.of(same).fingerprint == PolledOrder.of(snapshot(RemotePhase.ACTIVE)).fingerprint
    assert PolledOrder.of(same).fingerprint != PolledOrder.of(snapshot(RemotePhase.ACQUIRING)).fingerprint
    assert PolledOrder.of(same).snapshot is same


class KnowingProvider(CountingProvider):
    """As :class:`CountingProvider`, but leaves out the orders ``known`` answers true for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        assert known is not None
        self.asked.extend(keys)
        return {
            key: PolledOrder(int(key[3:]), self._builder(key)) for key in keys if not known(key, int(key[3:]))
        }


async def test_the_adapter_is_handed_the_news_test_and_skipped_orders_still_count() -> None:
    orders = [tracked_order(n) for n in range(10)]
    provider = KnowingProvider()
    dispatched: list[str] = []

    async def dispatch(request_id: str, polled: PolledOrder, at: datetime) -> None:
        dispatched.append(request_id)
        polled.snapshot  # noqa: B018  # built as the runner builds it

    poller = Poller(
        scheduler=None,  # type: ignore[arg-type]  # run_cycle only
        providers={Provider.ONEATLAS: provider},  # type: ignore[dict-item]
        tracked=lambda name: orders,
        dispatch=dispatch,
        metrics=NoMetrics(),
        interval=1.0,
        clock=lambda: NOW,
        news=lambda request_id, fingerprint: fingerprint % 3 == 0,
    )
    assert await poller.run_cycle(Provider.ONEATLAS) == 10  # the known ones were listed too
    assert sorted(provider.asked) == sorted(f"SO-{n}" for n in range(10))
    assert sorted(dispatched) == ["order-0", "order-3", "order-6", "order-9"]
    assert sorted(provider.built) == ["SO-0", "SO-3", "SO-6", "SO-9"]


async def test_an_order_in_trouble_is_never_known() -> None:
    """An order whose tracking failed is delivered again whatever its fingerprint (that is how
    it recovers), so the filter handed to the adapter never leaves it out."""
    orders = [tracked_order(n) for n in range(4)]
    provider = KnowingProvider()
    failing = {"order-2"}

    async def dispatch(request_id: str, polled: PolledOrder, at: datetime) -> None:
        polled.snapshot  # noqa: B018  # built as the runner builds it
        if request_id in failing:
            raise RuntimeError("applying it failed")

    poller = Poller(
        scheduler=None,  # type: ignore[arg-type]  # run_cycle only
        providers={Provider.ONEATLAS: provider},  # type: ignore[dict-item]
        tracked=lambda name: orders,
        dispatch=dispatch,
        metrics=NoMetrics(),
        interval=1.0,
        clock=lambda: NOW,
        news=lambda request_id, fingerprint: request_id == "order-2",  # news once, then known
    )
    await poller.run_cycle(Provider.ONEATLAS)  # order-2 fails: in trouble from now on
    poller.news = lambda request_id, fingerprint: False
    failing.clear()
    provider.built.clear()
    await poller.run_cycle(Provider.ONEATLAS)  # due again at its retry cycle (the next one)
    assert provider.built == ["SO-2"]  # delivered, not known: and so it recovers
