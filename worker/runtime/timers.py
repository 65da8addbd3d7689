"""Timers of the orders this instance owns, on apscheduler's AsyncIOScheduler (in memory).

Timers are derived from state: the domain core asks for them with ``Schedule``/``Unschedule``
effects, they are rebuilt from ``Resumed`` on assignment and dropped on revocation, and a job id
``{requestId}:{kind}`` makes a second ``Schedule`` of the same kind replace the first, so a timer is
never duplicated. Tracking polls are not per-order timers: :class:`Poller` runs one batched job per
provider.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from worker import cooperative
from worker.domain.model import OrderState, Phase, TimerKind
from worker.domain.ports import PolledOrder, TaskingProvider
from worker.errors import OwnershipLost, ProviderError, ProviderProtocolError
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.kafka.statecodec import OrderIndex

log = structlog.get_logger(__name__)

Fire = Callable[[str, TimerKind], Awaitable[None]]


class TimerMetrics(Protocol):
    def scheduler_job(self, job: str, ok: bool) -> None: ...

    def poll_succeeded(self, provider: str) -> None: ...


class TrackingMetrics(TimerMetrics, Protocol):
    def poll_error(self, provider: str, kind: str) -> None: ...

    def set_tracking_errors(self, provider: str, orders: int) -> None: ...


def _job_id(request_id: str, kind: TimerKind) -> str:
    return f"{request_id}:{kind.value}"


@dataclass
class Timers:
    """Per-order one-shot timers."""

    scheduler: AsyncIOScheduler
    fire: Fire
    metrics: TimerMetrics

    def schedule(self, request_id: str, kind: TimerKind, at: datetime) -> None:
        """Fire ``kind`` for ``request_id`` at ``at`` (now if ``at`` is past), replacing any twin."""
        self.scheduler.add_job(
            self._run,
            "date",
            run_date=at,
            args=(request_id, kind),
            id=_job_id(request_id, kind),
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def cancel(self, request_id: str, kind: TimerKind) -> None:
        with contextlib.suppress(JobLookupError):  # already fired or never scheduled
            self.scheduler.remove_job(_job_id(request_id, kind))

    def cancel_orders(self, request_ids: Iterable[str]) -> None:
        """Drop every timer of these orders (their partition was revoked)."""
        for request_id in request_ids:
            for kind in TimerKind:
                self.cancel(request_id, kind)

    def pending(self) -> int:
        return len(self.scheduler.get_jobs())

    async def _run(self, request_id: str, kind: TimerKind) -> None:
        # Jobs inherit the context of whatever created them: log as this order, nothing else.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(requestId=request_id, timer=kind.value)
        try:
            await self.fire(request_id, kind)
        except Exception:
            self.metrics.scheduler_job(_metric_job(kind), False)
            log.exception("timer_failed", requestId=request_id, timer=kind.value)
            return
        self.metrics.scheduler_job(_metric_job(kind), True)


def _metric_job(kind: TimerKind) -> str:
    return {TimerKind.RETRY: "retry", TimerKind.RECONCILE: "reconcile"}.get(kind, "deadline")


# Orders waiting for a human are polled less often than orders the provider is working on.
_CADENCE = {
    OrderStatus.DECISION_REQUIRED: 4,
    OrderStatus.FEASIBILITY_PENDING: 2,
}


# The poller and the gauges read orders either as their store index (the worker) or decoded.
OrderView = OrderState | OrderIndex


def every(
    scheduler: AsyncIOScheduler,
    job_id: str,
    seconds: float,
    run: Callable[..., Awaitable[object]],
    *args: object,
    misfire_grace_time: float | None = 1,
) -> None:
    """Run the coroutine function ``run(*args)`` every ``seconds`` on the event loop (never two
    runs at once; missed runs coalesce into one). ``misfire_grace_time=None`` runs a late job
    whatever its delay (a poll cycle must not be skipped because the previous one was long)."""
    scheduler.add_job(
        run,
        "interval",
        seconds=seconds,
        args=args,
        id=job_id,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=misfire_grace_time,
    )


def cadence(state: OrderView) -> int:
    """Poll this order every ``cadence`` cycles (1 = every cycle)."""
    if state.phase is Phase.AWAITING_OPTION or state.status is None:
        return 4
    return _CADENCE.get(state.status, 1)


Dispatch = Callable[[str, PolledOrder, datetime], Awaitable[None]]
Report = Callable[[str, "TrackingTrouble | None", "TrackingTrouble", datetime], Awaitable[None]]
"""``(request id, trouble now or None when recovered, trouble as last reported, at)``: publish the
order's TRACKING_ERROR / recovery status event (``Runner.report_tracking``)."""


async def _no_report(
    request_id: str, now: TrackingTrouble | None, last: TrackingTrouble, at: datetime
) -> None:
    return None


@dataclass
class TrackingTrouble:
    """Consecutive tracking failures of one order (in memory, per instance).

    Kept by the poller of the instance that owns the order; a restart or a rebalance starts the
    count again (a failure that persists is counted up to the threshold again within a few
    cycles). Reading it costs no provider call.
    """

    provider: Provider
    failures: int
    what: str  # read | parse | dispatch
    message: str
    since: datetime
    retry_cycle: int  # the poller's cycle from which the order is due again (backoff)
    reported: bool = False


# Backoff of an order whose tracking fails: due again after 1, 2, 4, 8 cycles (then every 8th).
_MAX_BACKOFF_CYCLES = 8


def failure_kind(exc: BaseException) -> str:
    """``parse`` for a payload not shaped as documented, ``read`` for any other provider error
    of the order's own reads, ``dispatch`` for a failure applying the snapshot."""
    if isinstance(exc, ProviderProtocolError | ValidationError):
        return "parse"
    if isinstance(exc, ProviderError):
        return "read"
    return "dispatch"


Tracked = Callable[[Provider], Iterable[OrderView]]
News = Callable[[str, int], bool]
"""``(request id, fingerprint of a polled order) -> whether to dispatch it``."""


def _always_news(request_id: str, fingerprint: int) -> bool:
    return True


def _is_due(order: OrderView, cycle: int) -> bool:
    status = order.status
    if status is not None and status not in _CADENCE and order.phase is not Phase.AWAITING_OPTION:
        return True  # cadence 1, the common case, without the call
    return (zlib.crc32(order.request_id.encode()) + cycle) % cadence(order) == 0


def _tracking_key(order: OrderView) -> str:
    if isinstance(order, OrderIndex):
        assert order.tracking_key is not None
        return order.tracking_key
    assert order.placed is not None
    return order.placed.tracking_key


# Orders scanned between two reads of the slicer's clock (a read costs as much as an order).
_CLOCK_EVERY = 64


class _KnownFilter:
    """The ``known`` filter a cycle hands the adapter (``TaskingProvider.poll``): an order is
    known when it is not in trouble and ``news`` says its fingerprint changes nothing, the
    test the cycle applies to every order it gets back, asked while the listing is read so an
    unchanged order costs no allocation at all. ``skipped`` counts the orders it kept out."""

    __slots__ = ("_keys", "_news", "_troubles", "skipped")

    def __init__(self, keys: Mapping[str, str], troubles: Mapping[str, object], news: News) -> None:
        self._keys, self._troubles, self._news = keys, troubles, news
        self.skipped = 0

    def __call__(self, key: str, fingerprint: int) -> bool:
        request_id = self._keys.get(key)
        if request_id is None or request_id in self._troubles or self._news(request_id, fingerprint):
            return False
        self.skipped += 1
        return True


@dataclass
class Poller:
    """One batched tracking poll per provider, every ``interval`` seconds.

    Each cycle collects the tracking keys of the owned orders that are due (by :func:`cadence`,
    spread over cycles by a hash of the request id), asks the provider for all of them at once
    (``TaskingProvider.poll`` pages through listing endpoints), and dispatches one ``Polled``
    event per snapshot for which ``news`` is true (the worker passes
    ``Runner.snapshot_is_news``, which filters out snapshots known to change nothing). The
    same test is handed to the adapter as ``known``, so an unchanged order is dropped while its
    page is read, before anything is built for it.

    Bulkheads: only a failure of the listing itself is the provider's (``poll_failed``). A
    failure that belongs to one order (its auxiliary reads, carried by ``PolledOrder.failed``;
    the parsing of its snapshot; the step applying it) is that order's: logged with its id,
    counted (``poll_error``), retried on later cycles with a per-order backoff, and after
    ``error_threshold`` consecutive failures reported once through ``report`` (a status event
    with reason ``TRACKING_ERROR``), and again when it recovers.
    """

    scheduler: AsyncIOScheduler
    providers: dict[Provider, TaskingProvider]
    tracked: Tracked
    dispatch: Dispatch
    metrics: TrackingMetrics
    interval: float
    clock: Callable[[], datetime]
    news: News = _always_news
    report: Report = _no_report
    error_threshold: int = 5
    _cycles: dict[Provider, int] = field(default_factory=dict)
    _running: set[Provider] = field(default_factory=set)
    _troubles: dict[str, TrackingTrouble] = field(default_factory=dict)

    def start(self) -> None:
        for name in self.providers:
            every(
                self.scheduler,
                f"poll:{name.value}",
                self.interval,
                self.run_cycle,
                name,
                misfire_grace_time=None,
            )

    def due(self, name: Provider, cycle: int) -> dict[str, str]:
        """tracking key -> request id of the orders of ``name`` due in this cycle."""
        return {_tracking_key(o): o.request_id for o in self.tracked(name) if self._wanted(o, cycle)}

    async def collect_due(self, name: Provider, cycle: int) -> dict[str, str]:
        """:meth:`due`, handing the event loop back every ``cooperative.SLICE_SECONDS`` (a scan
        of 100,000 orders takes ~0.1 s). ``tracked`` must tolerate changes to the store while it
        is suspended (``StateStore.tracked`` does)."""
        keys: dict[str, str] = {}
        slicer = cooperative.Slicer()
        troubles = self._troubles  # the dict itself: a trouble added while the scan rests counts
        for n, order in enumerate(self.tracked(name)):
            # _wanted, inlined: a call per order is a third of the scan.
            trouble = troubles.get(order.request_id) if troubles else None
            if _is_due(order, cycle) if trouble is None else cycle >= trouble.retry_cycle:
                keys[_tracking_key(order)] = order.request_id
            if n % _CLOCK_EVERY == 0 and slicer.used_up():
                await slicer.rest()
        return keys

    def _wanted(self, order: OrderView, cycle: int) -> bool:
        """Due by its cadence; an order in trouble is backing off: due only at its retry cycle."""
        trouble = self._troubles.get(order.request_id) if self._troubles else None
        return _is_due(order, cycle) if trouble is None else cycle >= trouble.retry_cycle

    async def run_cycle(self, name: Provider) -> int:
        """Poll the due orders of one provider; returns how many snapshots were dispatched."""
        if name in self._running:
            return 0
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(provider=name.value)
        self._running.add(name)
        cycle = self._cycles[name] = self._cycles.get(name, 0) + 1  # per provider: cadences interleave
        try:
            return await self._cycle(name, cycle)
        finally:
            self._report_gauge(name)
            self._running.discard(name)

    async def _cycle(self, name: Provider, cycle: int) -> int:
        try:
            keys = await self.collect_due(name, cycle)
            if not keys:
                self.metrics.poll_succeeded(name.value)
                return 0
            known = _KnownFilter(keys, self._troubles, self.news)
            polled = await self.providers[name].poll(keys.keys(), known)
        except Exception:  # the listing itself: the only provider-level failure
            self.metrics.scheduler_job("poll", False)
            log.exception("poll_failed", provider=name.value)
            return 0
        now = self.clock()

        def start(item: tuple[str, PolledOrder]) -> Awaitable[None] | None:
            key, p = item
            request_id = keys.get(key)
            if request_id is None:
                return None
            if request_id not in self._troubles and not self.news(request_id, p.fingerprint):
                return None  # known to change nothing: no coroutine at all for it
            return self._track_one(name, request_id, p, now, cycle)

        # Bounded batches: the orders run concurrently, but are started a batch at a time with a
        # turn of the event loop in between (a snapshot that changes nothing is handled without
        # any suspension point, so 100,000 of them started at once would hold the loop, and the
        # group heartbeat, for seconds), at most IN_FLIGHT at once. ``_track_one`` never raises.
        await cooperative.gather_in_batches(polled.items(), start, limit=cooperative.IN_FLIGHT)
        self.metrics.poll_succeeded(name.value)
        self.metrics.scheduler_job("poll", True)
        return len(polled) + known.skipped

    async def _track_one(
        self, name: Provider, request_id: str, polled: PolledOrder, now: datetime, cycle: int
    ) -> None:
        """Apply one polled order; never raises (its failure is its own, see the class)."""
        trouble = self._troubles.get(request_id)
        try:
            await self.dispatch(request_id, polled, now)
        except OwnershipLost:
            return  # not this order's trouble: the partition is moving, its owner goes on
        except Exception as exc:
            await self._failed(name, request_id, exc, now, cycle)
            return
        if trouble is not None:
            del self._troubles[request_id]
            log.info("tracking_recovered", requestId=request_id, failures=trouble.failures)
            if trouble.reported:
                await self._report(request_id, None, trouble, now)

    async def _failed(
        self, name: Provider, request_id: str, exc: Exception, now: datetime, cycle: int
    ) -> None:
        kind = failure_kind(exc)
        self.metrics.poll_error(name.value, kind)
        trouble = self._troubles.get(request_id)
        message = str(exc)[:300] or type(exc).__name__
        if trouble is None:
            trouble = self._troubles[request_id] = TrackingTrouble(name, 0, kind, message, now, cycle)
        trouble.failures += 1
        trouble.what, trouble.message = kind, message
        trouble.retry_cycle = cycle + min(_MAX_BACKOFF_CYCLES, 2 ** (trouble.failures - 1))
        log.warning(
            "tracking_failed",
            requestId=request_id,
            kind=kind,
            error=type(exc).__name__,
            message=message,
            failures=trouble.failures,
        )
        if trouble.failures >= self.error_threshold and not trouble.reported:
            trouble.reported = await self._report(request_id, trouble, trouble, now)

    async def _report(
        self, request_id: str, now_trouble: TrackingTrouble | None, last: TrackingTrouble, at: datetime
    ) -> bool:
        """Publish the order's TRACKING_ERROR (or recovery) event; ``False`` if that failed (the
        next failure tries again)."""
        try:
            await self.report(request_id, now_trouble, last, at)
            return True
        except Exception as exc:
            log.warning("tracking_report_failed", requestId=request_id, error=type(exc).__name__)
            return False

    def _report_gauge(self, name: Provider) -> None:
        """Refresh the gauge of reported orders; forget the troubles of this provider's orders
        that are no longer tracked here (finished, or their partition was revoked)."""
        reported = 0
        if self._troubles:
            owned = {order.request_id for order in self.tracked(name)}
            for request_id, trouble in list(self._troubles.items()):
                if trouble.provider is not name:
                    continue
                if request_id not in owned:
                    del self._troubles[request_id]
                elif trouble.reported:
                    reported += 1
        self.metrics.set_tracking_errors(name.value, reported)


@dataclass
class TokenKeeper:
    """One scheduler job per provider that renews its bearer token before it expires, even while
    no call is being made (so the first call after a quiet spell never waits for a renewal)."""

    scheduler: AsyncIOScheduler
    providers: dict[Provider, TaskingProvider]
    metrics: TimerMetrics
    interval: float = 15.0

    def start(self) -> None:
        for name in self.providers:
            every(self.scheduler, f"token:{name.value}", self.interval, self.refresh, name)

    async def refresh(self, name: Provider) -> bool:
        """Renew ``name``'s token if due; failures are counted and logged, never raised."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(provider=name.value)
        try:
            renewed = await self.providers[name].refresh_token()
        except Exception:
            self.metrics.scheduler_job("token_refresh", False)
            log.exception("token_refresh_failed", provider=name.value)
            return False
        self.metrics.scheduler_job("token_refresh", True)
        return renewed


class GaugeMetrics(Protocol):
    def set_open_orders(self, counts: Mapping[tuple[str, str], int]) -> None: ...

    def set_status_ages(self, ages: Mapping[tuple[str, str], float]) -> None: ...


@dataclass
class OrderGauges:
    """Refreshes the open-orders gauges (count and oldest age per provider and status) from the
    owned state, on a timer: a scan is cheap next to a poll cycle and keeps the hot path free."""

    scheduler: AsyncIOScheduler
    orders: Callable[[], Iterable[OrderView]]
    metrics: GaugeMetrics
    clock: Callable[[], datetime]
    interval: float = 10.0

    def start(self) -> None:
        every(self.scheduler, "gauges", self.interval, self._refresh_job)

    async def _refresh_job(self) -> None:
        # A coroutine on purpose: the scheduler runs plain functions in a thread pool, where the
        # scan would race the event loop's writes to the store.
        await self.refresh_cooperatively()

    def refresh(self) -> None:
        """Recompute the gauges from ``orders`` in one go; must run on the event loop's thread."""
        tally = _Tally()
        for order in self.orders():
            tally.add(order)
        tally.publish(self.metrics, self.clock())

    async def refresh_cooperatively(self) -> None:
        """:meth:`refresh`, handing the event loop back every ``cooperative.SLICE_SECONDS`` (the
        scheduler's job). ``orders`` must tolerate changes to the store while it is suspended
        (``StateStore.indexes`` does); an order changed meanwhile is counted as it was seen."""
        tally, slicer = _Tally(), cooperative.Slicer()
        for order in self.orders():
            tally.add(order)
            if slicer.used_up():
                await slicer.rest()
        tally.publish(self.metrics, self.clock())


@dataclass
class _Tally:
    """Open orders and the oldest status start per (provider, status), in epoch seconds (what
    the index keeps: no datetime is built per order)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, order: OrderView) -> None:
        if order.terminal or order.status is None:
            return
        provider, since = _provider_and_since(order)
        key = (provider.value, order.status.value)
        self.counts[key] = self.counts.get(key, 0) + 1
        if key not in self.oldest or since < self.oldest[key]:
            self.oldest[key] = since

    def publish(self, metrics: GaugeMetrics, now: datetime) -> None:
        metrics.set_open_orders(self.counts)
        at = now.timestamp()
        metrics.set_status_ages({k: max(0.0, at - t) for k, t in self.oldest.items()})


def _provider_and_since(order: OrderView) -> tuple[Provider, float]:
    """The order's provider and the start of its current status (its receipt before any), in
    epoch seconds."""
    if isinstance(order, OrderIndex):
        return order.provider, order.since_epoch
    return order.request.provider, (order.status_since or order.received_at).timestamp()
