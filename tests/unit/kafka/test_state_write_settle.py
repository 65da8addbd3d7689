"""A cancelled step's changelog write is still queued in the producer: revocation waits for it
(``StateStore.settle``), so it cannot land after the partition's next owner restored it; every
write carries the writer's group generation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from worker.errors import DecodeError
from worker.kafka.statestore import GENERATION_HEADER, BurntId, StateStore
from worker.runtime.outcomes import invalid_request_event


class QueuingProducer:
    """A producer whose sends are acknowledged only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[asyncio.Future[object], list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes, **options: Any) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.sent.append((future, options["headers"]))
        return future


async def test_revocation_waits_for_a_cancelled_steps_queued_write() -> None:
    producer = QueuingProducer()
    store = StateStore(producer, "unused:9092", "state", generation=lambda: 7)  # type: ignore[arg-type]
    store._by_partition[0] = {}  # owned, as after a restore
    store._tenures[0] = 1
    event = invalid_request_event("r-1", DecodeError("SCHEMA_VIOLATION", "bad"), datetime.now(UTC), None)
    step = asyncio.create_task(store.persist(0, BurntId("r-1", event)))
    await asyncio.sleep(0)
    assert len(producer.sent) == 1
    step.cancel()  # the revocation cancels the partition's tasks...
    store.release([0])
    settle = asyncio.create_task(store.settle([0], timeout=5))
    await asyncio.sleep(0.05)
    assert not settle.done()  # ...and waits for the write already queued
    future, headers = producer.sent[0]
    assert (GENERATION_HEADER, b"7") in headers
    future.set_result(None)
    assert await settle == 1
    assert await store.settle([0]) == 0
