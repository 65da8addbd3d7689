"""Test harness: a real broker, both simulators as real HTTP servers, and workers (in process or as
child processes configured only through TASKING_* variables), plus an event collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.app import Worker, build_worker
from worker.config import Settings, TopicSettings, load_settings
from worker.events.codec import encode_input
from worker.events.models import Command, OrderRequest
from worker.kafka.broker import EmbeddedBroker, free_port
from worker.simulators.server import RunningSimulators, start_simulators

_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def patched_env(values: Mapping[str, str]) -> Iterator[None]:
    """Temporarily set environment variables (settings are read from the environment only)."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def topic_env(topics: TopicSettings) -> dict[str, str]:
    return {f"TASKING_TOPICS__{name.upper()}": value for name, value in topics.model_dump().items()}


@dataclass
class Stack:
    """Everything a worker talks to, for one test."""

    broker: EmbeddedBroker
    sims: RunningSimulators
    topics: TopicSettings
    group_id: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        """The complete TASKING_* environment of a worker pointed at this stack."""
        values = {
            "TASKING_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "TASKING_KAFKA__GROUP_ID": self.group_id,
            "TASKING_KAFKA__ENABLE_IDEMPOTENCE": "false",
            "TASKING_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "TASKING_TRACKING__POLL_INTERVAL_SECONDS": "0.5",
            "TASKING_HTTP__PORT": "0",
            "TASKING_HTTP_CLIENT__SETTLE_SECONDS": "1",
            "TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "0.8",
            "TASKING_HTTP_CLIENT__BACKOFF_BASE_SECONDS": "0.05",
            "TASKING_HTTP_CLIENT__BACKOFF_MAX_SECONDS": "0.5",
            "TASKING_LOG_FORMAT": "json",
            "TASKING_SHUTDOWN_GRACE_SECONDS": "2",
            **topic_env(self.topics),
            **self.sims.worker_env(),
            **self.extra_env,
        }
        values.update({k.upper(): v for k, v in overrides.items()})
        return values

    def settings(self, **overrides: str) -> Settings:
        with patched_env(self.env(**overrides)):
            return load_settings()

    async def publish(self, *messages: OrderRequest | Command, raw: list[tuple[str, bytes | None, bytes]] | None = None) -> None:
        """Publish requests/commands (binary CloudEvents) and raw (topic, key, value) records."""
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap_servers,
                                    enable_idempotence=False)
        await producer.start()
        try:
            for message in messages:
                topic = self.topics.requests if isinstance(message, OrderRequest) else self.topics.commands
                record = encode_input(message)
                await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
            for topic, key, value in raw or []:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()


@dataclass
class InProcessWorker:
    worker: Worker
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def shutdown(self, timeout: float = 20.0) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


async def start_worker(stack: Stack, **overrides: str) -> InProcessWorker:
    """A worker running in this event loop (for flow tests that need no crash)."""
    worker = await build_worker(stack.settings(**overrides))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_until(stop))
    return InProcessWorker(worker, stop, task)


@dataclass
class WorkerProcess:
    """``tasking-worker run`` as a child process (for crash and rebalance tests)."""

    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn_worker(stack: Stack, log_path: Path, **overrides: str) -> WorkerProcess:
    port = free_port()
    env = {**os.environ, **stack.env(TASKING_HTTP__PORT=str(port), **overrides)}
    exe = Path(sys.executable).parent / "tasking-worker"
    handle = log_path.open("ab")
    process = subprocess.Popen([str(exe), "run"], env=env, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603
    return WorkerProcess(process, log_path, port)


class Collector:
    """Reads the status and acquisition topics from the beginning, grouped by requestId."""

    def __init__(self, bootstrap_servers: str, topics: TopicSettings) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self.status: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.acquisitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dead_letters: list[dict[str, Any]] = []
        self.headers: dict[str, list[dict[str, bytes]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(self._topics.status, self._topics.acquisitions,
                                    self._topics.dead_letter, bootstrap_servers=self._bootstrap,
                                    auto_offset_reset="earliest")
        await consumer.start()
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            async for record in consumer:
                value = orjson.loads(record.value)
                if record.topic == self._topics.status:
                    self.status[value["requestId"]].append(value)
                    self.headers[value["requestId"]].append(dict(record.headers))
                elif record.topic == self._topics.acquisitions:
                    self.acquisitions[value["requestId"]].append(value)
                else:
                    self.dead_letters.append(value)
        finally:
            await consumer.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def latest(self, request_id: str) -> dict[str, Any] | None:
        events = self.unique(request_id)
        return events[-1] if events else None

    def unique(self, request_id: str) -> list[dict[str, Any]]:
        """Status events de-duplicated by sequence (re-publishes keep their ce_id), in order."""
        by_seq = {e["sequence"]: e for e in self.status.get(request_id, [])}
        return [by_seq[s] for s in sorted(by_seq)]

    def statuses(self, request_id: str) -> list[str]:
        return [e["status"] for e in self.unique(request_id)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached; statuses: " + repr(
                    {k: self.statuses(k) for k in self.status}))
            await asyncio.sleep(0.1)

    async def wait_status(self, request_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        await self.wait_for(lambda: any(e["status"] == status for e in self.unique(request_id)), timeout)
        return next(e for e in self.unique(request_id) if e["status"] == status)


@contextlib.asynccontextmanager
async def stack_for(broker: EmbeddedBroker, topics: TopicSettings, speed: float = 3600.0,
                    partitions: int = 3) -> AsyncIterator[tuple[Stack, Collector]]:
    """Topics + simulators + collector for one test; everything is stopped at the end."""
    await broker.create_contract_topics(topics, partitions=partitions)
    sims = await start_simulators(speed=speed)
    stack = Stack(broker, sims, topics, group_id=f"g-{topics.requests.rsplit('.', 1)[-1]}")
    collector = Collector(broker.bootstrap_servers, topics)
    await collector.start()
    try:
        yield stack, collector
    finally:
        await collector.stop()
        await sims.stop()


def window(days_from_now: float = 0.0, length_days: float = 30.0) -> dict[str, str]:
    start = datetime.now(UTC) + timedelta(days=days_from_now)
    end = start + timedelta(days=length_days)
    return {"start": start.isoformat(), "end": end.isoformat()}


TOULOUSE = [[1.4316, 43.5688], [1.4316, 43.6019], [1.4670, 43.6019], [1.4670, 43.5688], [1.4316, 43.5688]]
PANAMA = [[-79.6418, 9.0727], [-79.4387, 9.0727], [-79.4388, 8.8703], [-79.6418, 8.8703], [-79.6418, 9.0727]]
UP42_PHR_PRODUCT = "bd102407-1814-4f92-8b5a-7697b7a73f5a"


def oneatlas_request(request_id: str, mission: str = "PLEIADES", prog: str = "ONEPLAN",
                     **extra: Any) -> OrderRequest:
    body: dict[str, Any] = {
        "requestId": request_id, "provider": "oneatlas",
        "product": {"mission": mission, "programmingType": prog},
        "aoi": {"type": "Polygon", "coordinates": [TOULOUSE]},
        "window": window(), "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
    }
    body.update(extra)
    return OrderRequest.model_validate(body)


def up42_request(request_id: str, **extra: Any) -> OrderRequest:
    body: dict[str, Any] = {
        "requestId": request_id, "provider": "up42", "product": {"dataProductId": UP42_PHR_PRODUCT},
        "aoi": {"type": "Polygon", "coordinates": [PANAMA]}, "window": window(),
        "constraints": {"maxCloudCover": 15, "maxIncidenceAngle": 20},
    }
    body.update(extra)
    return OrderRequest.model_validate(body)
