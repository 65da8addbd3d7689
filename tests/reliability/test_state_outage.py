"""No silent drop: while writes to the state changelog alone fail, a provider call's result is
kept and tried again, and every order still completes once the writes work again.

Through a real worker process on the embedded broker, with the test facility
``TASKING_TEST_FAIL_STATE_WRITES_WHILE`` (``worker.crashpoints``): while a file exists,
every state write fails as a broker timeout would; status, acquisition and delivery topics keep
working. The outage starts while every request's first provider call is under way (the providers
answer after a delay), so results, timers, polls and intake records all meet it.

``make test``: a 20 s outage with retries capped at 1 s (``TASKING_INTAKE__STATE_RETRY_MAX_SECONDS``),
more tries than the 8 after which results used to be dropped. ``make soak``: 2 minutes with the
default cap (30 s). Sizes: ``RELIABILITY_STATE_OUTAGE_SECONDS``, ``SOAK_STATE_OUTAGE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from harness import (
    checked,
    mixed_requests,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
    wait_until,
)
from reliability_sizes import env_int

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault

pytestmark = pytest.mark.integration


async def run_outage(
    broker: EmbeddedBroker, topics: TopicSettings, log_dir: Path, outage: float, cap: str | None
) -> dict[str, float]:
    async with reliability_stack(broker, topics) as (stack, events):
        for sim in (stack.sims.oneatlas, stack.sims.up42):
            sim.inject(Fault("latency", path=r"/api/.*|/v2/.*", delay=1.5, times=None))
        switch = log_dir / "state-outage"
        overrides = {
            "TASKING_TEST_FAIL_STATE_WRITES_WHILE": str(switch),
            # Slow answers, not timeouts: the calls must succeed and their results meet the outage.
            "TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "5",
            "TASKING_HTTP_CLIENT__SETTLE_SECONDS": "6",
        }
        if cap is not None:
            overrides["TASKING_INTAKE__STATE_RETRY_MAX_SECONDS"] = cap
        worker = spawn_worker(stack, log_dir / "worker.log", **overrides)
        try:
            await wait_ready(worker)
            requests = mixed_requests("outage", 6, stack.sims)
            await stack.publish(*requests)
            await wait_until(
                lambda: all(events.statuses(r.request_id)[:1] == ["RECEIVED"] for r in requests),
                60,
                "every request received",
            )
            switch.touch()  # the first provider calls are still under way (1.5 s latency)
            await asyncio.sleep(outage)
            switch.unlink()
            ended = time.monotonic()
            await wait_all_terminal(events, requests, timeout=180 + outage)
            recovered = time.monotonic() - ended
            verdict = await checked(stack, events, requests, log_dir)
            assert verdict.failures() == []
            log = worker.log_text()
            assert "result_dropped_after_retries" not in log
            tries = [orjson.loads(line) for line in log.splitlines() if '"state_write_failed"' in line]
            assert tries, "results met the outage"
            assert worker.process.poll() is None
            return {
                "requests": len(requests),
                "outage_s": outage,
                "recovered_s": round(recovered, 1),
                "most_tries_of_one_result": max(int(t["attempt"]) for t in tries),
            }
        finally:
            worker.kill()


async def test_results_survive_a_state_write_outage(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    outage = env_int("RELIABILITY_STATE_OUTAGE_SECONDS", 20)
    figures = await run_outage(broker, unique_topics, log_dir, outage, cap="1")
    print("state outage:", figures)
    # Results used to be dropped after 8 failed tries: these were tried more often and kept.
    assert figures["most_tries_of_one_result"] > 8


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_results_survive_a_two_minute_state_write_outage(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    outage = env_int("SOAK_STATE_OUTAGE_SECONDS", 120)
    figures = await run_outage(broker, unique_topics, log_dir, outage, cap=None)
    print("state outage (soak):", figures)
    assert figures["requests"] == 6
