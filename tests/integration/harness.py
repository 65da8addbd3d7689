"""Test harness: a real broker, both simulators as real HTTP servers, and workers (in process or as
child processes configured only through TASKING_* variables), plus an event collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.app import Worker, build_worker
from worker.config import Settings, TopicSettings, settings_from
from worker.events.codec import encode_input
from worker.events.models import Command, OrderRequest
from worker.kafka.broker import EmbeddedBroker, free_port
from worker.kafka.offsets import read_end
from worker.simulators.server import RunningSimulators, start_simulators

#: Above every simulated price: the flows under test auto-approve their unbudgeted requests.
UNBUDGETED_CEILING = '{"EUR": 1000000000, "CREDITS": 1000000000}'


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
    # Security options of the test's own clients (a secured broker): aiokafka keyword arguments.
    client_options: dict[str, Any] = field(default_factory=dict)

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
            # Delivery waits in worker (real) seconds: short, so a flow ends within a test.
            "TASKING_TRACKING__DELIVERY_INTERVAL_SECONDS": "0.5",
            "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS": "8",
            # The flows under test order requests without a budget: a deployment ceiling above
            # every simulated price (the default, none, sends them to DECISION_REQUIRED).
            "TASKING_APPROVAL__UNBUDGETED_CEILING": UNBUDGETED_CEILING,
            **topic_env(self.topics),
            **self.sims.worker_env(),
            **self.extra_env,
        }
        values.update({k.upper(): v for k, v in overrides.items()})
        return values

    def settings(self, **overrides: str) -> Settings:
        return settings_from(self.env(**overrides))

    async def publish(
        self, *messages: OrderRequest | Command, raw: list[tuple[str, bytes | None, bytes]] | None = None
    ) -> None:
        """Publish requests/commands (binary CloudEvents) and raw (topic, key, value) records."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap_servers, enable_idempotence=False, **self.client_options
        )
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


@contextlib.asynccontextmanager
async def running_worker(stack: Stack, **overrides: str) -> AsyncIterator[InProcessWorker]:
    """A worker in this event loop for the duration of the block, shut down gracefully after."""
    worker = await start_worker(stack, **overrides)
    try:
        yield worker
    finally:
        await worker.shutdown()


def spawn_worker(stack: Stack, log_path: Path, **overrides: str) -> WorkerProcess:
    port = free_port()
    env = {**os.environ, **stack.env(TASKING_HTTP__PORT=str(port), **overrides)}
    exe = Path(sys.executable).parent / "tasking-worker"
    handle = log_path.open("ab")
    process = subprocess.Popen([str(exe), "run"], env=env, stdout=handle, stderr=subprocess.STDOUT)
    return WorkerProcess(process, log_path, port)


class Collector:
    """Reads the status, acquisition, delivery and dead-letter topics from the beginning, grouped
    by requestId (a delivery's is its STAC Item's ``tasking:request_id``)."""

    def __init__(
        self, bootstrap_servers: str, topics: TopicSettings, options: dict[str, Any] | None = None
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._options = options or {}
        self.status: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.acquisitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.deliveries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.delivery_headers: dict[str, list[dict[str, bytes]]] = defaultdict(list)
        self.dead_letters: list[dict[str, Any]] = []
        self.headers: dict[str, list[dict[str, bytes]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            self._topics.status,
            self._topics.acquisitions,
            self._topics.deliveries,
            self._topics.dead_letter,
            bootstrap_servers=self._bootstrap,
            auto_offset_reset="earliest",
            **self._options,
        )
        await consumer.start()
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            async for record in consumer:
                self._take(record)
        finally:
            await consumer.stop()

    def _take(self, record: Any) -> None:
        """File one consumed record under its topic and request."""
        value = orjson.loads(record.value)
        if record.topic == self._topics.status:
            self.status[value["requestId"]].append(value)
            self.headers[value["requestId"]].append(dict(record.headers))
        elif record.topic == self._topics.acquisitions:
            self.acquisitions[value["requestId"]].append(value)
        elif record.topic == self._topics.deliveries:
            request_id = value["properties"]["tasking:request_id"]
            self.deliveries[request_id].append(value)
            self.delivery_headers[request_id].append(dict(record.headers))
        else:
            self.dead_letters.append(value)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def delivered_items(self, request_id: str) -> list[str]:
        """The item ids published for ``request_id``, first publication order, without re-publishes."""
        return list(dict.fromkeys(item["id"] for item in self.deliveries[request_id]))

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
                raise TimeoutError(
                    "condition not reached; statuses: " + repr({k: self.statuses(k) for k in self.status})
                )
            await asyncio.sleep(0.1)

    async def wait_status(self, request_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        await self.wait_for(lambda: any(e["status"] == status for e in self.unique(request_id)), timeout)
        return next(e for e in self.unique(request_id) if e["status"] == status)


@contextlib.asynccontextmanager
async def stack_for(
    broker: EmbeddedBroker, topics: TopicSettings, speed: float = 3600.0, partitions: int = 3
) -> AsyncIterator[tuple[Stack, Collector]]:
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


def oneatlas_request(
    request_id: str, mission: str = "PLEIADES", prog: str = "ONEPLAN", **extra: Any
) -> OrderRequest:
    body: dict[str, Any] = {
        "requestId": request_id,
        "provider": "oneatlas",
        "product": {"mission": mission, "programmingType": prog},
        "aoi": {"type": "Polygon", "coordinates": [TOULOUSE]},
        "window": window(),
        "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
    }
    body.update(extra)
    return OrderRequest.model_validate(body)


def up42_request(request_id: str, **extra: Any) -> OrderRequest:
    body: dict[str, Any] = {
        "requestId": request_id,
        "provider": "up42",
        "product": {"dataProductId": UP42_PHR_PRODUCT},
        "aoi": {"type": "Polygon", "coordinates": [PANAMA]},
        "window": window(),
        "constraints": {"maxCloudCover": 15, "maxIncidenceAngle": 20},
    }
    body.update(extra)
    return OrderRequest.model_validate(body)


# =============================================================================================
# Reliability-suite additions: fast provider lifecycles, process probes, raw event records and
# the checks of CONTRACT §8 (one paid order per request, contiguous sequences, stable ce_ids).
# =============================================================================================

HOUR = 3600.0
DAY = 24 * HOUR
# Simulated seconds per real second for the reliability runs: an order completes in seconds.
FAST_SPEED = 3600.0


def fast_lifecycle(sims: RunningSimulators) -> None:
    """Make both simulators finish their orders within a few simulated hours.

    OneAtlas: one clear acquisition 4 h after activation covers the AOI (so ONEPLAN completes);
    UP42: study, quotation, placement and fulfilment each within an hour, one delivery halfway
    through the (short) window. Token lifetimes are left as they are (tests expire tokens on
    purpose where they want to).
    """
    from worker.simulators.up42 import Up42SimConfig

    oneatlas = sims.oneatlas
    oneatlas.acquisition_interval = 4 * HOUR
    oneatlas.coverage_per_acquisition = 1.0
    oneatlas.min_clear_sky = 85.0  # cloud cover <= 15 < maxCloudCover 20: always validated
    sims.up42.config = Up42SimConfig(
        study_delay=HOUR,
        quotation_delay=HOUR,
        placement_delay=HOUR / 2,
        fulfilment_delay=HOUR / 2,
        deliveries_per_order=1,
    )


def sim_window(sims: RunningSimulators | None, length_days: float) -> dict[str, str]:
    """A window starting at the simulators' "now" (their clock runs ahead of real time), so a
    request built late in a long run still has its window ahead at the provider."""
    if sims is None:
        return window(length_days=length_days)
    start = sims.oneatlas.core.clock.now()
    return {"start": start.isoformat(), "end": (start + timedelta(days=length_days)).isoformat()}


def fast_oneatlas_request(
    request_id: str, sims: RunningSimulators | None = None, **extra: Any
) -> OrderRequest:
    """PLEIADES ONEPLAN, automatic feasibility, auto-approved: RECEIVED → FEASIBLE → QUOTED →
    ORDERED → IN_PROGRESS → COMPLETED with :func:`fast_lifecycle` (one paid ``POST /orders``)."""
    extra.setdefault("window", sim_window(sims, 30))
    return oneatlas_request(request_id, **extra)


def fast_up42_request(request_id: str, sims: RunningSimulators | None = None, **extra: Any) -> OrderRequest:
    """UP42 with a 12 h window: the order and its quotation are paid once each, then COMPLETED."""
    extra.setdefault("window", sim_window(sims, 0.5))
    return up42_request(request_id, **extra)


def paid_orders(sims: RunningSimulators, request: OrderRequest) -> int:
    """Orders the provider created for ``request`` (its customer reference), from the call records."""
    reference = request.customer_reference or request.request_id
    if request.provider.value == "oneatlas":
        return sims.oneatlas.paid_order_count(reference)
    return sims.up42.paid_order_count(reference)


def accepted_quotations(sims: RunningSimulators, request: OrderRequest) -> int:
    """UP42 quotations accepted (credits spent) for ``request``; 0 for OneAtlas legacy orders."""
    if request.provider.value != "up42":
        return 0
    return sims.up42.accepted_quotations(request.customer_reference or request.request_id)


TERMINAL = frozenset({"COMPLETED", "REJECTED", "CANCELLED", "FAILED", "EXPIRED"})


async def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``http://127.0.0.1:{port}{path}``: status code and body text."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.get(f"http://127.0.0.1:{port}{path}")
        return response.status_code, response.text


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(_LABEL.findall(label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def probe(process: WorkerProcess, path: str) -> tuple[int, str]:
    """``/livez`` or ``/readyz`` of a worker process; (0, error) when it does not answer."""
    try:
        return await http_get(process.http_port, path, timeout=2.0)
    except Exception as exc:  # a probe that cannot connect is an answer too
        return 0, type(exc).__name__


async def wait_ready(process: WorkerProcess, timeout: float = 60.0) -> None:
    """Wait until the worker process answers ``/readyz`` 200 (assigned and restored)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.process.poll() is not None:
            raise RuntimeError(
                f"worker exited with {process.process.returncode}:\n" + process.log_text()[-3000:]
            )
        status, _ = await probe(process, "/readyz")
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("worker not ready:\n" + process.log_text()[-3000:])
        await asyncio.sleep(0.2)


class NamedCase(Protocol):
    @property
    def name(self) -> str: ...


class CheckedOutcome(Protocol):
    def failures(self) -> list[str]: ...


CaseT = TypeVar("CaseT", bound=NamedCase)


async def failed_cases(
    cases: Sequence[CaseT], run: Callable[[CaseT], Awaitable[CheckedOutcome]], concurrency: int
) -> list[str]:
    """Run every case, at most ``concurrency`` at once; one line per case that raised or whose
    outcome lists failures (a case's failure never stops the others)."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(case: CaseT) -> CheckedOutcome | BaseException:
        async with gate:
            try:
                return await run(case)
            except Exception as exc:  # reported with the case name below
                return exc

    results = await asyncio.gather(*(bounded(c) for c in cases))
    report = []
    for case, result in zip(cases, results, strict=True):
        if isinstance(result, BaseException):
            report.append(f"{case.name}: {type(result).__name__}: {result}")
        elif wrong := result.failures():
            report.append(f"{case.name}: " + "; ".join(wrong))
    return report


def crash_points(process: WorkerProcess) -> list[str]:
    """The test crash points (``worker.crashpoints``) this process's log reports."""
    points = []
    for line in process.log_text().splitlines():
        if '"test_crash_point"' in line:
            with contextlib.suppress(ValueError):
                points.append(str(orjson.loads(line)["point"]))
    return points


@dataclass(frozen=True)
class RawRecord:
    """One record as it is in Kafka (the reliability checks look at bytes and headers)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode()
        return None


class RecordingCollector(Collector):
    """A :class:`Collector` that also keeps every raw record (value bytes and headers)."""

    def __init__(self, bootstrap_servers: str, topics: TopicSettings) -> None:
        super().__init__(bootstrap_servers, topics)
        self.raw: list[RawRecord] = []

    def _take(self, record: Any) -> None:
        self.raw.append(
            RawRecord(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                tuple(record.headers),
            )
        )
        super()._take(record)

    def event_problems(self) -> list[str]:
        """Violations of the event guarantees over everything collected so far:

        * every status event's ``ce_id`` is ``{requestId}:{sequence}``;
        * a ``ce_id`` seen twice (a re-publish) carries byte-identical content;
        * each request's sequences are contiguous from 1 and nothing follows a terminal status;
        * each status event's ``previousStatus`` is the status of the event before it.
        """
        problems: list[str] = []
        by_id: dict[tuple[str, str], bytes | None] = {}
        for record in self.raw:
            if record.topic == self._topics.dead_letter:
                continue
            ce_id = record.header("ce_id") or ""
            seen = by_id.setdefault((record.topic, ce_id), record.value)
            if seen != record.value:
                problems.append(
                    f"{ce_id}: re-published with different content: {seen!r} then {record.value!r}"
                )
            if record.topic == self._topics.status:
                value = orjson.loads(record.value or b"{}")
                expected = f"{value.get('requestId')}:{value.get('sequence')}"
                if ce_id != expected:
                    problems.append(f"status ce_id {ce_id!r} is not {expected!r}")
        for request_id in self.status:
            problems.extend(sequence_problems(request_id, self.unique(request_id)))
        return problems


_VISIBLE = ("reason", "providerRefs", "feasibility", "price", "decision", "offers")


def _progress(event: dict[str, Any]) -> Any:
    """``progress`` as a consumer reads it: all zero says no more than none."""
    progress = event.get("progress")
    if not progress:
        return None
    counts = progress.get("acquisitions") or {}
    empty = not any(counts.values()) and not progress.get("deliveries") and not progress.get("coveragePct")
    return None if empty else progress


def says_something(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """A repeated status shows a change (CONTRACT §6): its reason, progress or another field."""
    return _progress(before) != _progress(after) or any(before.get(k) != after.get(k) for k in _VISIBLE)


def sequence_problems(request_id: str, events: list[dict[str, Any]]) -> list[str]:
    """Contiguity of one request's de-duplicated status events (see ``event_problems``)."""
    problems: list[str] = []
    sequences = [e["sequence"] for e in events]
    if sequences != list(range(1, len(sequences) + 1)):
        problems.append(f"{request_id}: sequences {sequences} are not contiguous from 1")
    for before, after in itertools.pairwise(events):
        # The one repeat after a terminal status: COMPLETED again, announcing a later product.
        repeat = before["status"] == after["status"] == "COMPLETED"
        if before["status"] in TERMINAL and not repeat:
            problems.append(f"{request_id}: {after['status']} follows terminal {before['status']}")
        if after["status"] == before["status"] and not says_something(before, after):
            problems.append(
                f"{request_id}: seq {after['sequence']} repeats {after['status']} saying nothing new"
            )
        if after.get("previousStatus") != before["status"]:
            problems.append(
                f"{request_id}: seq {after['sequence']} previousStatus "
                f"{after.get('previousStatus')} after {before['status']}"
            )
    return problems


@contextlib.asynccontextmanager
async def reliability_stack(
    broker: EmbeddedBroker, topics: TopicSettings, speed: float = FAST_SPEED, partitions: int = 3
) -> AsyncIterator[tuple[Stack, RecordingCollector]]:
    """Like :func:`stack_for`, with :func:`fast_lifecycle` simulators and a recording collector."""
    await broker.create_contract_topics(topics, partitions=partitions)
    sims = await start_simulators(speed=speed)
    fast_lifecycle(sims)
    stack = Stack(broker, sims, topics, group_id=f"g-{topics.requests.rsplit('.', 1)[-1]}")
    collector = RecordingCollector(broker.bootstrap_servers, topics)
    await collector.start()
    try:
        with long_lived_tokens(sims):
            yield stack, collector
    finally:
        await collector.stop()
        await sims.stop()


_LONG_TOKENS = [0, 0.0]  # active users, saved UP42 lifetime


@contextlib.contextmanager
def long_lived_tokens(sims: RunningSimulators) -> Iterator[None]:
    """Tokens that live 30 simulated days while the block runs.

    At thousands of simulated seconds per real second a 5-minute UP42 token (or 1 h OneAtlas
    token) dies within milliseconds of real time, so under CPU load every call would race its own
    token. Token expiry is tested on purpose instead (``expire_tokens``). The UP42 lifetime is a
    module constant of the simulator, so it is swapped while any such block is active.
    """
    import worker.simulators.up42.auth as up42_module

    sims.oneatlas.token_lifetime = 30 * DAY
    if _LONG_TOKENS[0] == 0:
        _LONG_TOKENS[1] = up42_module.TOKEN_LIFETIME
        up42_module.TOKEN_LIFETIME = 30 * DAY
    _LONG_TOKENS[0] += 1
    try:
        yield
    finally:
        _LONG_TOKENS[0] -= 1
        if _LONG_TOKENS[0] == 0:
            up42_module.TOKEN_LIFETIME = _LONG_TOKENS[1]


async def read_topic(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> list[RawRecord]:
    """Every record of ``topic`` up to its current end (e.g. the state changelog)."""
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer.topics()  # refreshes the metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[RawRecord] = []
        deadline = time.monotonic() + timeout
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, messages in batch.items():
                ends[tp] = read_end(consumer, tp, ends[tp])  # the listed end can lag the log
                records.extend(
                    RawRecord(m.topic, m.partition, m.offset, m.key, m.value, tuple(m.headers))
                    for m in messages
                    if m.offset < ends[tp]
                )
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return records
    finally:
        await consumer.stop()


def assignments(process: WorkerProcess) -> list[list[int]]:
    """Every ``partitions_assigned`` of this process's log, in order (each a list of partitions)."""
    found = []
    for line in process.log_text().splitlines():
        if '"partitions_assigned"' in line:
            with contextlib.suppress(ValueError):
                found.append(list(orjson.loads(line)["partitions"]))
    return found


def owned_partitions(process: WorkerProcess) -> set[int]:
    """The partitions this process holds according to its log (assignments minus revocations)."""
    owned: set[int] = set()
    for line in process.log_text().splitlines():
        if '"partitions_assigned"' in line or '"partitions_revoked"' in line:
            with contextlib.suppress(ValueError):
                entry = orjson.loads(line)
                parts = set(entry["partitions"])
                owned = owned | parts if entry["event"] == "partitions_assigned" else owned - parts
    return owned


def status_partition(collector: RecordingCollector, request_id: str) -> int | None:
    """The partition of ``request_id`` (status events use the same key and partition count)."""
    for record in collector.raw:
        if record.topic == collector._topics.status and record.key == request_id.encode():
            return record.partition
    return None


@dataclass
class RunVerdict:
    """What the §8 checks found over a set of requests (see :func:`verdict`)."""

    statuses: dict[str, list[str]]
    paid: dict[str, int]
    quotations: dict[str, int]
    problems: list[str]

    def failures(self, expected: str = "COMPLETED") -> list[str]:
        wrong = [
            f"{rid}: ended {s[-1:]} not {expected}: {s}"
            for rid, s in self.statuses.items()
            if s[-1:] != [expected]
        ]
        wrong += [f"{rid}: {n} paid orders" for rid, n in self.paid.items() if n != 1]
        wrong += [f"{rid}: {n} accepted quotations" for rid, n in self.quotations.items() if n != 1]
        return wrong + self.problems


def dump_records(collector: RecordingCollector, path: Path) -> None:
    """Write every collected record (one JSON line each) for a post-mortem."""
    with path.open("wb") as out:
        for r in collector.raw:
            line = {
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "key": (r.key or b"").decode(errors="replace"),
                "ce_id": r.header("ce_id"),
                "value": (r.value or b"").decode(errors="replace"),
            }
            out.write(orjson.dumps(line) + b"\n")


async def post_mortem(stack: Stack, collector: RecordingCollector, directory: Path) -> None:
    """Write the collected events and the whole state changelog to ``directory`` (JSON lines)."""
    dump_records(collector, directory / "events.jsonl")
    state = await read_topic(stack.broker.bootstrap_servers, stack.topics.state)
    with (directory / "state.jsonl").open("wb") as out:
        for r in state:
            line = {
                "partition": r.partition,
                "offset": r.offset,
                "key": (r.key or b"").decode(errors="replace"),
                "value": (r.value or b"").decode(errors="replace"),
            }
            out.write(orjson.dumps(line) + b"\n")


async def checked(
    stack: Stack, collector: RecordingCollector, requests: list[OrderRequest], directory: Path | None = None
) -> RunVerdict:
    """:func:`verdict`, plus a :func:`post_mortem` into ``directory`` when anything is wrong."""
    found = verdict(stack, collector, requests)
    if directory is not None and found.failures():
        await post_mortem(stack, collector, directory)
    return found


def verdict(stack: Stack, collector: RecordingCollector, requests: list[OrderRequest]) -> RunVerdict:
    """Statuses, paid orders and accepted quotations (UP42) per request, and event problems."""
    return RunVerdict(
        statuses={r.request_id: collector.statuses(r.request_id) for r in requests},
        paid={r.request_id: paid_orders(stack.sims, r) for r in requests},
        quotations={
            r.request_id: accepted_quotations(stack.sims, r) for r in requests if r.provider.value == "up42"
        },
        problems=collector.event_problems(),
    )


async def wait_all_terminal(
    collector: RecordingCollector,
    requests: list[OrderRequest],
    timeout: float,
    alive: Callable[[], None] | None = None,
) -> None:
    """Wait until every request's latest status is terminal; ``alive`` may raise to stop early."""
    deadline = time.monotonic() + timeout
    while True:
        open_ = [
            r.request_id
            for r in requests
            if collector.statuses(r.request_id)[-1:] == []
            or collector.statuses(r.request_id)[-1] not in TERMINAL
        ]
        if not open_:
            return
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(open_)} requests not terminal: " + repr({r: collector.statuses(r) for r in open_[:10]})
            )
        await asyncio.sleep(0.2)


def mixed_requests(
    prefix: str, count: int, sims: RunningSimulators | None = None, start: int = 0
) -> list[OrderRequest]:
    """``count`` fast requests alternating OneAtlas and UP42 (see :func:`fast_lifecycle`), with
    windows anchored on the simulators' clock when ``sims`` is given."""
    return [
        fast_oneatlas_request(f"{prefix}-{n}", sims)
        if n % 2 == 0
        else fast_up42_request(f"{prefix}-{n}", sims)
        for n in range(start, start + count)
    ]
