"""The delivery harvest: one job per provider that finds the products delivered for the owned
orders waiting for delivery and feeds each to its order.

Each cycle calls ``TaskingProvider.find_deliveries`` once with the placed orders of every owned
order that may still get products (``OrderState.awaiting_delivery``, read from the store index,
nothing decoded) and the provider's cursor from the previous cycle; the adapter pages through
the provider's listings, so the calls grow with new products, not with waiting orders. Each
product goes to its order through ``Runner.deliver_product``; the domain core publishes it
once per item id.

The cursor lives in memory, per provider. It starts from ``None`` (look back over everything the
orders could have) when the process starts and whenever new partitions were assigned since the
previous cycle: their orders' products may be older than the cursor. Re-harvesting is safe:
the state dedupes by item id, so an item seen again publishes nothing.

Orders the provider finished (phase ``AWAITING_DELIVERY``) are passed with
``PlacedOrder.finished``, so the adapter may look their products up directly; what it reports
settled (``DeliveryHarvest.settled``) goes to the order after its products
(``Runner.settle_delivery``). ``COMPLETED`` orders within
``TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS`` of their completion (``completed``) are
harvested too, so products that appear later are still published.

Failure modes: a read or item that fails inside the adapter affects only its products
(``DeliveryHarvest.skipped``, counted in ``tasking_delivery_errors_total``). A harvest that
raises is logged and counted too, and the cursor stays where it was, so the next cycle tries
the same range again. One product that cannot be applied is logged and counted, the others go
on, and the cursor does not move past the cycle, so that product is tried again.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker import cooperative
from worker.domain.model import Phase
from worker.domain.ports import DeliveryHarvest, PlacedOrder, TaskingProvider
from worker.events.models import Provider
from worker.events.products import DeliveredProduct
from worker.kafka.statecodec import OrderIndex
from worker.runtime.timers import every

log = structlog.get_logger(__name__)


class HarvestMetrics(Protocol):
    def scheduler_job(self, job: str, ok: bool) -> None: ...

    def delivery_error(self, provider: str) -> None: ...


Deliver = Callable[[str, DeliveredProduct, datetime], Awaitable[None]]
Settle = Callable[[str, str, list[str], datetime], Awaitable[None]]
Waiting = Callable[[Provider], Iterable[OrderIndex]]


async def _no_settle(request_id: str, tracking_key: str, item_ids: list[str], at: datetime) -> None:
    return None


@dataclass
class DeliveryHarvester:
    """One delivery harvest per provider, every ``interval`` seconds (see the module docstring)."""

    scheduler: AsyncIOScheduler
    providers: dict[Provider, TaskingProvider]
    waiting: Waiting
    deliver: Deliver
    metrics: HarvestMetrics
    interval: float
    clock: Callable[[], datetime]
    owned: Callable[[], Collection[int]] = lambda: ()
    completed: Waiting = lambda _: ()  # COMPLETED orders still within the harvest window
    settle: Settle = _no_settle
    _cursors: dict[Provider, str | None] = field(default_factory=dict)
    _seen_partitions: dict[Provider, frozenset[int]] = field(default_factory=dict)
    _running: set[Provider] = field(default_factory=set)

    def start(self) -> None:
        for name in self.providers:
            every(
                self.scheduler,
                f"deliveries:{name.value}",
                self.interval,
                self.run_cycle,
                name,
                misfire_grace_time=None,
            )

    def cursor(self, name: Provider) -> str | None:
        return self._cursors.get(name)

    def _cursor_for_cycle(self, name: Provider) -> str | None:
        """The stored cursor, or ``None`` when partitions were assigned since the last cycle."""
        owned = frozenset(self.owned())
        if not owned <= self._seen_partitions.get(name, frozenset()):
            self._cursors[name] = None
        self._seen_partitions[name] = owned
        return self._cursors.get(name)

    async def run_cycle(self, name: Provider) -> int:
        """Harvest one provider; returns how many products were fed to their orders."""
        if name in self._running:
            return 0
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(provider=name.value)
        self._running.add(name)
        try:
            return await self._harvest(name)
        except Exception:
            self.metrics.scheduler_job("deliveries", False)
            self.metrics.delivery_error(name.value)
            log.exception("delivery_harvest_failed", provider=name.value)
            return 0
        finally:
            self._running.discard(name)

    async def _harvest(self, name: Provider) -> int:
        cursor = self._cursor_for_cycle(name)
        orders: dict[str, tuple[str, PlacedOrder]] = {}
        slicer = cooperative.Slicer()  # ~3 µs an order: hand the loop back at 100,000 of them
        for index in itertools.chain(self.waiting(name), self.completed(name)):
            assert index.tracking_key is not None
            finished = index.phase is Phase.AWAITING_DELIVERY
            placed = PlacedOrder(tracking_key=index.tracking_key, refs=index.refs or {}, finished=finished)
            orders[index.tracking_key] = (index.request_id, placed)
            if slicer.used_up():
                await slicer.rest()
        if not orders:
            self.metrics.scheduler_job("deliveries", True)
            return 0
        harvest = await self.providers[name].find_deliveries([p for _, p in orders.values()], cursor)
        for _ in range(harvest.skipped):  # one product's trouble, logged by the adapter
            self.metrics.delivery_error(name.value)
        now = self.clock()
        mine = [(orders[p.tracking_key][0], p) for p in harvest.products if p.tracking_key in orders]
        results = await cooperative.gather_in_batches(mine, lambda item: self.deliver(item[0], item[1], now))
        failed = 0
        for (request_id, product), result in zip(mine, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                self.metrics.delivery_error(name.value)
                log.error(
                    "delivery_apply_failed",
                    requestId=request_id,
                    itemId=product.item_id,
                    error=type(result).__name__,
                )
        if not failed:
            self._cursors[name] = harvest.cursor
        await self._settle(name, orders, harvest, self.clock())  # after the products: no earlier time
        self.metrics.scheduler_job("deliveries", True)
        return len(mine) - failed

    async def _settle(
        self,
        name: Provider,
        orders: dict[str, tuple[str, PlacedOrder]],
        harvest: DeliveryHarvest,
        now: datetime,
    ) -> None:
        """Feed each settled order its evidence, after its products (one failure is that order's:
        logged, counted, and reported again by the next harvest)."""
        settled = [(orders[k][0], k, ids) for k, ids in harvest.settled.items() if k in orders]
        results = await cooperative.gather_in_batches(
            settled, lambda item: self.settle(item[0], item[1], item[2], now)
        )
        for (request_id, _, _), result in zip(settled, results, strict=True):
            if isinstance(result, BaseException):
                self.metrics.delivery_error(name.value)
                log.error("delivery_settle_failed", requestId=request_id, error=type(result).__name__)
