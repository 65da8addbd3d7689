"""Random-kill run: requests of both providers while the worker is SIGKILLed at random moments and
restarted. At the end every request is terminal (``COMPLETED``), the simulators' call records
show exactly one paid order (and one accepted UP42 quotation) per request, every status stream is
contiguous, and every re-published event has the same ``ce_id`` and identical content.

Sizes: ``RELIABILITY_REQUESTS``/``RELIABILITY_KILLS`` in ``make test`` (20/3), ``SOAK_REQUESTS``/
``SOAK_KILLS`` in ``make soak`` (500/50). The kill moments come from a seeded generator
(``RELIABILITY_SEED``), so a failing run can be replayed; kills land anywhere: during start-up,
group join, restore, provider calls or idle tracking.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    RecordingCollector,
    WorkerProcess,
    checked,
    mixed_requests,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
)
from reliability_sizes import Sizes, env_int

from worker.config import TopicSettings
from worker.events.models import OrderRequest
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


@dataclass
class Figures:
    requests: int
    kills: int
    paid_orders: int
    duplicate_orders: int
    lost: int
    status_events: int
    republished: int
    seconds: float


async def run_random_kills(
    broker: EmbeddedBroker, log_dir: Path, count: int, kills: int, seed: int
) -> tuple[Figures, list[str]]:
    rng = random.Random(seed)
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    started = time.monotonic()
    async with reliability_stack(broker, topics, partitions=3) as (stack, events):
        requests: list[OrderRequest] = []
        chunk = -(-count // (kills + 1))
        worker = spawn_worker(stack, log_dir / "worker-0.log")
        try:
            for k in range(kills + 1):
                batch = mixed_requests(
                    f"rk{suffix}", min(chunk, count - len(requests)), stack.sims, start=len(requests)
                )
                requests += batch
                if batch:
                    await stack.publish(*batch)
                if k == kills:
                    break
                await _sleep_random(rng)
                worker.kill()
                worker = spawn_worker(stack, log_dir / f"worker-{k + 1}.log")
            await wait_all_terminal(events, requests, timeout=120 + count * 0.5, alive=lambda: _alive(worker))
            found = await checked(stack, events, requests, log_dir)
        finally:
            worker.kill()
        figures = _figures(events, found.paid, requests, kills, time.monotonic() - started)
        return figures, found.failures()


async def _sleep_random(rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(0.5, 7.0))


def _alive(worker: WorkerProcess) -> None:
    if worker.process.poll() is not None:
        raise AssertionError(
            f"worker exited by itself ({worker.process.returncode}):\n" + worker.log_text()[-3000:]
        )


def _figures(
    events: RecordingCollector, paid: dict[str, int], requests: list[OrderRequest], kills: int, seconds: float
) -> Figures:
    status_records = [r for r in events.raw if r.topic == events._topics.status]
    unique = {r.header("ce_id") for r in status_records}
    return Figures(
        requests=len(requests),
        kills=kills,
        paid_orders=sum(paid.values()),
        duplicate_orders=sum(max(0, n - 1) for n in paid.values()),
        lost=sum(1 for r in requests if not events.statuses(r.request_id)),
        status_events=len(unique),
        republished=len(status_records) - len(unique),
        seconds=round(seconds, 1),
    )


async def test_random_sigkills_lose_nothing_and_order_once(
    broker: EmbeddedBroker, log_dir: Path, sizes: Sizes
) -> None:
    figures, failures = await run_random_kills(
        broker, log_dir, sizes.requests, sizes.kills, env_int("RELIABILITY_SEED", 1)
    )
    assert failures == [], failures
    assert figures.lost == 0
    assert figures.duplicate_orders == 0
    assert figures.paid_orders == sizes.requests


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_soak_random_sigkills(broker: EmbeddedBroker, log_dir: Path, soak_sizes: Sizes) -> None:
    figures, failures = await run_random_kills(
        broker, log_dir, soak_sizes.requests, soak_sizes.kills, env_int("RELIABILITY_SEED", 2)
    )
    print("random-kill soak:", figures)
    assert failures == [], failures[:50]
    assert figures.lost == 0
    assert figures.duplicate_orders == 0
