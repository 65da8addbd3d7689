"""A lost partition is not a crash: an intake commit refused because the member left its
generation (``CommitFailedError``) stops the work of those partitions; the process lives,
rejoins, restores what it is assigned again and finishes every order, each paid once.

Through two real worker processes: in one, the test facility ``TASKING_TEST_FREEZE_AT=before_commit:<s>``
(``worker.crashpoints``) blocks the whole process right before its first batch commit
for longer than the session timeout (6 s), exactly as a ``SIGSTOP`` at that point would: the
group evicts it and gives its partitions to the other, so the commit it sends on waking is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import (
    assignments,
    checked,
    mixed_requests,
    owned_partitions,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
    wait_until,
)

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def test_a_fenced_commit_stops_the_partitions_and_the_process_rejoins(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        other = spawn_worker(stack, log_dir / "other.log")
        worker = None
        try:
            await wait_ready(other)
            worker = spawn_worker(stack, log_dir / "worker.log", TASKING_TEST_FREEZE_AT="before_commit:12")
            await wait_ready(worker)
            await wait_until(lambda: bool(owned_partitions(worker)), 30, "partitions for the frozen one")
            requests = mixed_requests("fenced", 9, stack.sims)  # some on each instance's partitions
            await stack.publish(*requests)
            frozen = worker
            await wait_all_terminal(
                events, requests, timeout=180, alive=lambda: _alive(frozen.process.poll())
            )
            verdict = await checked(stack, events, requests, log_dir)
            assert verdict.failures() == []
            log = worker.log_text()
            assert '"test_freeze_point"' in log
            assert '"commit_fenced"' in log
            await wait_until(lambda: len(assignments(frozen)) >= 2, 60, "assigned again after the fence")
            assert worker.process.poll() is None, "the process lives"
            await wait_ready(worker)
        finally:
            other.kill()
            if worker is not None:
                worker.kill()


def _alive(returncode: int | None) -> None:
    if returncode is not None:
        raise AssertionError(f"the worker exited with {returncode}")
