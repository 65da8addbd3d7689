"""The first poll cycles after a handover, in a worker that is a real member of a consumer group.

``count`` steady tracked orders (``bench.tracking.tracked_records``) are written to the state
topic of fresh contract topics. A worker built as ``tasking-worker run`` builds it
(``bench.stack.running_worker``, session timeout ``session_timeout_ms``) joins the group, is given
every partition, restores and resumes the orders. This is done twice, one worker after the
other: the first finds the orders as written (no snapshot yet known to change nothing: a first
start of this version, or every order's data changed); the second takes over what the first
left in the changelog (a handover: the fingerprints of the snapshots that changed nothing).
Each worker's OneAtlas poller is pointed at the real OneAtlas adapter answered in-process
(``bench.tracking.TaskingPages``: one round trip of the event loop per page, as a network answer
takes at least one) and ``cycles`` poll cycles are run one after the other, in the worker's own
event loop, while

- a 1 ms timer measures the loop's lag (how late it fires) during each cycle and during the
  restore (assignment until ready);
- the group membership is watched: the worker's ``tasking_rebalances_total`` counters (any
  ``revoked`` means the member lost its partitions, e.g. evicted for missed heartbeats) and its
  owned partitions, counted from the moment it is ready, also for a few seconds after the last
  cycle (an eviction shows at the next heartbeat).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench import restore, tracking
from bench.latency import loop_lag, percentile
from bench.probe import StepRecorder
from bench.stack import (
    PARTITIONS,
    oneatlas_request,
    producer,
    running_worker,
    send_all,
    simulators,
    unique_topics,
    worker_settings,
)
from bench.throughput import wait_ordered
from worker.app import Worker
from worker.config import Settings
from worker.domain.model import OrderState
from worker.events.codec import encode_input
from worker.events.models import Provider
from worker.kafka.broker import EmbeddedBroker
from worker.runtime.timers import Poller

SESSION_TIMEOUT_MS = 10_000  # the worker's default (TASKING_KAFKA__SESSION_TIMEOUT_MS)
SETTLE_SECONDS = 4.0  # watched after the last cycle: a missed heartbeat shows at the next one


@dataclass
class Lag:
    samples: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    @property
    def max(self) -> float:
        return max(self.samples, default=0.0)


@dataclass
class Cycle:
    cpu: float
    wall: float
    dispatched: int  # orders the adapter returned
    decided: int  # snapshots that went through the runner (the others were known to change nothing)
    writes: int  # of those, the ones that wrote state
    lag: Lag


@dataclass
class HandoverResult:
    orders: int
    session_timeout_ms: int
    ready_seconds: float  # assignment (start of the worker) until ready: restore + resume
    restore_lag: Lag
    cycles: list[Cycle]
    revoked: float  # tasking_rebalances_total{kind="revoked"} from ready to the end
    assigned: float
    owned_after: int  # partitions owned after the cycles and the settle time

    @property
    def kept_membership(self) -> bool:
        return self.revoked == 0 and self.assigned == 0 and self.owned_after == PARTITIONS


async def ordered_state(broker: EmbeddedBroker) -> OrderState:
    """One real ``ORDERED`` state, from a worker against the simulators (for the template when the
    latency section, which provides it otherwise, is not run)."""
    topics = unique_topics("ord")
    await broker.create_contract_topics(topics, PARTITIONS)
    with simulators(0.0) as sims:
        settings = worker_settings(broker, topics, sims.env, 4)
        async with running_worker(settings) as running, producer(broker.bootstrap_servers) as client:
            await running.ready()
            await send_all(client, topics.requests, [encode_input(oneatlas_request("ord-000001"))])
            store = running.worker.intake.store
            await wait_ordered(store, 1, 60, 0.05)
            return next(state for _, state in store.orders())


def _rebalances(worker: Worker) -> tuple[float, float]:
    """The worker's ``tasking_rebalances_total``: (assigned, revoked). The group's first join
    counts one of each (the listener is told of an empty revocation before the assignment)."""
    registry = worker.metrics.registry
    return tuple(  # type: ignore[return-value]
        registry.get_sample_value("tasking_rebalances_total", {"kind": kind}) or 0.0
        for kind in ("assigned", "revoked")
    )


def _poller(running_poller: object) -> Poller:
    assert isinstance(running_poller, Poller)
    return running_poller


PREVIOUS_RELEASE = "0.1.0"  # whose seen marks the first start finds (see worker.kafka.statecodec)


async def measure(
    broker: EmbeddedBroker,
    template: OrderState,
    count: int,
    cycles: int = 3,
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
) -> tuple[HandoverResult, HandoverResult]:
    """Two workers, one after the other, on the same topics and group: the first restores the
    orders as the previous release left them (each state with the seen mark release 0.1.0
    wrote: the first start of a new version), the second restores what the first left (a
    handover)."""
    topics = unique_topics("hnd")
    await broker.create_contract_topics(topics, PARTITIONS)
    records = tracking.tracked_records(template, count, PREVIOUS_RELEASE)
    await restore.write_states(broker, topics.state, records)
    pages = tracking.TaskingPages(count, tracking.PAGE_SIZE)
    with simulators(0.0) as sims:
        settings = worker_settings(
            broker, topics, sims.env, 32, TASKING_KAFKA__SESSION_TIMEOUT_MS=str(session_timeout_ms)
        )
        first = await _one_worker(settings, pages, count, cycles)
        second = await _one_worker(settings, pages, count, cycles)
    return first, second


async def _one_worker(
    settings: Settings, pages: tracking.TaskingPages, count: int, cycles: int
) -> HandoverResult:
    async with running_worker(settings) as running:
        restore_lag = Lag()
        ticker = asyncio.create_task(loop_lag(restore_lag.samples))
        started = time.perf_counter()
        await running.ready(timeout=1800)
        ready_seconds = time.perf_counter() - started
        ticker.cancel()
        worker = running.worker
        # The poller's providers are the worker's own dict: point OneAtlas at the pages.
        adapter = tracking.TimedProvider(pages)
        original = worker.providers[Provider.ONEATLAS]
        worker.providers[Provider.ONEATLAS] = adapter  # type: ignore[assignment]
        job = worker.scheduler.get_job(f"poll:{Provider.ONEATLAS.value}")
        poller = _poller(job.func.__self__)
        rebalances = _rebalances(worker)
        recorder = StepRecorder()
        worker.runner.probe = recorder
        done: list[Cycle] = []
        for _ in range(cycles):
            lag = Lag()
            recorder.clear()
            ticker = asyncio.create_task(loop_lag(lag.samples))
            await asyncio.sleep(0.002)  # the ticker is waiting for its first tick
            cpu, wall = time.process_time(), time.perf_counter()
            dispatched = await poller.run_cycle(Provider.ONEATLAS)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            writes = len(recorder.steps)
            done.append(Cycle(cpu, wall, dispatched, writes + recorder.unchanged, writes, lag))
            await asyncio.sleep(0.005)  # the tick due during the cycle's last stretch is counted
            ticker.cancel()
        worker.runner.probe = None
        await asyncio.sleep(SETTLE_SECONDS)
        assigned, revoked = (b - a for a, b in zip(rebalances, _rebalances(worker), strict=True))
        owned = len(worker.intake.store.owned_partitions())
        worker.providers[Provider.ONEATLAS] = original
        await adapter.aclose()
    return HandoverResult(
        count, settings.kafka.session_timeout_ms, ready_seconds, restore_lag, done, revoked, assigned, owned
    )
