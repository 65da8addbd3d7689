"""The step loop of the effect runner (:class:`~worker.runtime.runner.Runner`): one event of one
order under the order's lock (decide, persist, publish, perform), the provider-call tasks whose
results come back as events, and the background retries (publish, resume, feed-back).

:class:`StepLoop` holds the runner's collaborators and this machinery; the runner adds the entry
points that the intake, the timers, the poller and the delivery harvest call. The sequence, the
ownership fence and the tenure rule are described in :mod:`worker.runtime.runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from worker import crashpoints
from worker.domain.decide import decide
from worker.domain.model import (
    PAID_OPS,
    CallProvider,
    DomainEvent,
    Effect,
    OrderState,
    Resumed,
    Schedule,
    Settings,
    Unschedule,
)
from worker.domain.ports import TaskingProvider
from worker.errors import OwnershipLost, StateTooLarge
from worker.events.models import OrderStatusEvent, Reason
from worker.events.status import OrderStatus, stapi_status
from worker.kafka.ownership import Ownership, Unfenced
from worker.kafka.publisher import Publisher
from worker.kafka.statestore import BurntId, StateStore, first_request, request_fingerprint
from worker.providers.http import before_write
from worker.runtime.calls import perform
from worker.runtime.outcomes import (
    _not_configured,
    _offer_answer,
    _offer_state,
    _paid_write_point,
)
from worker.runtime.probes import RunnerMetrics, StepProbe, _Marks, utc_now
from worker.runtime.timers import Timers

# The step loop is the runner: its lines keep the runner's logger name (log filters rely on it).
log = structlog.get_logger("worker.runtime.runner")


@dataclass
class StepLoop:
    """The runner's collaborators and its step machinery (see the module docstring)."""

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
