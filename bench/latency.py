"""Added latency per step at a paced load (see docs/performance.md, "Added latency").

Requests are written at ``rate`` per second (in slices every 50 ms) to a worker whose runner has a
:class:`bench.probe.StepRecorder` installed (``Runner.probe``). Every step that writes state is
timed under the order's lock, phase by phase: ``decide`` (pure), ``persist`` (changelog write,
acks=all), ``perform`` (timers, spawning the next provider call) and ``publish`` (outbox events,
acks=all, while that call is under way). Provider calls run outside a step, so a step's time is
the worker's own time. The added latency of a step is the time until the next provider call
starts (decide + persist + perform: :attr:`Step.critical`); the whole step, up to the events'
acknowledgement, is reported beside it. ``persist`` and ``publish`` include the broker round trip.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from bench.probe import Step, StepRecorder
from bench.stack import (
    PARTITIONS,
    producer,
    request_records,
    running_worker,
    send_all,
    simulators,
    unique_topics,
    worker_settings,
)
from bench.throughput import wait_ordered
from worker.domain.model import OrderState
from worker.events.codec import EncodedRecord
from worker.kafka.broker import EmbeddedBroker

PHASES = ("decide", "persist", "perform", "publish")
CRITICAL = ("decide", "persist", "perform")  # what the order's next provider call waits for


@dataclass
class LatencyResult:
    offered: float  # requests/s written
    achieved: float  # orders/s that reached ORDERED over the run
    steps: list[Step]
    states: list[OrderState]  # ORDERED states, reused as realistic records by the restore run
    lag: list[float]  # lateness of a 1 ms timer in the worker's event loop, during the run
    floor: list[float]  # a bare producer's send-to-ack times, same broker, payload and write rate
    payload: int  # bytes of the floor's records (an ORDERED state's changelog value)

    def quantile(self, q: float, phase: str | None = None) -> float:
        """The ``q`` quantile of the steps' added latency (or of one phase's time)."""
        values = [critical(s) if phase is None else s.phases.get(phase, 0.0) for s in self.steps]
        return percentile(values, q)

    def whole(self, q: float) -> float:
        """The ``q`` quantile of whole steps (up to the events' acknowledgement)."""
        return percentile([s.total for s in self.steps], q)


def critical(step: Step) -> float:
    """A step's added latency: its time until the order's next provider call starts."""
    return sum(step.phases.get(phase, 0.0) for phase in CRITICAL)


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


async def measure(
    broker: EmbeddedBroker, *, rate: float, seconds: float, latency: float, concurrency: int
) -> LatencyResult:
    count = int(rate * seconds)
    topics = unique_topics("lat")
    await broker.create_contract_topics(topics, PARTITIONS)
    with simulators(latency) as sims:
        settings = worker_settings(broker, topics, sims.env, concurrency)
        async with running_worker(settings) as running, producer(broker.bootstrap_servers) as client:
            await running.ready()
            store = running.worker.intake.store
            await send_all(client, topics.requests, request_records("latwarm", 20))
            await wait_ordered(store, 20, 60, 0.05)
            recorder = StepRecorder()
            running.worker.runner.probe = recorder
            lag: list[float] = []
            watch = asyncio.create_task(loop_lag(lag))
            started = time.perf_counter()
            await _paced(client, topics.requests, request_records("lat", count), rate)
            await wait_ordered(store, 20 + count, 300, 0.05)
            elapsed = time.perf_counter() - started
            watch.cancel()
            running.worker.runner.probe = None
            states = [s for _, s in store.orders()]
    payload = max(len(s.model_dump_json()) for s in states)
    writes = len(recorder.steps) / elapsed  # the run's state writes per second
    floor = await bare_producer(broker, topics.state, payload, writes, min(seconds, 10.0))
    return LatencyResult(rate, count / elapsed, recorder.steps, states, lag, floor, payload)


async def bare_producer(
    broker: EmbeddedBroker, topic: str, payload: int, rate: float, seconds: float
) -> list[float]:
    """The floor of a step's ``persist``: a bare ``AIOKafkaProducer`` (acks=all, no linger, as
    the worker's) writing ``payload``-byte records at ``rate`` per second for ``seconds``, each
    timed from ``send`` to its acknowledgement; writes are not waited for before the next is sent
    (the worker's steps overlap too)."""
    client = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", enable_idempotence=False
    )
    await client.start()
    times: list[float] = []
    value = b"x" * payload

    async def one(i: int) -> None:
        started = time.perf_counter()
        await client.send_and_wait(topic, value, key=f"floor-{i}".encode(), partition=i % PARTITIONS)
        times.append(time.perf_counter() - started)

    try:
        tasks = []
        began = time.perf_counter()
        for i in range(max(1, int(rate * seconds))):
            await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    finally:
        await client.stop()
    return times


async def loop_lag(samples: list[float], every: float = 0.001) -> None:
    """How late a timer of ``every`` seconds fires: the wait of anything the loop has to resume
    (a state write's acknowledgement, say) behind the callbacks already queued."""
    while True:
        due = time.perf_counter() + every
        await asyncio.sleep(every)
        samples.append(max(0.0, time.perf_counter() - due))


async def _paced(client: AIOKafkaProducer, topic: str, records: list[EncodedRecord], rate: float) -> None:
    """Write ``records`` at ``rate`` per second, a slice every 50 ms (on schedule, not after)."""
    per_slice = max(1, round(rate * 0.05))
    started = time.perf_counter()
    for index in range(0, len(records), per_slice):
        due = started + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        for record in records[index : index + per_slice]:
            await client.send(topic, record.value, key=record.key, headers=record.headers)
