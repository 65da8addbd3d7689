"""Durable order state: in memory for the partitions this instance owns, changelog in Kafka.

The ``tasking.worker-state`` topic is co-partitioned with the input topics and compacted: its
latest record per ``requestId`` is the order's state (a JSON :class:`OrderState`), a
*finished* record for an order retired after its retention (``worker.kafka.finished``: status,
request fingerprint and last event, 12 bytes in memory; folded by the hundreds into *segment*
records keyed ``finished-segment/…`` after a NUL byte), or a *burnt id* marker for a request id
that arrived invalid (so a later request reusing the id is a duplicate, never a second order with
a restarted sequence).

Restoring reads the owned partitions from the beginning to the end offsets captured at the start
of the restore (raised to each fetch's high watermark, see ``worker.kafka.offsets``); the last
record per key wins. Writes go through the shared producer with
``acks=all`` and are awaited: when :meth:`StateStore.persist` returns, the state is durable.

In memory an order is its packed changelog value plus a small index (``worker.kafka.statecodec``):
~0.7 KB instead of the ~17 KB of a decoded state. Each state record carries its index in a
header, so a restore reads neither the JSON nor the models; scans over every order (poller,
gauges, resume, revocation) read the index; :meth:`StateStore.get` decodes an order when an
event must be applied to it.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from worker import cooperative, crashpoints
from worker.domain.model import OrderState, awaiting_delivery
from worker.errors import OwnershipLost, StateTooLarge
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.kafka.finished import (
    FINISHED_PREFIX,
    SEGMENT_TAG,
    Finished,
    FinishedIds,
    FinishedLoader,
    FinishedRecord,
    Segment,
    is_segment_key,
    segment_find,
)
from worker.kafka.finished import (
    request_fingerprint as finished_fingerprint,
)
from worker.kafka.offsets import read_end
from worker.kafka.statecodec import OrderIndex, unpack
from worker.kafka.stateentries import (
    GENERATION_HEADER,
    BurntId,
    Entry,
    Held,
    Outcome,
    RestoreResult,
    UsedId,
    _apply,
    _cold,
    _held_of,
    _origin,
    _value_of,
    first_request,
    raw_fingerprint,
    request_fingerprint,
)
from worker.kafka.stateentries import _stale as _stale_record

__all__ = [
    "DEFAULT_MAX_STATE_BYTES",
    "GENERATION_HEADER",
    "RECEIPT_SHARE",
    "BurntId",
    "Entry",
    "Held",
    "Outcome",
    "RestoreResult",
    "StateStore",
    "UsedId",
    "first_request",
    "raw_fingerprint",
    "request_fingerprint",
]

log = structlog.get_logger(__name__)

#: Bytes one state record may take by default: under the 1 MiB (1,048,588 bytes) that Kafka
#: brokers and topics accept by default (``message.max.bytes``), leaving room for the index header.
DEFAULT_MAX_STATE_BYTES = 1_000_000
#: The part of the limit a new order's first state may take: the rest is room for what an order
#: accumulates as it goes (events, offers, acquisitions, deliveries).
RECEIPT_SHARE = 0.75


@dataclass
class StateStore:
    """The order state of the owned partitions.

    Each order is held as an :class:`~worker.kafka.statecodec.OrderIndex` (packed changelog
    value plus the fields read of every order); :meth:`get` decodes the full state on demand and
    keeps the ``hot_size`` most recently used decoded states, so the orders being worked on are
    not decoded at every step while idle ones cost only their index.

    Args:
        producer: the process's shared producer (acks=all).
        bootstrap_servers / topic: where the changelog lives.
        hot_size: how many decoded states to keep (a cache: any state can be decoded again).
    """

    producer: AIOKafkaProducer
    bootstrap_servers: str
    topic: str
    consumer_options: dict[str, object] = field(default_factory=dict)
    hot_size: int = 1024
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES
    # The writer's consumer-group generation, stamped on every changelog record (see _send).
    generation: Callable[[], int] | None = None
    _by_partition: dict[int, dict[str, Held]] = field(default_factory=dict)
    _partition_of: dict[str, int] = field(default_factory=dict)
    _hot: OrderedDict[str, OrderState] = field(default_factory=OrderedDict)
    # One number per tenure of a partition (each restore starts a new one): work started in an
    # earlier tenure (a call task, a retry) must not feed a state restored since.
    _tenures: dict[int, int] = field(default_factory=dict)
    _next_tenure: int = 0
    # Changelog writes sent and not yet acknowledged, per partition (see settle()).
    _in_flight: dict[int, set[asyncio.Future[object]]] = field(default_factory=dict)
    # Retired orders per owned partition: not in the index, so no scan ever reads them.
    _finished: dict[int, FinishedIds] = field(default_factory=dict)
    # Per owned partition: offsets of the single finished records not yet folded into a segment
    # (fold_finished), and of singles folded whose tombstones are still due.
    _singles: dict[int, array[int]] = field(default_factory=dict)
    _unburied: dict[int, array[int]] = field(default_factory=dict)

    # ------------------------------------------------------------------ reads

    def get(self, request_id: str) -> Entry | None:
        """The order's state (decoded if it is not among the hot ones), its burnt-id marker, or
        ``None``: an unknown id *or a finished order* (retired: memory holds only a short hash
        of its id, see :meth:`finished`). A caller that would start an order on ``None`` must
        first ask :meth:`used` (awaited), as the intake does.

        Raises:
            pydantic.ValidationError: the stored changelog value is not a valid state.
        """
        held = self._held(request_id)
        if held is None:
            return None
        if not isinstance(held, OrderIndex):
            return held
        state = self._hot.get(request_id)
        if state is None:
            state = _cold(held)
            self._keep_hot(state)
        else:
            self._hot.move_to_end(request_id)
        return state

    def __contains__(self, request_id: object) -> bool:
        """Whether the id *may* be known, without decoding or reading anything: ``True`` for an
        order or a burnt id, and for a finished order, but also for an unknown id whose short
        hash a finished order shares (rare: see ``worker.kafka.finished.short_hash``). ``False``
        is certain. For the certain answer about a finished order, await :meth:`finished`."""
        if request_id in self._partition_of:
            return True
        return isinstance(request_id, str) and any(ids.maybe(request_id) for ids in self._finished.values())

    async def finished(self, request_id: str) -> Finished | None:
        """The retired order with this id, if one of the owned partitions holds it: each record
        kept under the id's short hash is read back (newest first) until one has this key.

        Raises:
            KafkaError: a record could not be read (never taken for "unknown": the caller
                retries, so a re-sent request is never taken for a new one).
            ValueError: no record at a kept offset, or a record there of this id that is not a
                finished record (memory and changelog disagree).
        """
        found = await self._finished_record(request_id)
        if found is None:
            return None
        offset, record = found
        return Finished(request_id, record.status, record.fingerprint, offset)

    async def _finished_record(self, request_id: str) -> tuple[int, FinishedRecord] | None:
        """As :meth:`finished`, with the record read back (its last event)."""
        for partition, ids in list(self._finished.items()):
            for kept in ids.candidates(request_id):
                offset = kept & ~SEGMENT_TAG
                key, raw = await self._read_at(partition, offset)
                if kept & SEGMENT_TAG:
                    if not is_segment_key(key) or raw is None:
                        raise ValueError(f"no finished-orders segment at {partition}@{offset}")
                    record = segment_find(raw, request_id)
                    if record is not None:
                        return offset, record
                elif key == request_id.encode():
                    if raw is None:
                        raise ValueError(f"no finished record of {request_id!r} at {partition}@{offset}")
                    return offset, FinishedRecord.from_bytes(request_id, raw)
        return None

    def finished_count(self) -> int:
        return sum(len(ids) for ids in self._finished.values())

    def finished_nbytes(self) -> int:
        """Bytes of memory the finished orders' packed entries take (see FinishedIds)."""
        return sum(ids.nbytes() for ids in self._finished.values())

    async def outcome(self, request_id: str) -> Outcome | None:
        """The latest status event and status of any known id, for re-publish to a producer
        that sends the request again: from the state of an order (open or within its
        retention), from a burnt id, or read back from the changelog for a finished order (one
        fetch at its record's offset). ``None`` for an unknown id.

        Raises:
            KafkaError / ValueError: as :meth:`finished` (a finished order's record could not be
                read back); never ``None`` for an id that may be a finished order but could not
                be checked.
        """
        entry = self.get(request_id)
        if isinstance(entry, BurntId):
            return Outcome(request_id, entry.event.status, entry.event, None)
        if isinstance(entry, OrderState):
            return Outcome(request_id, entry.status, entry.last_event, finished_fingerprint(_origin(entry)))
        found = await self._finished_record(request_id)
        if found is None:
            return None
        record = found[1]
        return Outcome(request_id, record.status, record.event, record.fingerprint)

    async def used(self, request_id: str) -> UsedId | None:
        """What is known of a used ``requestId`` (``None`` when it is new): the one accessor for
        "the latest status event of a request" and "the content first received with it", so
        the answer can come from a full state or from a smaller record of a finished order.

        Raises:
            pydantic.ValidationError: as :meth:`get`.
            KafkaError / ValueError: as :meth:`finished`: a request whose id may be a finished
                order's is never answered "new" unless its records were read back.
        """
        entry = self.get(request_id)
        if isinstance(entry, BurntId):
            return UsedId(entry.event, entry.fingerprint)
        if isinstance(entry, OrderState):
            return UsedId(entry.last_event, request_fingerprint(first_request(entry)))
        outcome = await self.outcome(request_id)  # a finished order: its record read back
        return None if outcome is None else UsedId(outcome.event, outcome.fingerprint)

    def index(self, request_id: str) -> OrderIndex | None:
        """The order's index entry (``None`` for an unknown or burnt id); never decodes."""
        held = self._held(request_id)
        return held if isinstance(held, OrderIndex) else None

    def seen_mark(self, request_id: str) -> int | None:
        """The fingerprint of the snapshot last seen to change nothing for the order
        (``OrderIndex.seen``; ``None`` when none is, or for an unknown or burnt id). As
        :meth:`index`, in one call: a poll cycle asks it of every polled order."""
        partition = self._partition_of.get(request_id)
        held = self._by_partition[partition].get(request_id) if partition is not None else None
        return held.seen if isinstance(held, OrderIndex) else None

    def partition_of(self, request_id: str) -> int | None:
        return self._partition_of.get(request_id)

    def owned_partitions(self) -> list[int]:
        return sorted(self._by_partition)

    def owns(self, partition: int) -> bool:
        return partition in self._by_partition

    def tenure(self, partition: int) -> int | None:
        """The current tenure of an owned partition (``None`` when not owned); it changes at
        every restore, so ``tenure(p) == t`` means "still the tenure that started the work"."""
        return self._tenures.get(partition)

    def indexes(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[int, OrderIndex]]:
        """The index of every order (not burnt ids) of the given (default: all owned) partitions.

        Each partition's entries are copied when its turn comes, so a caller may suspend between
        items (to let the event loop run) while orders are added or partitions restored or
        released: it sees each partition as it was when reached."""
        for partition in self.owned_partitions() if partitions is None else list(partitions):
            for held in list(self._by_partition.get(partition, {}).values()):
                if isinstance(held, OrderIndex):
                    yield partition, held

    def tracked(self, provider: Provider) -> Iterator[OrderIndex]:
        """The orders of ``provider`` the batched poller follows (``OrderIndex.tracking``); as
        :meth:`indexes`, safe to suspend between items."""
        # One generator rather than a filter over indexes(): a cycle walks every order through it.
        for partition in self.owned_partitions():
            for held in list(self._by_partition.get(partition, {}).values()):
                if isinstance(held, OrderIndex) and held.provider is provider and held.tracking:
                    yield held

    def awaiting_delivery(self, provider: Provider) -> Iterator[OrderIndex]:
        """The orders of ``provider`` whose products the delivery harvest looks for
        (``OrderState.awaiting_delivery``, read from the index: nothing is decoded); as
        :meth:`indexes`, safe to suspend between items."""
        return (
            i
            for _, i in self.indexes()
            if i.provider is provider and awaiting_delivery(i.tracking_key is not None, i.phase)
        )

    def completed_since(self, provider: Provider, since: datetime) -> Iterator[OrderIndex]:
        """The placed orders of ``provider`` that became ``COMPLETED`` at or after ``since`` (the
        harvest after completion), read from the index; as :meth:`indexes`, safe to suspend
        between items."""
        return (
            i
            for _, i in self.indexes()
            if i.provider is provider
            and i.status is OrderStatus.COMPLETED
            and i.tracking_key is not None
            and i.since >= since
        )

    def orders(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[int, OrderState]]:
        """Every order state (not burnt ids) of the given (default: all owned) partitions.

        Decodes every order that is not hot (without keeping it): for tools, tests and the
        resume of open orders; per-order scans in the hot path read :meth:`indexes` instead.
        """
        for partition, index in self.indexes(partitions):
            state = self._hot.get(index.request_id)
            yield partition, state if state is not None else _cold(index)

    def __len__(self) -> int:
        return len(self._partition_of)

    # ------------------------------------------------------------------ writes

    def receipt_limit(self) -> int:
        """The bytes a new order's first state may take (:data:`RECEIPT_SHARE` of the limit)."""
        return int(self.max_state_bytes * RECEIPT_SHARE)

    async def persist(self, partition: int, entry: Entry, *, new: bool = False) -> None:
        """Write ``entry`` to the changelog (awaiting the broker's ack), then keep it in memory.

        ``new``: the first state of an order, which must leave room to grow
        (:meth:`receipt_limit`); any later state may take ``max_state_bytes``.

        Raises:
            KafkaError: the write failed; memory is left unchanged so the caller can retry.
            StateTooLarge: the state is over its limit, or the broker refused the record as too
                large; nothing was written or kept, and trying again cannot help.
            OwnershipLost: the partition is not owned (released), or was revoked while the write
                was in flight; nothing was kept (and, when not owned, nothing was written).
        """
        value = _value_of(entry)
        limit = self.receipt_limit() if new else self.max_state_bytes
        if len(value) > limit:
            raise StateTooLarge(entry.request_id, len(value), limit)
        held = _held_of(entry)
        # The index travels as a header so that a restore need not parse the state.
        headers = [held.header()] if isinstance(held, OrderIndex) else None
        key = entry.request_id.encode()
        tenure = self._tenures.get(partition)
        if tenure is None:
            # Released (revoked, or dropped before a new assignment): its new owner may already
            # have restored it, so a write now would land after that restore and win at the next.
            raise OwnershipLost(partition)
        if crashpoints.state_writes_failing():
            raise KafkaTimeoutError("state write refused (test outage)")
        try:
            await self._send(partition, key, value, headers)
        except (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError) as exc:
            # the broker's or topic's limit is lower than ours
            raise StateTooLarge(entry.request_id, len(value), limit) from exc
        if self._tenures.get(partition) != tenure:
            # Revoked (and maybe restored again) during the write: memory belongs to another tenure.
            raise OwnershipLost(partition)
        self._keep(partition, entry, held)

    async def _send(
        self, partition: int, key: bytes, value: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> int:
        """Send one changelog record and await its ack. The record is tracked until acked, so
        :meth:`settle` can wait for it: a write whose step was cancelled (revocation) is still
        queued in the producer and would otherwise land after the handover.

        Each record carries the writer's group generation (:data:`GENERATION_HEADER`), read when
        the write is handed to the producer: a write queued by an instance that was then frozen
        goes out when it wakes, possibly after the next owner's writes of the same order; the
        restore ignores a record older in generation than one already read for its key.

        Returns the record's offset."""
        if self.generation is not None:
            headers = [*(headers or []), (GENERATION_HEADER, str(self.generation()).encode())]
        future = await self.producer.send(self.topic, value, key=key, partition=partition, headers=headers)
        pending = self._in_flight.setdefault(partition, set())
        pending.add(future)
        future.add_done_callback(pending.discard)
        meta = await asyncio.shield(future)
        offset: int = meta.offset
        return offset

    async def settle(self, partitions: Iterable[int], timeout: float = 45.0) -> int:
        """Wait until the changelog writes already handed to the producer for these partitions
        are acked or failed (bounded by ``timeout``, more than the producer's request timeout),
        so that none lands after the partitions' revocation completes, i.e. after a new owner
        may have restored them. Returns the number of writes waited for."""
        pending = [f for p in partitions for f in self._in_flight.get(p, ())]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
            log.info("state_writes_settled", writes=len(pending))
        return len(pending)

    def remember(self, partition: int, entry: Entry) -> None:
        """Update memory only (for changes that need no durability, e.g. a published outbox)."""
        self._keep(partition, entry, _held_of(entry))

    async def mark_seen(self, partition: int, request_id: str, fingerprint: int) -> None:
        """Note that a tracking snapshot with this fingerprint changed nothing in the current
        state (forgotten as soon as the state changes: :meth:`persist` and :meth:`remember`
        start a new index), in memory and, when it is new, in the changelog: the current state
        is written again with the fingerprint in its index header, so the next owner's first
        poll cycle skips the order too (see ``OrderIndex``). That is one extra write per tracked
        order and state, on its first unchanged poll; the caller holds the order's lock, so the
        write cannot overtake the order's next state.

        A failed write is logged and otherwise ignored (the mark is an optimisation: without it
        the next owner decides the snapshot once more); it is tried again after the next change.
        """
        index = self.index(request_id)
        if index is None or index.seen == fingerprint or partition not in self._tenures:
            return  # unknown, already marked, or its partition released (never written then)
        index.seen = fingerprint
        # The index's packed bytes, when it has them, are the current state's value (cheaper
        # to inflate than a state is to serialise); otherwise the state is hot.
        value = unpack(index.packed) if index.packed is not None else _value_of(self._hot[request_id])
        try:
            if crashpoints.state_writes_failing():
                raise KafkaTimeoutError("state write refused (test outage)")
            await self._send(partition, request_id.encode(), value, [index.header()])
        except KafkaError as exc:
            log.warning("seen_mark_not_written", requestId=request_id, error=type(exc).__name__)

    async def retire(self, partition: int, state: OrderState) -> Finished | None:
        """Replace a finished order's state by its finished record, in the changelog (awaited,
        acks=all) and in memory. ``None`` (nothing done) for a state that is not finished, has
        no status event or still has events to publish.

        The caller holds the order's lock and has confirmed ownership (as for :meth:`persist`).

        Raises:
            KafkaError: the write failed; the full state stays (retired at a later try).
            OwnershipLost: as :meth:`persist`.
        """
        if not state.terminal or state.status is None or state.last_event is None or state.outbox:
            return None
        record = FinishedRecord(
            state.request_id, state.status, finished_fingerprint(_origin(state)), state.last_event
        )
        tenure = self._tenures.get(partition)
        if tenure is None:
            raise OwnershipLost(partition)
        meta = await self.producer.send_and_wait(
            self.topic, record.to_bytes(), key=state.request_id.encode(), partition=partition
        )
        if self._tenures.get(partition) != tenure:
            raise OwnershipLost(partition)
        self._by_partition[partition].pop(state.request_id, None)
        self._partition_of.pop(state.request_id, None)
        self._hot.pop(state.request_id, None)
        self._finished.setdefault(partition, FinishedIds()).add(state.request_id, meta.offset)
        self._singles.setdefault(partition, array("q")).append(meta.offset)
        return Finished(state.request_id, record.status, record.fingerprint, meta.offset)

    async def fold_finished(self, partition: int, entries: int = 0, fence: Fence | None = None) -> int:
        """Fold the partition's single finished records into segment records of ``entries``
        (default :data:`FOLD_ENTRIES`) orders each, while at least that many wait, and
        tombstone the singles: once the log is compacted, a restore reads one record per
        ``entries`` finished orders. Returns the number of segments written.

        Order, per segment: the segment is written and acknowledged (acks=all), memory points
        its ids at it, and only then are its singles tombstoned. A crash in between leaves both
        in the log, the same data: a restore accepts it (the segment lists the offsets of the
        singles it replaces, which are then neither kept nor folded again) and the next fold
        writes the tombstones due. ``fence`` (the runner's ownership check, which raises
        ``OwnershipLost``) is awaited before every write: a fold may outlast an ownership lease.

        Raises:
            KafkaError: a read or write failed; what was folded stays folded, the rest stays
                single (folded at a later try).
            OwnershipLost: the partition was released or restored meanwhile.
            ValueError: a kept offset does not hold a finished record (memory is wrong).
        """
        entries = entries or FOLD_ENTRIES
        fence = fence or _no_fence
        tenure = self._tenures.get(partition)
        if tenure is None:
            raise OwnershipLost(partition)
        singles = sorted(self._singles.get(partition, ()))
        wanted = set(singles[: len(singles) // entries * entries])
        unburied = set(self._unburied.get(partition, ()))
        if not wanted and not unburied:
            return 0
        folded: set[int] = set()
        read: set[int] = set()
        gone: set[int] = set()
        chunk: list[tuple[int, FinishedRecord]] = []
        due: list[tuple[int, bytes]] = []
        written = 0
        try:
            async for offset, key, value in self._read_records(partition, sorted(wanted | unburied)):
                read.add(offset)
                if offset in unburied:
                    due.append((offset, key))
                    continue
                chunk.append((offset, FinishedRecord.from_bytes(key.decode(), value)))
                if len(chunk) == entries:
                    await fence()
                    written += await self._write_segment(partition, tenure, chunk)
                    folded.update(o for o, _ in chunk)
                    crashpoints.reached("after_segment_persist")
                    await fence()
                    await self._bury(partition, tenure, [(o, r.request_id.encode()) for o, r in chunk])
                    chunk = []
            # A single no longer in the log was replaced by a later record of its key (compaction
            # keeps a key's last only): not folded again, but its entry stays, so a lookup of
            # its id fails (ValueError, retried, dead-lettered) rather than take it for new.
            gone = wanted - read
            due += [(o, b"") for o in unburied - read]
            if due:
                await fence()
                await self._bury(partition, tenure, due)
        finally:
            self._forget_singles(partition, tenure, folded, gone)
        if written:
            log.info("finished_orders_folded", partition=partition, segments=written, orders=len(folded))
        return written

    async def _write_segment(
        self, partition: int, tenure: int, chunk: list[tuple[int, FinishedRecord]]
    ) -> int:
        """Write ``chunk`` as one segment (two halves, recursively, when it is over the record
        limit) and point its ids at it in memory; returns the segments written. The singles are
        marked due for tombstones (:meth:`_bury` clears them once written)."""
        segment = Segment([r for _, r in chunk], [o for o, _ in chunk])
        value = segment.to_bytes()
        if len(value) > self.max_state_bytes and len(chunk) > 1:
            half = len(chunk) // 2
            return await self._write_segment(partition, tenure, chunk[:half]) + await self._write_segment(
                partition, tenure, chunk[half:]
            )
        offset = await self._send(partition, segment.key(), value, None)
        if self._tenures.get(partition) != tenure:
            raise OwnershipLost(partition)
        ids = self._finished.setdefault(partition, FinishedIds())
        for record in segment.records:
            ids.add(record.request_id, offset | SEGMENT_TAG)
        self._unburied.setdefault(partition, array("q")).extend(segment.sources)
        return 1

    async def _bury(self, partition: int, tenure: int, singles: list[tuple[int, bytes]]) -> None:
        """Tombstone folded single records (offset, key), then forget that they are due.
        Not once the partition is released: its next owner's restore finds them due."""
        if self._tenures.get(partition) != tenure:
            raise OwnershipLost(partition)
        await asyncio.gather(*(self._send(partition, key, None, None) for _, key in singles if key))
        buried = {offset for offset, _ in singles}
        due = self._unburied.get(partition)
        if due is not None and self._tenures.get(partition) == tenure:
            self._unburied[partition] = array("q", (o for o in due if o not in buried))

    def _forget_singles(self, partition: int, tenure: int, folded: set[int], gone: set[int]) -> None:
        """Drop folded singles from memory (their ids now point to segments), and both folded
        and vanished ones from the singles waiting for a fold."""
        if not (folded or gone) or self._tenures.get(partition) != tenure:
            return
        self._finished[partition].drop(folded)
        done = folded | gone
        self._singles[partition] = array("q", (o for o in self._singles.get(partition, ()) if o not in done))

    async def _read_records(
        self, partition: int, offsets: list[int]
    ) -> AsyncIterator[tuple[int, bytes, bytes]]:
        """The finished records at these (sorted) offsets of a partition that are still in
        the log, in log order: one pass from the first to the last.

        Raises:
            KafkaTimeoutError: the log stopped coming for :data:`_READ_AT_SECONDS`.
            ValueError: a record at one of the offsets is not a finished record.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **self.consumer_options,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, offsets[0])
            wanted, last = set(offsets), min(offsets[-1] + 1, end)
            deadline = time.monotonic() + _READ_AT_SECONDS
            while await consumer.position(tp) < last:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"changelog partition {partition} not read to {last}")
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    deadline = time.monotonic() + _READ_AT_SECONDS
                    if message.offset not in wanted:
                        continue
                    key, value = message.key, message.value
                    if key is None or value is None or not value.startswith(FINISHED_PREFIX):
                        raise ValueError(f"no finished record at {partition}@{message.offset}")
                    yield message.offset, key, value
        finally:
            await consumer.stop()

    async def _read_at(self, partition: int, offset: int) -> tuple[bytes | None, bytes | None]:
        """Key and value of the changelog record at ``offset``.

        Raises:
            KafkaTimeoutError: the record was not read in time.
            ValueError: there is no record at ``offset`` (compacted away: memory is wrong).
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.consumer_options,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            deadline = time.monotonic() + _READ_AT_SECONDS
            while time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                for message in batch.get(tp, []):
                    if message.offset < offset:
                        continue
                    if message.offset != offset:
                        raise ValueError(f"no changelog record at {partition}@{offset}")
                    return message.key, message.value
            raise KafkaTimeoutError(f"changelog record {partition}@{offset} not read")
        finally:
            await consumer.stop()

    def _keep(self, partition: int, entry: Entry, held: Held) -> None:
        if partition not in self._by_partition:
            raise KeyError(f"partition {partition} is not owned")
        request_id = entry.request_id
        self._by_partition[partition][request_id] = held
        if isinstance(entry, BurntId):
            self._hot.pop(request_id, None)
        else:
            self._keep_hot(entry)
        self._partition_of[request_id] = partition

    def _keep_hot(self, state: OrderState) -> None:
        self._hot[state.request_id] = state
        self._hot.move_to_end(state.request_id)
        while len(self._hot) > self.hot_size:
            request_id, cold = self._hot.popitem(last=False)
            index = self.index(request_id)
            if index is not None and index.packed is None:
                # Packed once, when the order goes idle, rather than at every step.
                index.pack(_value_of(cold))

    def _held(self, request_id: str) -> Held | None:
        partition = self._partition_of.get(request_id)
        if partition is None:
            return None
        return self._by_partition[partition].get(request_id)

    # ------------------------------------------------------------------ ownership

    async def restore(self, partitions: Iterable[int]) -> RestoreResult:
        """Load the given changelog partitions to their current end and take ownership of them.

        Only each record's index is read (``OrderIndex.of_json``); states are validated when
        first decoded.

        Raises:
            KafkaError: the changelog could not be read.
            ValueError: a record is not a state the worker wrote.
        """
        wanted = sorted(set(partitions) - set(self._by_partition))
        started = time.perf_counter()
        loaded: dict[int, dict[str, Held]] = {p: {} for p in wanted}
        finished = {p: FinishedLoader() for p in wanted}
        records = await self._read_changelog(wanted, loaded, finished) if wanted else 0
        for partition, entries in loaded.items():
            ids, singles, unburied = finished[partition].build()
            self._finished[partition], self._singles[partition], self._unburied[partition] = (
                ids,
                singles,
                unburied,
            )
            self._by_partition[partition] = entries
            self._next_tenure += 1
            self._tenures[partition] = self._next_tenure
            self._partition_of.update(dict.fromkeys(entries, partition))  # one C loop, ~1 ms/10k
        seconds = time.perf_counter() - started
        log.info("state_restored", partitions=wanted, records=records, seconds=round(seconds, 3))
        return RestoreResult(wanted, records, seconds)

    def release(self, partitions: Iterable[int]) -> None:
        """Forget the given partitions (after revocation)."""
        for partition in partitions:
            self._tenures.pop(partition, None)
            self._finished.pop(partition, None)
            self._singles.pop(partition, None)
            self._unburied.pop(partition, None)
            for request_id in self._by_partition.pop(partition, {}):
                self._partition_of.pop(request_id, None)
                self._hot.pop(request_id, None)

    async def _read_changelog(
        self,
        partitions: list[int],
        into: dict[int, dict[str, Held]],
        finished: dict[int, FinishedLoader],
    ) -> int:
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
            return await self._drain(consumer, ends, into, finished)
        finally:
            await consumer.stop()

    async def _drain(
        self,
        consumer: AIOKafkaConsumer,
        ends: dict[TopicPartition, int],
        into: dict[int, dict[str, Held]],
        finished: dict[int, FinishedLoader] | None = None,
    ) -> int:
        if finished is None:  # a caller that keeps only the states
            finished = {p: FinishedLoader() for p in into}
        pending = {tp for tp, end in ends.items() if end > 0}
        records = 0
        generations: dict[str, int] = {}
        # A fetch holds up to 64 MB (~25,000 states at ~60 µs each to index): the loop is handed
        # back every slice so the group heartbeat and the rest of the worker keep running.
        slicer = cooperative.Slicer()
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            # One turn of the loop lets the fetcher send the next requests, so the broker
            # prepares them while this batch is indexed.
            await asyncio.sleep(0)
            for tp, messages in batch.items():
                # The listed end can lag the log (worker.kafka.offsets): stopping there would
                # leave out the newest states, and an order would resume from an older one.
                ends[tp] = read_end(consumer, tp, ends[tp])
                end, entries, done = ends[tp], into[tp.partition], finished[tp.partition]
                for message in messages:
                    if message.offset < end:
                        records += 1
                        value = message.value
                        if is_segment_key(message.key) and value is not None:
                            # A segment carries its writer's generation too: an older one than
                            # a record already read under its key is a late write, ignored.
                            if not _stale_record(message.key.decode(), message.headers, generations):
                                done.add_segment(value, message.offset)
                        elif value is not None and value.startswith(FINISHED_PREFIX) and message.key:
                            request_id = message.key.decode()
                            done.add(request_id, message.offset)
                            entries.pop(request_id, None)  # its state's record came before
                        else:
                            _apply(entries, message.key, value, message.headers, generations)
                    if slicer.used_up():
                        await slicer.rest()
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return records


_READ_AT_SECONDS = 10.0  # how long a finished record's read-back may take
#: Finished orders per segment record (``StateStore.fold_finished``): ~700 bytes of JSON each
#: before compression, so a segment stays far below a record's limit.
FOLD_ENTRIES = 1024
Fence = Callable[[], Awaitable[None]]


async def _no_fence() -> None:
    return None
