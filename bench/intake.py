"""Intake: messages/s through decoding/validation and the state write (valid and invalid input).

``count`` records are written to the request topic before the worker starts; the clock runs from
the first fetched batch to the moment every record's state is in the store (a valid request:
``RECEIVED`` state written and its event published; an invalid one: dead letter, ``REJECTED``
event and the burnt id written). The provider is replaced by a stub whose calls never return, so
nothing but the intake writes state during the measurement.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from bench.stack import (
    PARTITIONS,
    produce,
    request_records,
    running_worker,
    unique_topics,
    worker_settings,
)
from worker.events.codec import EncodedRecord
from worker.kafka.broker import EmbeddedBroker


class _Stalled:
    """A provider whose every call waits forever (keeps the runner from writing more state)."""

    def __getattr__(self, name: str) -> Any:
        async def never(*args: object, **kwargs: object) -> None:
            await asyncio.Event().wait()

        return never


def invalid_records(count: int) -> list[EncodedRecord]:
    """Requests with a readable id but no ``aoi`` (dead-lettered, answered REJECTED)."""
    records = []
    for record in request_records("bad", count):
        body = orjson.loads(record.value)
        body.pop("aoi")
        records.append(EncodedRecord(record.key, orjson.dumps(body), record.headers))
    return records


@dataclass
class IntakeResult:
    kind: str
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


async def measure(
    broker: EmbeddedBroker, sim_env: dict[str, str], count: int, valid: bool, concurrency: int
) -> IntakeResult:
    topics = unique_topics("in")
    await broker.create_contract_topics(topics, PARTITIONS)
    records = request_records("in", count) if valid else invalid_records(count)
    await produce(broker.bootstrap_servers, topics.requests, records)
    settings = worker_settings(broker, topics, sim_env, concurrency)
    async with running_worker(settings) as running:
        worker = running.worker
        worker.runner.providers = {name: _Stalled() for name in worker.runner.providers}
        first: list[float] = []
        process = worker.intake._process

        async def timed(batch: Any) -> None:
            if not first:
                first.append(time.perf_counter())
            await process(batch)

        worker.intake._process = timed  # type: ignore[method-assign]
        store = worker.intake.store
        deadline = time.monotonic() + 300
        while len(store) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"intake stored {len(store)} of {count}")
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - first[0]
        await worker.runner.stop_partitions(store.owned_partitions())
    return IntakeResult("valid" if valid else "invalid", count, seconds)
