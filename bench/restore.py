"""Restore speed: the worker's state restore vs a bare consumer (see docs/performance.md).

``count`` realistic order states are written to a state topic first: real ``ORDERED`` states
produced by the worker in the latency run, each copied under a new request id (every occurrence
of the id in the JSON is replaced). Then, on the same topic and partitions:

- *raw*: an ``AIOKafkaConsumer`` with the state store's fetch settings reads every partition to
  its end (the end offset raised to the fetch high watermark, as the store does) and only counts
  the records;
- *worker*: ``StateStore.restore`` (the code a worker runs on assignment) loads them.

The records carry the index header ``StateStore.persist`` writes with every state (records
without it, e.g. from an older version, are indexed from their JSON instead: slower).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.stack import PARTITIONS, producer
from worker.domain.model import OrderState
from worker.events.codec import EncodedRecord
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.offsets import read_end
from worker.kafka.statecodec import OrderIndex
from worker.kafka.statestore import StateStore


def state_record(key: bytes, value: bytes) -> EncodedRecord:
    """A state record as ``StateStore.persist`` writes it: the value and its index header."""
    return EncodedRecord(key=key, value=value, headers=[OrderIndex.of_json(key.decode(), value).header()])


def state_records(template: OrderState, count: int, prefix: str) -> list[EncodedRecord]:
    """``count`` copies of ``template`` under ids ``{prefix}-0000001`` …"""
    raw = template.model_dump_json().encode()
    old = template.request_id.encode()
    records = []
    for i in range(1, count + 1):
        new = f"{prefix}-{i:07d}".encode()
        records.append(state_record(new, raw.replace(old, new)))
    return records


async def write_states(broker: EmbeddedBroker, topic: str, records: list[EncodedRecord]) -> None:
    """Write the records round robin over the partitions, a chunk of acks awaited at a time.

    Batches are kept small (about one record each), like the worker's own state writes (no
    linger, each write awaited) and like the runs recorded in docs/performance.md, so restore
    figures stay comparable. Larger batches would be read in full too: the embedded broker's end
    offsets lag its log for multi-record batches, but no record is lost, and both readers here
    read to the fetch high watermark.
    """
    await broker.create_topics([topic], PARTITIONS)
    async with producer(broker.bootstrap_servers, batch_size=4096) as client:
        for start in range(0, len(records), 3000):
            futures = [
                await client.send(topic, r.value, key=r.key, headers=r.headers, partition=i % PARTITIONS)
                for i, r in enumerate(records[start : start + 3000], start)
            ]
            for future in futures:
                await future


@dataclass
class RestoreResult:
    records: int
    bytes_total: int
    raw_seconds: float
    store_seconds: float

    @property
    def raw_rate(self) -> float:
        return self.records / self.raw_seconds

    @property
    def store_rate(self) -> float:
        return self.records / self.store_seconds


async def raw_read(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records read by a bare consumer to the end of each partition, and the seconds it took."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending, count = {tp for tp, end in ends.items() if end > 0}, 0
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batch.items():
                ends[tp] = read_end(consumer, tp, ends[tp])
                count += sum(1 for m in messages if m.offset < ends[tp])
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started


async def store_restore(bootstrap: str, topic: str) -> tuple[StateStore, int, float]:
    """A fresh store (no producer needed to read) restoring every partition."""
    store = StateStore(None, bootstrap, topic)
    result = await store.restore(range(PARTITIONS))
    return store, result.records, result.seconds


async def measure(broker: EmbeddedBroker, template: OrderState, count: int, topic: str) -> RestoreResult:
    records = state_records(template, count, "restore")
    await write_states(broker, topic, records)
    raw_count, raw_seconds = await raw_read(broker.bootstrap_servers, topic)
    store, store_count, store_seconds = await store_restore(broker.bootstrap_servers, topic)
    if raw_count != count or store_count != count or len(store) != count:
        raise RuntimeError(f"restore read {raw_count}/{store_count} records, expected {count}")
    size = sum(len(r.value or b"") for r in records)
    return RestoreResult(count, size, raw_seconds, store_seconds)
