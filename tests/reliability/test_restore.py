"""Restore reads the changelog to its true end, also when the newest records share one batch.

Regression test: the embedded broker answers ``ListOffsets(latest)`` with the start of the last
batch plus one, so a restore bounded only by ``end_offsets`` stopped short of the newest states of
the partition, and an order resumed from an older state (seen in the takeover test as one
``ce_id`` published with two different contents). The store now also reads to the fetch's high
watermark.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from harness import oneatlas_request

from worker.domain.decide import receive
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.statestore import StateStore

pytestmark = pytest.mark.integration


async def test_restore_reads_every_record_of_the_last_batch(broker: EmbeddedBroker) -> None:
    topic = f"state-restore-{uuid.uuid4().hex[:8]}"
    await broker.create_topics([topic], partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False, linger_ms=50, acks="all"
    )
    await producer.start()
    try:
        states = [receive(oneatlas_request(f"restore-{n}"), datetime.now(UTC))[0] for n in range(5)]
        futures = [
            await producer.send(topic, s.model_dump_json().encode(), key=s.request_id.encode(), partition=0)
            for s in states
            if s is not None
        ]
        offsets = [(await f).offset for f in futures]
        assert offsets == list(range(5))  # one batch: the case the broker misreports
        store = StateStore(producer, broker.bootstrap_servers, topic)
        result = await store.restore([0])
    finally:
        await producer.stop()
    assert result.records == 5
    assert {s.request_id for _, s in store.orders()} == {f"restore-{n}" for n in range(5)}
