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
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from aiokafka.errors import KafkaError

from worker import cooperative, crashpoints
from worker.domain.decide import decide
from worker.domain.model import (
    PAID_OPS,
    CallProvider,
    CommandReceived,
    DeliveryFound,
    DeliverySettled,
    DomainEvent,
    Effect,
    OrderState,
    Polled,
    RequestReceived,
    Resumed,
    Schedule,
    Settings,
    TimerFired,
    TimerKind,
    TrackingFailed,
    TrackingRecovered,
    Unschedule,
)
from worker.domain.ports import PolledOrder, TaskingProvider
from worker.errors import DecodeError, OwnershipLost, StateTooLarge
from worker.events.models import Command, OrderRequest, OrderStatusEvent, Provider, Reason
from worker.events.products import DeliveredProduct
from worker.events.status import OrderStatus, stapi_status
from worker.kafka.ownership import Ownership, Unfenced
from worker.kafka.publisher import Publisher
from worker.kafka.statecodec import OrderIndex
from worker.kafka.statestore import BurntId, StateStore, first_request, request_fingerprint
from worker.providers.http import before_write
from worker.runtime.calls import perform
from worker.runtime.outcomes import (
    _not_configured,
    _offer_answer,
    _offer_state,
    _paid_write_point,
    invalid_request_event,
)
from worker.runtime.probes import RunnerMetrics, StepProbe, _Marks, utc_now
from worker.runtime.timers import Timers, TrackingTrouble

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Admission:
    """What became of a received request (:meth:`Runner.accept_request`): ``accepted`` (a new
    order), ``duplicate`` (answered with ``latest``) or ``reused`` (``latest`` is the first
    request's latest status event, to name in the dead letter)."""

    outcome: Literal["accepted", "duplicate", "reused"]
    latest: OrderStatusEvent | None


@dataclass
class Runner:
    store: StateStore
    publisher: Publisher
    providers: dict[str, TaskingProvider]
    timers: Timers
    metrics: RunnerMetrics
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], datetime] = utc_now
    probe: StepProbe | None = None  # benchmark instrumentation; None in production
    ownership: Ownership = field(default_factory=Unfenced)
    # The longest wait between two tries of a result whose state write keeps failing.
    state_retry_max_seconds: float = 30.0
    _locks: dict[str, list[Any]] = field(default_factory=dict)
    _tasks: dict[int, set[asyncio.Task[None]]] = field(default_factory=lambda: defaultdict(set))

    # ------------------------------------------------------------------ entry points

    async def submit(self, partition: int, request_id: str, event: DomainEvent) -> OrderState | None:
        """Apply one event to one order (see the module docstring). Returns the new state.

        Raises:
            KafkaError: the state could not be persisted; nothing was published or performed.
            IllegalTransition: the domain core found a bug; the state is left unchanged.
        """
        async with self._order_lock(request_id):
            return await self._apply(partition, request_id, event)

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
        index = self.store.index(request_id)
        return index is None or index.seen is None or index.seen != fingerprint

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

    def _resume_later(self, partition: int, request_id: str, error: Exception) -> None:
        log.warning("resume_failed", requestId=request_id, error=type(error).__name__)
        tenure = self.store.tenure(partition)
        self._spawn_task(partition, self._retry_resume(partition, request_id, tenure))

    async def _resume_one(self, partition: int, request_id: str) -> None:
        state = self.store.get(request_id)
        assert isinstance(state, OrderState)
        await self._republish(partition, state)
        if not state.terminal:
            await self.submit(partition, state.request_id, Resumed(at=self.clock()))

    async def _retry_resume(self, partition: int, request_id: str, tenure: int | None) -> None:
        """Resume one order again, with capped backoff, while the partition's tenure lasts: an
        open order is never left without something that drives it."""
        for attempt in itertools.count():
            await asyncio.sleep(self._backoff(attempt))
            if self.store.tenure(partition) != tenure:
                return
            try:
                await self._fence(partition)
                await self._resume_one(partition, request_id)
                return
            except Exception as exc:
                log.warning(
                    "resume_failed", requestId=request_id, error=type(exc).__name__, attempt=attempt + 2
                )

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
        left for the next run; the others go on."""
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
        return retired

    async def _retire_one(self, partition: int, request_id: str) -> bool:
        async with self._order_lock(request_id):
            state = self.store.get(request_id)
            if not isinstance(state, OrderState) or not state.terminal or state.outbox:
                return False
            await self._fence(partition)
            return await self.store.retire(partition, state) is not None

    # ------------------------------------------------------------------ internals

    @contextlib.asynccontextmanager
    async def _order_lock(self, request_id: str) -> AsyncIterator[None]:
        """Serialise the events of one order (FIFO), keeping locks only while in use."""
        entry = self._locks.get(request_id)
        if entry is None:
            entry = self._locks[request_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._locks.pop(request_id, None)

    async def _apply(
        self, partition: int, request_id: str, event: DomainEvent, seen: int | None = None
    ) -> OrderState | None:
        probe = self.probe  # the probe of the step's start, even if it is removed meanwhile
        if probe is None:
            return await self._step(partition, request_id, event, None, seen)
        marks = _Marks()
        try:
            return await self._step(partition, request_id, event, marks, seen)
        finally:
            probe.step(event.kind, marks.phases, time.perf_counter() - marks.started)

    async def _step(
        self, partition: int, request_id: str, event: DomainEvent, marks: _Marks | None, seen: int | None
    ) -> OrderState | None:
        """``seen``: the fingerprint of a polled snapshot, remembered when it changes nothing."""
        entry = self.store.get(request_id)
        state = entry if isinstance(entry, OrderState) or entry is None else None
        if entry is not None and state is None:
            return None  # a burnt id: nothing can happen to it
        new, effects = decide(state, event, self.settings)
        if marks is not None:
            marks.mark("decide")
        if new is None or new is state:
            if seen is not None and new is not None and new.tracking and not effects:
                # Only for a tracked order: its snapshot handling (tracking.track) depends on
                # the event's time only in outcomes that end the order, so it is a no-op again.
                # The mark rewrites the state in the changelog: like any state write, only by
                # the partition's owner (a woken instance must not write over its successor).
                await self._fence(partition)
                await self.store.mark_seen(partition, request_id, seen)
            self._perform(partition, new, effects)
            return new
        point = _paid_write_point(state, new) if crashpoints.armed() else None
        crashpoints.reached(point and f"before_{point}")
        await self._fence(partition)
        try:
            await self.store.persist(partition, new, new=state is None)
        except StateTooLarge as exc:
            if state is None:
                raise  # a new request: refused at intake (TOO_LARGE), before any provider call
            await self._end_too_large(partition, state, exc)
            return None
        crashpoints.reached(point and f"after_{point}")
        if not await self._confirmed(partition):
            # The write waited through a freeze or a cut-off (the lease ran out meanwhile) and
            # the broker no longer confirms the partition: its events and effects are not this
            # instance's to start. Kept durable; re-driven once confirmed, while the tenure lasts.
            log.warning("step_unconfirmed_after_write", requestId=request_id, partition=partition)
            self._resume_later(partition, request_id, OwnershipLost(partition))
            return new
        if marks is not None:
            marks.mark("persist")
        self._count(state, new)
        if new.terminal and new.placed is not None:
            self._forget_placed(new)
        # The state (with any intent) is durable: the next provider call may start now, while
        # the events go out. The order's lock is held until they are acknowledged, so the call's
        # result is applied after them and the events keep their order. If publishing fails,
        # the events stay in the outbox and go out, in order, with the order's next events.
        self._perform(partition, new, effects)
        if marks is not None:
            marks.mark("perform")
        new = await self._publish(partition, new)
        if marks is not None:
            marks.mark("publish")
        return new

    async def _end_too_large(self, partition: int, state: OrderState, error: StateTooLarge) -> None:
        """End an order whose next state cannot be written (it outgrew a record): that write
        can never succeed, so instead of retrying it for ever (and holding the partition's
        commits behind it) the order ends ``FAILED`` with reason ``STATE_TOO_LARGE``. What is
        kept is a small marker holding that event (as for a burnt id): a later request with the
        id is a duplicate, and is answered with it. The order's timers are cancelled; pending
        events go out first, so the sequence stays contiguous."""
        event = state_too_large_event(state, error, self.clock())
        log.error(
            "order_state_too_large",
            requestId=state.request_id,
            size=error.size,
            limit=error.limit,
            status=state.status.value if state.status else None,
        )
        marker = BurntId(state.request_id, event, request_fingerprint(first_request(state)))
        await self.store.persist(partition, marker)
        self.timers.cancel_orders([state.request_id])
        self.metrics.order_transition(state.request.provider.value, OrderStatus.FAILED.value)
        try:
            if state.outbox:
                await self.publisher.outbox(list(state.outbox))
            await self.publisher.status(event)
        except KafkaError as exc:  # the marker is durable: a duplicate or a restore sends it again
            log.warning("events_publish_failed", requestId=state.request_id, error=type(exc).__name__)

    async def _confirmed(self, partition: int) -> bool:
        """Whether this instance owns ``partition`` now: the local lease, else the broker."""
        return self.ownership.holds(partition) or await self.ownership.confirm(partition, fresh=False)

    async def _fence(self, partition: int) -> None:
        """Return only while this instance owns ``partition``: the local lease, or the broker's
        word when the lease has run out (the first write after a quiet spell or a freeze).

        Raises:
            OwnershipLost: the broker did not confirm; nothing may be written.
        """
        if not self.ownership.holds(partition) and not await self.ownership.confirm(partition, fresh=False):
            raise OwnershipLost(partition)

    async def _publish(self, partition: int, state: OrderState) -> OrderState:
        """Publish the outbox (the caller holds the order's lock) and forget it once acknowledged.

        A failed publish is not the step's failure: the state, outbox included, is durable and
        its effects are under way. The events stay in the outbox and go out, in order, with the
        order's next step, with :meth:`_retry_publish` (spawned here), or at the next resume.

        Raises:
            KafkaError: only when clearing a finished order's outbox could not be written.
        """
        if not state.outbox:
            return state
        try:
            await self.publisher.outbox(list(state.outbox))
        except KafkaError as exc:
            log.warning("events_publish_failed", requestId=state.request_id, error=type(exc).__name__)
            tenure = self.store.tenure(partition)
            self._spawn_task(partition, self._retry_publish(partition, state.request_id, tenure))
            return state
        return await self._clear_outbox(partition, state)

    async def _clear_outbox(self, partition: int, state: OrderState) -> OrderState:
        """Forget a published outbox: in memory only while the order is open (a restart
        re-publishes it, same ``ce_id``), durably once it is finished (so it is never again)."""
        cleared = state.model_copy(update={"outbox": []})
        if cleared.terminal:
            await self.store.persist(partition, cleared)
        else:
            self.store.remember(partition, cleared)
        return cleared

    async def _republish(self, partition: int, state: OrderState) -> None:
        if state.outbox:
            await self._publish(partition, state)
        elif state.last_event is not None:
            await self.publisher.status(state.last_event)

    def _forget_placed(self, state: OrderState) -> None:
        """An ended order's adapter caches go with it (``TaskingProvider.forget``)."""
        assert state.placed is not None
        provider = self.providers.get(state.request.provider.value)
        if provider is not None:
            provider.forget([state.placed.tracking_key])

    def _count(self, old: OrderState | None, new: OrderState) -> None:
        before = old.sequence if old is not None else 0
        if new.sequence > before and new.status is not None:
            self.metrics.order_transition(new.request.provider.value, new.status.value)
        delivered = len(new.deliveries) - (len(old.deliveries) if old is not None else 0)
        if delivered > 0:
            self.metrics.delivery_published(new.request.provider.value, delivered)
        routing = new.routing
        if routing is not None and routing.chosen_by is not None:
            choices_before = old.routing.choices if old is not None and old.routing is not None else 0
            if routing.choices > choices_before:
                prefer = routing.request.routing.prefer.value if routing.request.routing else "cheapest"
                self.metrics.routing_choice(new.request.provider.value, prefer, routing.chosen_by)

    def _perform(self, partition: int, state: OrderState | None, effects: list[Effect]) -> None:
        if state is None:
            return
        for effect in effects:
            match effect:
                case Schedule(timer=timer, at=at):
                    self.timers.schedule(state.request_id, timer, at)
                case Unschedule(timer=timer):
                    self.timers.cancel(state.request_id, timer)
                case CallProvider():
                    self._spawn(partition, state, effect)

    def _spawn(self, partition: int, state: OrderState, call: CallProvider) -> None:
        self._spawn_task(partition, self._call(partition, state, call, self.store.tenure(partition)))

    def _spawn_task(self, partition: int, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as one of the partition's tasks (awaited or cancelled on revocation)."""
        task = asyncio.create_task(work)
        bucket = self._tasks[partition]
        bucket.add(task)
        task.add_done_callback(bucket.discard)

    async def _retry_publish(self, partition: int, request_id: str, tenure: int | None) -> None:
        """Publish an order's outbox left by a failed publish, with backoff (bounded).

        Gives up quietly once the outbox is empty (a later step published it) or the partition
        is gone; after the last attempt the events wait, durable, for the order's next step or
        the next resume."""
        for attempt in range(_FEEDBACK_ATTEMPTS):
            await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
            if self.store.tenure(partition) != tenure:
                return
            async with self._order_lock(request_id):
                state = self.store.get(request_id)
                if not isinstance(state, OrderState) or not state.outbox:
                    return
                try:
                    await self.publisher.outbox(list(state.outbox))
                    await self._clear_outbox(partition, state)
                    return
                except KafkaError:
                    log.warning("events_publish_failed", requestId=request_id, attempt=attempt + 2)
        log.error("events_publish_deferred", requestId=request_id)

    async def _call(self, partition: int, state: OrderState, call: CallProvider, tenure: int | None) -> None:
        # A call task inherits its creator's context (a record, a poll): log as this order only.
        structlog.contextvars.clear_contextvars()
        # A read for one offer of a provider-choice order runs on that offer's own (dry-run)
        # state and provider; its answer goes back to the order wrapped with the offer's id.
        target = _offer_state(state, call.offer) if call.offer is not None else state
        structlog.contextvars.bind_contextvars(
            requestId=state.request_id, provider=target.request.provider.value
        )
        provider = self.providers.get(target.request.provider.value)
        if provider is None:
            event: DomainEvent | None = _not_configured(call, self.clock())
        elif call.op in PAID_OPS:
            event = await self._paid_call(partition, tenure, provider, target, call)
            if event is not None:
                crashpoints.reached(f"after_call_returned:{call.op.value}")
        else:
            event = await perform(provider, target, call, self.clock)
        if event is None:
            return
        if call.offer is not None:
            event = _offer_answer(call.offer, event)
        await self._feed_back(partition, state.request_id, event, tenure)

    async def _paid_call(
        self,
        partition: int,
        tenure: int | None,
        provider: TaskingProvider,
        state: OrderState,
        call: CallProvider,
    ) -> DomainEvent | None:
        """Perform a paid call, each of its write requests preceded by the broker's
        confirmation that this instance owns the order's partition (``Ownership.confirm``, a
        commit under the current generation, awaited right before the request is sent: after
        the rate limiter, so a call that waited in its queue through a freeze is checked after
        the freeze).

        Not confirmed: the request is not sent. While the partition's tenure goes on (a broker
        hiccup, a rebalance about to revoke it) the call is tried again with backoff; once the
        tenure ends (this task is cancelled on revocation, or the partition was restored anew)
        ``None``: the order is left to its owner, which reads the durable intent back before
        any re-send. Never marks the order failed.
        """

        async def confirm() -> None:
            if not await self.ownership.confirm(partition):
                raise OwnershipLost(partition)

        token = before_write.set(confirm)
        try:
            for attempt in itertools.count():
                if self.store.tenure(partition) != tenure:
                    log.warning("paid_call_fenced", op=call.op.value, partition=partition, why="tenure_ended")
                    return None
                try:
                    return await perform(provider, state, call, self.clock)
                except OwnershipLost:
                    log.warning(
                        "paid_call_fenced", op=call.op.value, partition=partition, attempt=attempt + 1
                    )
                    await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
            return None  # pragma: no cover - itertools.count() never ends
        finally:
            before_write.reset(token)

    async def _feed_back(
        self, partition: int, request_id: str, event: DomainEvent, tenure: int | None
    ) -> None:
        """Apply a call's result, retrying with capped backoff for as long as the changelog
        refuses the write (a result is never dropped: it may record a paid outcome); a result
        of an earlier tenure of the partition is dropped (its owner resumed the order from the
        durable state, reconciling any intent)."""
        for attempt in itertools.count():
            if self.store.tenure(partition) != tenure:
                return  # revoked meanwhile: the new owner resumes from the durable state
            try:
                await self.submit(partition, request_id, event)
                return
            except (KafkaError, OwnershipLost) as exc:
                log.warning(
                    "state_write_failed", requestId=request_id, attempt=attempt + 1, error=type(exc).__name__
                )
                await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return float(min(self.state_retry_max_seconds, 0.5 * 2 ** min(attempt, 16)))


_FEEDBACK_ATTEMPTS = 8


_TIMER_RETRY_SECONDS = 2.0  # a timer whose step could not be written is set again this much later


def state_too_large_event(state: OrderState, error: StateTooLarge, at: datetime) -> OrderStatusEvent:
    """The ``FAILED``/``STATE_TOO_LARGE`` event that ends an order whose state outgrew a record:
    the order's latest event carried on (references, price), one sequence later."""
    previous = state.last_event
    reason = Reason(
        code="STATE_TOO_LARGE",
        message=f"the order's state grew to {error.size} bytes, more than the {error.limit} bytes "
        "one state record may take; the worker cannot keep following it",
        details={"stateSize": error.size, "maxStateBytes": error.limit},
    )
    changes = {
        "sequence": state.sequence + 1,
        "status": OrderStatus.FAILED,
        "previous_status": state.status,
        "stapi_status": stapi_status(OrderStatus.FAILED),
        "occurred_at": at,
        "decision": None,
        "reason": reason,
    }
    if previous is not None:
        return previous.model_copy(update=changes)
    return OrderStatusEvent(request_id=state.request_id, provider=state.request.provider, **changes)
