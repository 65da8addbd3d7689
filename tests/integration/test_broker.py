"""The embedded broker module: starts, answers, creates co-partitioned topics, round-trips data."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def test_contract_topics_are_co_partitioned(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_contract_topics(unique_topics, partitions=4)
    await broker.create_contract_topics(unique_topics, partitions=4)  # "already exists" is fine
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(unique_topics.all())
    finally:
        await admin.close()
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    assert counts == dict.fromkeys(unique_topics.all(), 4)


async def test_produce_and_consume_round_trip(broker: EmbeddedBroker, unique_topics: TopicSettings) -> None:
    await broker.create_topics([unique_topics.status], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(unique_topics.status, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        unique_topics.status,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"hello")


async def test_second_broker_stops_cleanly() -> None:
    extra = EmbeddedBroker()
    await extra.start()
    pid = extra.pid
    await extra.stop()
    with pytest.raises(Exception, match="not running"):
        _ = extra.pid
    assert pid > 0
