"""What every benchmark scenario stands on: the embedded broker, the simulators in a child process,
request records, and a worker built from ``TASKING_*`` settings exactly as ``tasking-worker run``
builds it (``worker.app.build_worker``), running in this process so that its figures can be read
directly (store, runner, instrumentation hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from worker.app import Worker, build_worker, tune_gc
from worker.config import Settings, TopicSettings, settings_from
from worker.events.codec import EncodedRecord, encode_input
from worker.events.models import OrderRequest
from worker.kafka.broker import EmbeddedBroker
from worker.observability.logging import configure_logging

PARTITIONS = 6
TOULOUSE = [[1.4316, 43.5688], [1.4316, 43.6019], [1.4670, 43.6019], [1.4670, 43.5688], [1.4316, 43.5688]]


def unique_topics(label: str) -> TopicSettings:
    """Contract topics with a unique suffix (scenarios share one broker)."""
    suffix = f"{label}.{uuid.uuid4().hex[:6]}"
    return TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})


def oneatlas_request(request_id: str) -> OrderRequest:
    """A Pléiades ONEPLAN request over Toulouse (feasibility → price → order, no human step)."""
    start = datetime.now(UTC)
    return OrderRequest.model_validate(
        {
            "requestId": request_id,
            "provider": "oneatlas",
            "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"},
            "aoi": {"type": "Polygon", "coordinates": [TOULOUSE]},
            "window": {"start": start.isoformat(), "end": (start + timedelta(days=30)).isoformat()},
            "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
        }
    )


def request_records(prefix: str, count: int) -> list[EncodedRecord]:
    """``count`` encoded requests with ids ``{prefix}-000001`` …"""
    return [encode_input(oneatlas_request(f"{prefix}-{i:06d}")) for i in range(1, count + 1)]


@dataclass
class SimProcess:
    """``python -m bench.simproc`` as a child process (see that module)."""

    process: subprocess.Popen[bytes]
    oneatlas_url: str
    env: dict[str, str]

    @classmethod
    def start(cls, latency: float, nagle: bool = False) -> SimProcess:
        extra = ["--nagle"] if nagle else []
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.simproc", "--latency", str(latency), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        hello = orjson.loads(process.stdout.readline())
        return cls(process, hello["oneatlas_url"], hello["env"])

    def calls(self) -> list[dict[str, Any]]:
        """The OneAtlas simulator's call record."""
        answer = httpx.get(self.oneatlas_url + "/_sim/calls", timeout=60)
        calls: list[dict[str, Any]] = answer.json()["calls"]
        return calls

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def simulators(latency: float, nagle: bool = False) -> Iterator[SimProcess]:
    sims = SimProcess.start(latency, nagle)
    try:
        yield sims
    finally:
        sims.stop()


def worker_settings(
    broker: EmbeddedBroker,
    topics: TopicSettings,
    sim_env: Mapping[str, str],
    concurrency: int,
    **overrides: str,
) -> Settings:
    """The worker's settings, read from ``TASKING_*`` variables like in production.

    The provider rate limit is lifted (the benchmark measures the worker, not a configured
    pacing); concurrency is the per-provider ``max_concurrency``; tracking polls are far apart so
    they do not mix into the step figures.
    """
    env = {
        "TASKING_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "TASKING_KAFKA__GROUP_ID": f"bench-{topics.requests.rsplit('.', 1)[-1]}",
        "TASKING_KAFKA__ENABLE_IDEMPOTENCE": "false",
        "TASKING_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "TASKING_TRACKING__POLL_INTERVAL_SECONDS": "3600",
        "TASKING_HTTP__PORT": "0",
        "TASKING_HTTP__HOST": "127.0.0.1",
        "TASKING_ONEATLAS__RATE_LIMIT_PER_SECOND": "1000000",
        "TASKING_ONEATLAS__MAX_CONCURRENCY": str(concurrency),
        "TASKING_LOG_LEVEL": "WARNING",
        "TASKING_APPROVAL__UNBUDGETED_CEILING": '{"EUR": 1000000000, "CREDITS": 1000000000}',
        "TASKING_LOG_FORMAT": "json",
        **{f"TASKING_TOPICS__{k.upper()}": v for k, v in topics.model_dump().items()},
        **sim_env,
        **overrides,
    }
    return settings_from(env)


@dataclass
class RunningWorker:
    worker: Worker
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def ready(self, timeout: float = 60.0) -> None:
        """Wait until the group assigned every partition and the restore finished."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (self.worker.health.readiness().ok and self.worker.intake.store.owned_partitions()):
            if self.task.done():
                self.task.result()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the worker did not become ready")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[RunningWorker]:
    """The worker as ``tasking-worker run`` builds it (logging at the configured level)."""
    configure_logging(settings.log_level, settings.resolved_log_format().value, settings.secret_values())
    worker = await build_worker(settings)
    tune_gc()  # as `tasking-worker run` does
    stop = asyncio.Event()
    running = RunningWorker(worker, stop, asyncio.create_task(worker.run_until(stop)))
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(running.task, 60)


@contextlib.asynccontextmanager
async def producer(bootstrap: str, batch_size: int = 16384) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=batch_size,
        max_request_size=8 * 1024 * 1024,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def send_all(
    client: AIOKafkaProducer, topic: str, records: list[EncodedRecord], partition: int | None = None
) -> None:
    """Write records as fast as the producer batches them, then wait for every ack."""
    futures = [
        await client.send(topic, r.value, key=r.key, headers=r.headers, partition=partition) for r in records
    ]
    await asyncio.gather(*futures)


async def produce(bootstrap: str, topic: str, records: list[EncodedRecord]) -> None:
    """:func:`send_all` through a producer of its own."""
    async with producer(bootstrap) as client:
        await send_all(client, topic, records)
