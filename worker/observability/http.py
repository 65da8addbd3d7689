"""The worker's own HTTP endpoints: ``/metrics``, ``/livez`` and ``/readyz`` (CONTRACT §6).

:class:`Health` holds the probe state and decides; :func:`create_app` exposes it with the metrics
as a small Starlette app; :func:`serve` runs that app with uvicorn *inside* the worker's event
loop, so a loop that stops turning also stops answering probes.

Liveness (``/livez``) is "the process makes progress":

* the event loop is alive: a heartbeat task refreshes a timestamp every second, and a timestamp
  older than ``loop_stale_after`` seconds means the loop is starved or blocked;
* the Kafka consumer polls: the intake calls :meth:`Health.consumer_polled` on every poll, and no
  poll for ``poll_timeout`` seconds means it is stuck. Before the first poll the consumer is
  "starting" and counts as alive for ``startup_grace`` seconds, which covers the group join.

Readiness (``/readyz``) additionally needs :meth:`Health.set_ready` ``(True)``, which the runtime
calls once partitions are assigned and their state restored, and ``(False)`` on revocation.
The readiness verdict is mirrored into the ``tasking_ready`` gauge.

Both endpoints answer ``{"status": "ok"|"unavailable", "checks": {name: "ok" | why}}`` with 200
or 503, so ``kubectl describe`` and a curl say which check failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.observability.metrics import CONTENT_TYPE, WorkerMetrics

OK = "ok"


@dataclass(frozen=True)
class Verdict:
    """The answer of one probe: ``ok`` when every check passed, each check's result by name."""

    ok: bool
    checks: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        """The JSON body served for this verdict."""
        return {"status": "ok" if self.ok else "unavailable", "checks": self.checks}


class Health:
    """Probe state of one worker process.

    Args:
        metrics: where the readiness verdict is mirrored (``tasking_ready``).
        clock: monotonic seconds; tests inject a fake one.
        loop_stale_after: seconds without a heartbeat after which the loop counts as stuck.
        poll_timeout: seconds without a consumer poll after which the consumer counts as stalled
            (the consumer's ``max.poll.interval`` is the natural value).
        startup_grace: seconds after construction during which a consumer that has not polled
            yet counts as starting rather than stalled.
    """

    def __init__(
        self,
        metrics: WorkerMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        loop_stale_after: float = 10.0,
        poll_timeout: float = 300.0,
        startup_grace: float = 120.0,
        broker_timeout: float = 15.0,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._loop_stale_after = loop_stale_after
        self._poll_timeout = poll_timeout
        self._startup_grace = startup_grace
        self._created = clock()
        self._last_beat = self._created
        self._last_poll: float | None = None
        self._broker_timeout = broker_timeout
        self._last_broker: float | None = None
        self._ready = False
        self._kafka_problem: str | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._publish()

    # -- inputs -----------------------------------------------------------------------------

    def beat(self) -> None:
        """Record that the event loop ran (called by the heartbeat task)."""
        self._last_beat = self._clock()
        self._publish()

    def consumer_polled(self) -> None:
        """Record that the Kafka consumer polled (called by the intake loop on every poll)."""
        self._last_poll = self._clock()

    def broker_answered(self) -> None:
        """Record a completed round trip to the Kafka cluster (the intake's broker watch).

        A consumer keeps "polling" (returning empty batches) while the cluster is unreachable, so
        polls alone cannot show a stall: readiness fails after ``broker_timeout`` seconds without
        an answer, liveness after ``poll_timeout``.
        """
        self._last_broker = self._clock()

    def set_ready(self, ready: bool) -> None:
        """Declare the instance ready (partitions assigned and restored) or not (revoked)."""
        self._ready = ready
        self._publish()

    def set_kafka_problem(self, problem: str | None) -> None:
        """Why Kafka cannot be used (a connection failure's reason, a broken topic layout), shown
        as the ``kafka`` readiness check until cleared with ``None``."""
        self._kafka_problem = problem
        self._publish()

    # -- heartbeat --------------------------------------------------------------------------

    def start_heartbeat(self, interval: float = 1.0) -> None:
        """Start the task that calls :meth:`beat` every ``interval`` seconds (idempotent)."""
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat_forever(interval), name="heartbeat")

    async def stop_heartbeat(self) -> None:
        """Stop the heartbeat task, if running."""
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat_forever(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.beat()
            due = loop.time() + interval
            await asyncio.sleep(interval)
            # How late the loop ran this timer: the longest stretch of work it waited behind.
            self._metrics.event_loop_lag(loop.time() - due)

    # -- verdicts ---------------------------------------------------------------------------

    def liveness(self) -> Verdict:
        """Alive when the loop beats and the consumer polls (or is still starting)."""
        checks = {
            "eventLoop": self._loop_check(),
            "consumer": self._consumer_check(),
            "broker": self._broker_check(self._poll_timeout),
        }
        return Verdict(all(v == OK for v in checks.values()), checks)

    def readiness(self) -> Verdict:
        """Ready when alive and :meth:`set_ready` ``(True)`` was the last call."""
        checks = self.liveness().checks
        checks["broker"] = self._broker_check(self._broker_timeout)
        checks["partitions"] = OK if self._ready else "not assigned or not restored"
        if self._kafka_problem is not None:
            checks["kafka"] = self._kafka_problem
        verdict = Verdict(all(v == OK for v in checks.values()), checks)
        self._metrics.set_ready(verdict.ok)
        return verdict

    def _publish(self) -> None:
        self.readiness()  # mirrors the verdict into tasking_ready

    def _loop_check(self) -> str:
        silent = self._clock() - self._last_beat
        return OK if silent <= self._loop_stale_after else f"no heartbeat for {silent:.0f}s"

    def _consumer_check(self) -> str:
        now = self._clock()
        if self._last_poll is None:
            waited = now - self._created
            if waited <= self._startup_grace:
                return OK
            return f"consumer has not polled {waited:.0f}s after start"
        silent = now - self._last_poll
        return OK if silent <= self._poll_timeout else f"consumer has not polled for {silent:.0f}s"

    def _broker_check(self, limit: float) -> str:
        now = self._clock()
        since = self._last_broker if self._last_broker is not None else self._created
        if self._last_broker is None and now - self._created <= self._startup_grace:
            return OK
        silent = now - since
        return OK if silent <= limit else f"Kafka has not answered for {silent:.0f}s"


def create_app(metrics: WorkerMetrics, health: Health) -> Starlette:
    """The Starlette app serving ``/metrics``, ``/livez`` and ``/readyz`` (GET only)."""

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def livez(_: Request) -> Response:
        return _verdict_response(health.liveness())

    async def readyz(_: Request) -> Response:
        return _verdict_response(health.readiness())

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def _verdict_response(verdict: Verdict) -> Response:
    return JSONResponse(verdict.body(), status_code=200 if verdict.ok else 503)
