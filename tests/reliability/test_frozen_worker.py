"""A worker frozen (SIGSTOP) past its session timeout while paid calls wait behind the provider's
rate limit, then woken (SIGCONT), next to a worker that never stops.

The other worker takes over every partition while the first is frozen. The woken one wakes with
provider calls, timers and a poll cycle of partitions it no longer owns, and rejoins the group:

* it sends no paid call its successor may also send: every paid call is preceded by an
  ownership check the broker arbitrates (a commit under the current group generation), so a
  woken member's queued placements are fenced (``paid_call_fenced`` in its log);
* the partitions it is given back (the same ones when the other worker leaves: case
  ``survivor_leaves``) are restored and every open order resumed: every request reaches
  ``COMPLETED`` with one paid order, and every status stream is contiguous.

Sizes: ``RELIABILITY_FREEZE_REQUESTS`` (12) in ``make test``, ``SOAK_FREEZE_REQUESTS`` (60) under
``-m soak``; the freeze lasts the session timeout plus ``FREEZE_MARGIN_SECONDS``.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    WorkerProcess,
    checked,
    fast_oneatlas_request,
    owned_partitions,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
    wait_until,
)
from reliability_sizes import env_int

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
FREEZE_MARGIN_SECONDS = 6.0
# Few calls per second, so placements queue behind the rate limit when the worker is frozen.
SLOW_PROVIDER = {
    "TASKING_KAFKA__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
    "TASKING_ONEATLAS__RATE_LIMIT_PER_SECOND": "3",
}


@dataclass
class FreezeFigures:
    requests: int
    frozen_seconds: float
    paid_orders: int
    duplicate_orders: int
    fenced_calls: int
    woken_partitions_before: list[int]
    woken_partitions_after: list[int]
    resumed_after_wake: int
    seconds: float


def _alive(*workers: WorkerProcess) -> None:
    for worker in workers:
        if worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited ({worker.process.returncode}):\n" + worker.log_text()[-3000:]
            )


def _count(worker: WorkerProcess, event: str) -> int:
    return worker.log_text().count(f'"event":"{event}"')


def _resumed_after(worker: WorkerProcess, offset: int) -> int:
    """Open orders resumed by the assignments logged after byte ``offset`` of the log."""
    import orjson

    total = 0
    for line in worker.log_text()[offset:].splitlines():
        if '"partitions_assigned"' in line:
            total += int(orjson.loads(line).get("open_orders", 0))
    return total


async def run_freeze(
    broker: EmbeddedBroker, log_dir: Path, count: int, survivor_leaves: bool
) -> tuple[FreezeFigures, list[str]]:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    log_dir = log_dir / ("survivor_leaves" if survivor_leaves else "both_stay")  # logs are parsed
    log_dir.mkdir(exist_ok=True)
    started = time.monotonic()
    async with reliability_stack(broker, topics, partitions=PARTITIONS) as (stack, events):
        sleeper = spawn_worker(stack, log_dir / "sleeper.log", **SLOW_PROVIDER)
        other = spawn_worker(stack, log_dir / "other.log", **SLOW_PROVIDER)
        try:
            await asyncio.gather(wait_ready(sleeper), wait_ready(other))
            await wait_until(
                lambda: bool(owned_partitions(sleeper)) and bool(owned_partitions(other)),
                60,
                "both workers own partitions",
            )
            requests = [fast_oneatlas_request(f"frz{suffix}-{n}", stack.sims) for n in range(count)]
            await stack.publish(*requests)
            # Freeze while the sleeper's orders are on their way to the paid call.
            before = owned_partitions(sleeper)
            await events.wait_for(
                lambda: sum("QUOTED" in events.statuses(r.request_id) for r in requests) >= count // 3, 60
            )
            sleeper.process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                await wait_until(
                    lambda: owned_partitions(other) == set(range(PARTITIONS)),
                    60,
                    "the other worker takes over",
                )
                await asyncio.sleep(
                    max(
                        0.0,
                        SESSION_TIMEOUT_MS / 1000 + FREEZE_MARGIN_SECONDS - (time.monotonic() - frozen_at),
                    )
                )
            finally:
                mark = len(sleeper.log_text())
                sleeper.process.send_signal(signal.SIGCONT)
            frozen = time.monotonic() - frozen_at
            await wait_until(lambda: bool(owned_partitions(sleeper)), 90, "the woken worker rejoins")
            if survivor_leaves:
                assert await asyncio.to_thread(other.terminate) == 0
                await wait_until(
                    lambda: owned_partitions(sleeper) == set(range(PARTITIONS)),
                    90,
                    "the woken worker owns all",
                )
            live = [sleeper] if survivor_leaves else [sleeper, other]
            await wait_all_terminal(events, requests, 120 + count, alive=lambda: _alive(*live))
            found = await checked(stack, events, requests, log_dir)
            figures = FreezeFigures(
                requests=count,
                frozen_seconds=round(frozen, 1),
                paid_orders=sum(found.paid.values()),
                duplicate_orders=sum(max(0, n - 1) for n in found.paid.values()),
                fenced_calls=_count(sleeper, "paid_call_fenced"),
                woken_partitions_before=sorted(before),
                woken_partitions_after=sorted(owned_partitions(sleeper)),
                resumed_after_wake=_resumed_after(sleeper, mark),
                seconds=round(time.monotonic() - started, 1),
            )
            return figures, found.failures()
        finally:
            sleeper.process.send_signal(signal.SIGCONT)
            sleeper.kill()
            other.kill()


@pytest.mark.parametrize("survivor_leaves", [False, True], ids=["both_stay", "survivor_leaves"])
async def test_frozen_worker_pays_nothing_twice_and_resumes_what_it_gets_back(
    broker: EmbeddedBroker, log_dir: Path, survivor_leaves: bool
) -> None:
    count = env_int("RELIABILITY_FREEZE_REQUESTS", 12)
    figures, failures = await run_freeze(broker, log_dir, count, survivor_leaves)
    print("freeze run:", figures)
    assert failures == [], failures
    assert figures.duplicate_orders == 0
    assert figures.paid_orders == count
    assert figures.woken_partitions_after, "the woken worker was given no partition back"
    if survivor_leaves:
        assert set(figures.woken_partitions_before) <= set(figures.woken_partitions_after)


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_soak_frozen_worker(broker: EmbeddedBroker, log_dir: Path) -> None:
    count = env_int("SOAK_FREEZE_REQUESTS", 60)
    for survivor_leaves in (False, True):
        figures, failures = await run_freeze(broker, log_dir, count, survivor_leaves)
        print("freeze soak:", figures)
        assert failures == [], failures[:50]
        assert figures.duplicate_orders == 0
