"""Broker stall: the broker process is frozen (SIGSTOP) mid-run and thawed (SIGCONT). Uses its own
broker instance, never the session one.

* The worker recovers by itself: every order completes with exactly one paid order, the status
  streams stay contiguous, the process never exits, and its HTTP probes keep answering (the event
  loop is not blocked by the stalled client).
* ``/livez``/``/readyz`` report the stall while it lasts: the intake's broker watch makes a
  bounded round trip to the cluster every second (an empty ``getmany`` proves nothing), so
  readiness fails after ``TASKING_HEALTH__BROKER_TIMEOUT_SECONDS`` and liveness after
  ``TASKING_HEALTH__STALL_TIMEOUT_SECONDS`` without an answer (lowered here), and both recover.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import (
    checked,
    mixed_requests,
    probe,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
)

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


FAST_PROBES = {
    "TASKING_HEALTH__BROKER_TIMEOUT_SECONDS": "3",
    "TASKING_HEALTH__STALL_TIMEOUT_SECONDS": "6",
    "TASKING_HEALTH__BROKER_CHECK_INTERVAL_SECONDS": "1",
}


async def _stall_run(unique_topics: TopicSettings, log_dir: Path, stall: float) -> dict[str, list[int]]:
    """Run orders through a stall of ``stall`` seconds; returns the probe answers seen during it."""
    seen: dict[str, list[int]] = {"/livez": [], "/readyz": []}
    async with (
        EmbeddedBroker(log_path=log_dir / "broker.log") as broker,
        reliability_stack(broker, unique_topics) as (stack, events),
    ):
        worker = spawn_worker(stack, log_dir / "worker.log", **FAST_PROBES)
        try:
            await wait_ready(worker)
            requests = mixed_requests("stall", 8, stack.sims)
            await stack.publish(*requests)
            await events.wait_for(
                lambda: any("ORDERED" in events.statuses(r.request_id) for r in requests), 60
            )
            broker.pause()
            try:
                until = time.monotonic() + stall
                while time.monotonic() < until:
                    for path, answers in seen.items():
                        answers.append((await probe(worker, path))[0])
                    await asyncio.sleep(1.0)
            finally:
                broker.resume()
            await wait_all_terminal(events, requests, 180)
            assert worker.process.poll() is None, "the worker died during the stall"
            assert (await checked(stack, events, requests, log_dir)).failures() == []
            assert (await probe(worker, "/readyz"))[0] == 200
        finally:
            worker.kill()
    return seen


async def test_worker_recovers_from_a_broker_stall(unique_topics: TopicSettings, log_dir: Path) -> None:
    seen = await _stall_run(unique_topics, log_dir, stall=10.0)
    assert seen["/livez"], "no probe during the stall"
    assert 0 not in seen["/livez"], "the probes stopped answering during the stall"
    assert 503 in seen["/readyz"], "readiness did not report the stall"
    assert 503 in seen["/livez"], "liveness did not report the stall"
    assert seen["/readyz"][0] == 200, "readiness failed before the broker had been silent long enough"


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_probes_report_a_long_broker_stall(unique_topics: TopicSettings, log_dir: Path) -> None:
    seen = await _stall_run(unique_topics, log_dir, stall=40.0)
    assert 503 in seen["/livez"]
    assert 503 in seen["/readyz"]
