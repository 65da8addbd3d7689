"""Group membership changes during a run: a worker SIGKILLed next to a survivor, and scaling
1 → 3 → 1 processes. No request is lost, ordered twice or left stuck (CONTRACT §8, ADR 0001).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from harness import (
    TERMINAL,
    WorkerProcess,
    checked,
    mixed_requests,
    owned_partitions,
    reliability_stack,
    spawn_worker,
    status_partition,
    wait_all_terminal,
    wait_ready,
    wait_until,
)
from reliability_sizes import Sizes

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def _alive(*workers: WorkerProcess) -> None:
    for worker in workers:
        if worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {worker.process.returncode}:\n" + worker.log_text()[-3000:]
            )


def _split(workers: list[WorkerProcess], partitions: int) -> bool:
    """Every live worker owns at least one partition and together they own all, once each."""
    owned = [owned_partitions(w) for w in workers]
    union = set().union(*owned)
    return all(owned) and union == set(range(partitions)) and sum(map(len, owned)) == partitions


async def test_survivor_takes_over_a_killed_workers_orders(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path, sizes: Sizes
) -> None:
    async with reliability_stack(broker, unique_topics, partitions=4) as (stack, events):
        victim = spawn_worker(stack, log_dir / "victim.log")
        survivor = spawn_worker(stack, log_dir / "survivor.log")
        try:
            await asyncio.gather(wait_ready(victim), wait_ready(survivor))
            await wait_until(lambda: _split([victim, survivor], 4), 60, "both workers own partitions")
            requests = mixed_requests("takeover", max(12, sizes.requests // 2), stack.sims)
            await stack.publish(*requests)
            await events.wait_for(lambda: all(events.statuses(r.request_id) for r in requests), 60)
            victim_partitions = owned_partitions(victim)
            at_kill = {r.request_id: events.statuses(r.request_id) for r in requests}
            victim.kill()

            await wait_all_terminal(events, requests, 180, alive=lambda: _alive(survivor))
            assert victim_partitions <= owned_partitions(survivor), "survivor did not take over"
            orphaned = [
                r
                for r in requests
                if status_partition(events, r.request_id) in victim_partitions
                and at_kill[r.request_id][-1] not in TERMINAL
            ]
            assert orphaned, "the victim had no unfinished order when it died: nothing was taken over"
            assert (await checked(stack, events, requests, log_dir)).failures() == []
            assert await asyncio.to_thread(survivor.terminate) == 0
        finally:
            victim.kill()
            survivor.kill()


async def test_scale_one_to_three_to_one(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path, sizes: Sizes
) -> None:
    per_batch = max(6, sizes.requests // 3)
    async with reliability_stack(broker, unique_topics, partitions=6) as (stack, events):
        first = spawn_worker(stack, log_dir / "w1.log")
        extra: list[WorkerProcess] = []
        try:
            await wait_ready(first)
            requests = mixed_requests("scale", per_batch, stack.sims)
            await stack.publish(*requests)

            extra = [spawn_worker(stack, log_dir / f"w{n}.log") for n in (2, 3)]
            await wait_until(lambda: _split([first, *extra], 6), 90, "three workers share the partitions")
            batch = mixed_requests("scale", per_batch, stack.sims, start=per_batch)
            await stack.publish(*batch)
            requests += batch
            await events.wait_for(lambda: all(events.statuses(r.request_id) for r in batch), 60)

            codes = await asyncio.gather(*(asyncio.to_thread(w.terminate) for w in extra))
            assert codes == [0, 0], "a worker did not drain and exit cleanly on SIGTERM"
            await wait_until(lambda: owned_partitions(first) == set(range(6)), 90, "one worker owns all")
            batch = mixed_requests("scale", per_batch, stack.sims, start=2 * per_batch)
            await stack.publish(*batch)
            requests += batch

            await wait_all_terminal(events, requests, 180, alive=lambda: _alive(first))
            assert (await checked(stack, events, requests, log_dir)).failures() == []
            assert await asyncio.to_thread(first.terminate) == 0
        finally:
            for worker in (first, *extra):
                worker.kill()
