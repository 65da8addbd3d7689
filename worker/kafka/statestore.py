"""Durable order state: in memory for the partitions this instance owns, changelog in Kafka.

The ``tasking.worker-state`` topic is co-partitioned with the input topics and compacted: its
latest record per ``requestId`` is the order's state (a JSON :class:`OrderState`), or a
*burnt id* marker for a request id that arrived invalid (so a later request reusing the id is a
duplicate, never a second order with a restarted sequence).

Restoring reads the owned partitions from the beginning to the end offsets captured at the start
of the restore; the last record per key wins. Writes go through the shared producer with
``acks=all`` and are awaited: when :meth:`StateStore.persist` returns, the state is durable.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from worker.domain.model import OrderState
from worker.events.models import OrderStatusEvent

log = structlog.get_logger(__name__)

_BURNT = b'{"burnt":'


@dataclass(frozen=True)
class BurntId:
    """A request id first seen in an invalid request; its REJECTED event is kept for re-publish."""

    request_id: str
    event: OrderStatusEvent

    def to_bytes(self) -> bytes:
        return orjson.dumps({"burnt": True, "event": self.event.to_json_dict()})

    @classmethod
    def from_bytes(cls, request_id: str, raw: bytes) -> BurntId:
        event = OrderStatusEvent.model_validate(orjson.loads(raw)["event"])
        return cls(request_id, event)


Entry = OrderState | BurntId


@dataclass
class RestoreResult:
    partitions: list[int]
    records: int
    seconds: float


@dataclass
class StateStore:
    """The order state of the owned partitions.

    Args:
        producer: the process's shared producer (acks=all).
        bootstrap_servers / topic: where the changelog lives.
    """

    producer: AIOKafkaProducer
    bootstrap_servers: str
    topic: str
    consumer_options: dict[str, object] = field(default_factory=dict)
    _by_partition: dict[int, dict[str, Entry]] = field(default_factory=dict)
    _partition_of: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ reads

    def get(self, request_id: str) -> Entry | None:
        partition = self._partition_of.get(request_id)
        if partition is None:
            return None
        return self._by_partition[partition].get(request_id)

    def partition_of(self, request_id: str) -> int | None:
        return self._partition_of.get(request_id)

    def owned_partitions(self) -> list[int]:
        return sorted(self._by_partition)

    def owns(self, partition: int) -> bool:
        return partition in self._by_partition

    def orders(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[int, OrderState]]:
        """Every order state (not burnt ids) of the given (default: all owned) partitions."""
        for partition in self.owned_partitions() if partitions is None else partitions:
            for entry in self._by_partition.get(partition, {}).values():
                if isinstance(entry, OrderState):
                    yield partition, entry

    def __len__(self) -> int:
        return len(self._partition_of)

    # ------------------------------------------------------------------ writes

    async def persist(self, partition: int, entry: Entry) -> None:
        """Write ``entry`` to the changelog (awaiting the broker's ack), then keep it in memory.

        Raises:
            KafkaError: the write failed; memory is left unchanged so the caller can retry.
        """
        key = entry.request_id.encode()
        value = entry.to_bytes() if isinstance(entry, BurntId) else entry.model_dump_json().encode()
        await self.producer.send_and_wait(self.topic, value, key=key, partition=partition)
        self.remember(partition, entry)

    def remember(self, partition: int, entry: Entry) -> None:
        """Update memory only (for changes that need no durability, e.g. a published outbox)."""
        if partition not in self._by_partition:
            raise KeyError(f"partition {partition} is not owned")
        self._by_partition[partition][entry.request_id] = entry
        self._partition_of[entry.request_id] = partition

    # ------------------------------------------------------------------ ownership

    async def restore(self, partitions: Iterable[int]) -> RestoreResult:
        """Load the given changelog partitions to their current end and take ownership of them."""
        wanted = sorted(set(partitions) - set(self._by_partition))
        started = time.perf_counter()
        loaded: dict[int, dict[str, Entry]] = {p: {} for p in wanted}
        records = await self._read_changelog(wanted, loaded) if wanted else 0
        for partition, entries in loaded.items():
            self._by_partition[partition] = entries
            for request_id in entries:
                self._partition_of[request_id] = partition
        seconds = time.perf_counter() - started
        log.info("state_restored", partitions=wanted, records=records, seconds=round(seconds, 3))
        return RestoreResult(wanted, records, seconds)

    def release(self, partitions: Iterable[int]) -> None:
        """Forget the given partitions (after revocation)."""
        for partition in partitions:
            for request_id in self._by_partition.pop(partition, {}):
                self._partition_of.pop(request_id, None)

    async def _read_changelog(self, partitions: list[int], into: dict[int, dict[str, Entry]]) -> int:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **self.consumer_options,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            return await self._drain(consumer, ends, into)
        finally:
            await consumer.stop()

    async def _drain(
        self,
        consumer: AIOKafkaConsumer,
        ends: dict[TopicPartition, int],
        into: dict[int, dict[str, Entry]],
    ) -> int:
        pending = {tp for tp, end in ends.items() if end > 0}
        records = 0
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batch.items():
                # The end is also the high watermark of the fetch itself: a broker whose
                # ListOffsets answers the start of the last batch (the embedded broker does for
                # multi-record batches) would otherwise make the restore stop short of the
                # newest states, and an order would resume from an older one.
                ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                for message in messages:
                    if message.offset < ends[tp]:
                        records += 1
                        _apply(into[tp.partition], message.key, message.value)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return records


def _apply(entries: dict[str, Entry], key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    request_id = key.decode()
    if value is None:
        entries.pop(request_id, None)  # tombstone
    elif value.startswith(_BURNT):
        entries[request_id] = BurntId.from_bytes(request_id, value)
    else:
        entries[request_id] = OrderState.model_validate_json(value)
