"""The effect runner: the I/O shell around the pure domain core.

For one event of one order, :meth:`Runner.submit` does, in this order and under the order's lock:

1. ``decide(state, event)`` (pure);
2. persist the new state to the changelog and wait for the ack (an intent is now durable);
3. publish the state's outbox (status, acquisition and delivery events), then forget it in memory; a
   terminal order's cleared outbox is persisted once more so a restore does not re-send it;
4. perform the effects: timers at once, provider calls as tasks whose results come back through
   :meth:`submit` as new events.

Provider-call tasks belong to the partition of their order; :meth:`Runner.stop_partitions` cancels
them when the partition is revoked (an interrupted paid call left its intent durable, so the next
owner reconciles instead of repeating it).

Ownership is fenced (``worker.kafka.ownership``): every state write first checks the membership
lease (asking the broker when it has run out), and each write request of a paid call is preceded,
right before it is sent, by a fresh confirmation from the broker (``Runner._paid_call``), so an
instance that was frozen or cut off while its partitions moved to another instance neither writes
their orders' state nor pays for them. Work started in
one tenure of a partition (see ``StateStore.tenure``) never feeds a state restored since.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog
from aiokafka.errors import KafkaError

from worker import cooperative
from worker.domain.model import (
    CommandReceived,
    DeliveryFound,
    DeliverySettled,
    DomainEvent,
    OrderState,
    Polled,
    RequestReceived,
    TimerFired,
    TimerKind,
    TrackingFailed,
    TrackingRecovered,
)
from worker.domain.ports import PolledOrder
from worker.errors import DecodeError, OwnershipLost
from worker.events.models import Command, OrderRequest, OrderStatusEvent, Provider
from worker.events.products import DeliveredProduct
from worker.kafka.statecodec import OrderIndex
from worker.kafka.statestore import BurntId
from worker.runtime.outcomes import invalid_request_event
from worker.runtime.steps import StepLoop
from worker.runtime.timers import TrackingTrouble

log = structlog.get_logger(__name__)

_TIMER_RETRY_SECONDS = 2.0  # a timer whose step could not be written is set again this much later


@dataclass(frozen=True)
class Admission:
    """What became of a received request (:meth:`Runner.accept_request`): ``accepted`` (a new
    order), ``duplicate`` (answered with ``latest``) or ``reused`` (``latest`` is the first
    request's latest status event, to name in the dead letter)."""

    outcome: Literal["accepted", "duplicate", "reused"]
    latest: OrderStatusEvent | None


class Runner(StepLoop):
    """The effect runner's entry points, over the step loop of :mod:`worker.runtime.steps`."""

    async def accept_request(self, partition: int, request: OrderRequest, at: datetime) -> Admission:
        """Write a new request to the order state (``accepted``). A request whose id is used
        changes nothing: with the content first received under that id it is a ``duplicate``,
        answered by publishing the id's latest status event again (same ``ce_id``); with other
        content it is ``reused`` (the caller dead-letters it ``REQUEST_ID_REUSED``).

        Raises:
            KafkaError: the state could not be written, or the duplicate's answer published.
            OwnershipLost: a duplicate's partition is not confirmed (nothing published).
            StateTooLarge: the request's first state would not fit a record (nothing written).
        """
        async with self._order_lock(request.request_id):
            used = await self.store.used(request.request_id)
            if used is None:
                await self._apply(partition, request.request_id, RequestReceived(request=request, at=at))
                return Admission("accepted", None)
            if not used.matches(request):
                return Admission("reused", used.latest)
            if used.latest is not None:
                await self._fence(partition)  # only the owner speaks for the order
                await self.publisher.status(used.latest)
            return Admission("duplicate", used.latest)

    async def apply_command(self, partition: int, command: Command, at: datetime) -> bool:
        """Apply a command to its order; ``False`` when no order has that ``requestId``."""
        async with self._order_lock(command.request_id):
            if self.store.index(command.request_id) is None:  # unknown, or a burnt id
                return False
            await self._apply(partition, command.request_id, CommandReceived(command=command, at=at))
            return True

    async def reject_invalid(
        self,
        partition: int,
        request_id: str,
        error: DecodeError,
        at: datetime,
        provider: Provider | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """Publish ``REJECTED``/``INVALID_REQUEST`` for an invalid request whose id is new, and burn
        the id (a later request with it is a duplicate). An id already in use is left alone: its
        order's event stream must not be disturbed by someone else's bad message, except that
        the same invalid message sent again (``fingerprint`` equal) is answered with the id's
        latest status event once more."""
        async with self._order_lock(request_id):
            used = await self.store.used(request_id)
            if used is not None:
                if fingerprint is not None and used.fingerprint == fingerprint and used.latest is not None:
                    await self.publisher.status(used.latest)
                return
            event = invalid_request_event(request_id, error, at, provider)
            burnt = BurntId(request_id, event, fingerprint)
            await self._fence(partition)
            await self.store.persist(partition, burnt)
            await self.publisher.status(burnt.event)

    async def fire_timer(self, request_id: str, kind: TimerKind) -> None:
        """Apply a timer. When its step cannot be written (Kafka, ownership not confirmed) and
        the order is still owned, the timer is set again a little later rather than lost.

        Raises:
            KafkaError / OwnershipLost: as :meth:`submit` (after re-scheduling).
        """
        partition = self.store.partition_of(request_id)
        if partition is None:
            return
        try:
            await self.submit(partition, request_id, TimerFired(timer=kind, at=self.clock()))
        except (KafkaError, OwnershipLost):
            if self.store.owns(partition):
                again = self.clock() + timedelta(seconds=_TIMER_RETRY_SECONDS)
                self.timers.schedule(request_id, kind, again)
            raise

    def snapshot_is_news(self, request_id: str, fingerprint: int) -> bool:
        """Whether the polled order with this ``fingerprint`` must go through
        :meth:`deliver_snapshot`.

        ``False`` only when a snapshot with this fingerprint was last applied to the order's
        current, tracked state and changed nothing, and no event of the order is in progress or
        waiting: ``decide`` is pure, so applying it again would change nothing either (the only
        other input, the event's time, decides only between outcomes that end the order). This
        lets a poll cycle skip unchanged orders without decoding their state or building their
        snapshot (``PolledOrder``: equal fingerprints mean equal snapshots). Checking the lock
        table and the index in one synchronous step is what taking the order's lock would see.
        """
        if request_id in self._locks:
            return True  # an event is being applied: the state may be about to change
        seen = self.store.seen_mark(request_id)
        return seen is None or seen != fingerprint

    async def deliver_snapshot(self, request_id: str, polled: PolledOrder, at: datetime) -> None:
        """Apply a batched poll's snapshot; one that changes nothing is remembered as seen (by
        its fingerprint)."""
        partition = self.store.partition_of(request_id)
        if partition is not None:
            async with self._order_lock(request_id):
                event = Polled(snapshot=polled.snapshot, at=at)
                await self._apply(partition, request_id, event, seen=polled.fingerprint)

    async def report_tracking(
        self, request_id: str, trouble: TrackingTrouble | None, last: TrackingTrouble, at: datetime
    ) -> None:
        """Apply the poller's word on an order whose tracking keeps failing (``trouble``) or
        works again (``None``; ``last`` is what was reported): the domain core publishes the
        order's current status once more with reason ``TRACKING_ERROR`` / ``TRACKING_RECOVERED``.

        Raises:
            KafkaError / OwnershipLost: as :meth:`submit`.
        """
        partition = self.store.partition_of(request_id)
        if partition is None:
            return
        event: DomainEvent
        if trouble is not None:
            event = TrackingFailed(
                failures=trouble.failures,
                what=trouble.what,
                message=trouble.message,
                since=trouble.since,
                at=at,
            )
        else:
            event = TrackingRecovered(failures=last.failures, since=last.since, at=at)
        await self.submit(partition, request_id, event)

    async def deliver_product(self, request_id: str, product: DeliveredProduct, at: datetime) -> None:
        """Apply a harvested product to its order (published once: ``decide`` dedupes by item id).

        Raises:
            KafkaError: the state could not be persisted (the next harvest brings it again).
        """
        partition = self.store.partition_of(request_id)
        if partition is not None:
            await self.submit(partition, request_id, DeliveryFound(product=product, at=at))

    async def settle_delivery(
        self, request_id: str, tracking_key: str, item_ids: list[str], at: datetime
    ) -> None:
        """Tell an order that the provider's storage shows its delivery complete.

        Raises:
            KafkaError: the state could not be persisted (the next harvest reports it again).
        """
        partition = self.store.partition_of(request_id)
        if partition is not None:
            event = DeliverySettled(tracking_key=tracking_key, item_ids=item_ids, at=at)
            await self.submit(partition, request_id, event)

    async def resume(self, partitions: Iterable[int]) -> int:
        """After a restore: re-publish each open order's pending events and latest status (same
        ``ce_id``), rebuild its timers and resume its step. Returns the number of open orders.

        A finished order with nothing left to publish is skipped by its index, undecoded. Orders
        are resumed ``cooperative.BATCH`` at a time, concurrently within a batch: a batch's
        decoding is a bounded stretch of the event loop, its acknowledgements are awaited
        together, and no more than a batch of decoded states is held at once. One order's
        failure stays that order's: it is logged and its resume retried in the background
        while the partition's tenure lasts; the others go on."""
        work = [(p, i) for p, i in self.store.indexes(partitions) if not (i.terminal and not i.has_outbox)]
        for batch in cooperative.chunked(work, cooperative.BATCH):
            results = await asyncio.gather(
                *(self._resume_one(p, i.request_id) for p, i in batch), return_exceptions=True
            )
            for (partition, index), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    self._resume_later(partition, index.request_id, result)
        return sum(not index.terminal for _, index in work)

    async def stop_partitions(self, partitions: Iterable[int], grace: float = 0.0) -> None:
        """Stop every task of these partitions (revocation or shutdown)."""
        tasks = set().union(*(self._tasks.pop(p, set()) for p in partitions))
        if grace > 0 and tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def in_flight(self) -> int:
        return sum(len(t) for t in self._tasks.values())

    def forget_orders(self, orders: Iterable[OrderIndex]) -> None:
        """Tell each adapter to drop its per-order caches of these orders (they left this
        instance: their partition was revoked)."""
        keys: dict[str, list[str]] = defaultdict(list)
        for index in orders:
            if index.tracking_key is not None:
                keys[index.provider.value].append(index.tracking_key)
        for name, tracking_keys in keys.items():
            provider = self.providers.get(name)
            if provider is not None:
                provider.forget(tracking_keys)

    async def retire_finished(self, retention: timedelta) -> int:
        """Retire every finished order whose terminal status is older than ``retention``: its
        state is replaced by a finished record (``StateStore.retire``), so memory, restores and
        scans cost open orders, not history. Returns how many were retired.

        Orders are retired ``cooperative.BATCH`` at a time, each under its lock and after the
        ownership fence (a retirement is a state write). One order's failure is logged and
        left for the next run; the others go on. Then each partition's single finished records
        are folded into segment records (``StateStore.fold_finished``)."""
        cutoff = self.clock() - retention
        due = [
            (partition, index.request_id)
            for partition, index in self.store.indexes()
            if index.terminal and not index.has_outbox and index.since <= cutoff
        ]
        retired = 0
        for batch in cooperative.chunked(due, cooperative.BATCH):
            results = await asyncio.gather(
                *(self._retire_one(p, r) for p, r in batch), return_exceptions=True
            )
            for (_, request_id), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("retire_failed", requestId=request_id, error=type(result).__name__)
                retired += result is True
        if retired:
            log.info("finished_orders_retired", orders=retired)
        await self._fold_finished()
        return retired

    async def _fold_finished(self) -> None:
        """Fold the retired orders of each owned partition into segment records
        (``StateStore.fold_finished``), fenced before every write; a failure is logged and the
        rest waits for the next run."""
        for partition in self.store.owned_partitions():
            try:
                await self.store.fold_finished(partition, fence=functools.partial(self._fence, partition))
            except Exception as exc:
                log.warning("fold_failed", partition=partition, error=type(exc).__name__)

    async def _retire_one(self, partition: int, request_id: str) -> bool:
        async with self._order_lock(request_id):
            state = self.store.get(request_id)
            if not isinstance(state, OrderState) or not state.terminal or state.outbox:
                return False
            await self._fence(partition)
            return await self.store.retire(partition, state) is not None

    # ------------------------------------------------------------------ internals
