"""Read-only look-ups on an output topic by key (the ``status`` and ``download`` commands).

No consumer group is used (nothing is committed, nothing is disturbed). Events are keyed by
``requestId`` with the default partitioner, so one key's events are all in one partition: only
that partition is read, from the oldest retained record up to its current end.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from worker.kafka.offsets import read_end


def key_partition(key: str, partitions: set[int]) -> int:
    """The partition the default partitioner (murmur2, as Java clients) gives ``key``."""
    ordered = sorted(partitions)
    return int(DefaultPartitioner()(key.encode(), ordered, ordered))


async def request_partition(topic: str, key: str, kwargs: dict[str, Any]) -> int | None:
    """The partition of ``topic`` that holds ``key`` (the default partitioner), or ``None`` when
    the topic does not exist. For the requests topic this names the instance that owns the
    request: the one whose ``partitions_assigned`` log line lists it.

    Raises:
        aiokafka.errors.KafkaError: the cluster cannot be reached.
    """
    probe = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **kwargs)
    await probe.start()
    try:
        if topic not in await probe.topics():
            return None
        return key_partition(key, probe.partitions_for_topic(topic) or {0})
    finally:
        await probe.stop()


async def keyed_records(topic: str, key: str, kwargs: dict[str, Any]) -> list[Any] | None:
    """Every record of ``topic`` whose Kafka key is ``key``, oldest first; ``None`` when the topic
    does not exist.

    Never creates the topic: its existence is checked first (a metadata request for one missing
    topic auto-creates it on brokers that allow it).

    Raises:
        aiokafka.errors.KafkaError: the cluster cannot be reached.
    """
    probe = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **kwargs)
    await probe.start()
    try:
        if topic not in await probe.topics():
            return None
    finally:
        await probe.stop()
    consumer = AIOKafkaConsumer(
        topic, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **kwargs
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, key_partition(key, consumer.partitions_for_topic(topic) or {0}))
        consumer.unsubscribe()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[Any] = []
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            end = read_end(consumer, tp, end)  # the listed end can lag the log (worker.kafka.offsets)
            found.extend(r for r in batches.get(tp, []) if r.offset < end and r.key == key.encode())
        return found
    finally:
        await consumer.stop()
