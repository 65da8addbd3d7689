"""Finished orders out of the hot store: the compact *finished* record and the packed id set.

An order whose terminal status is older than the retention (``TASKING_TRACKING__FINISHED_RETENTION_SECONDS``,
default 7 days: late deliveries and commands need that long) is *retired*: its full state is
replaced, in the compacted changelog and in memory, by a finished record. The changelog value
(:class:`FinishedRecord`) holds the request id (the key), the terminal status, the request's
fingerprint and the last status event, for re-publish to a producer that sends the request again.

In memory a finished order costs 12 bytes (:class:`FinishedIds`: a 32-bit hash of its request
id and the changelog offset of its record). Everything else is read back from the changelog at
the kept offset when it is needed (``StateStore.finished`` / ``outcome`` / ``used``), which is
only when the request is sent again: the record read back is also the proof of identity (its key
is the id; a hash hit whose record has another key is another id). A compacted topic never moves
a record it keeps, and a finished record is its key's last, so the offset stays valid.

The periodic fold (``StateStore.fold_finished``) then gathers single finished records into
:class:`Segment` records of many orders each and tombstones the singles, so a compacted log
holds one record per segment: a restore reads its id hashes and nothing else, and an id's
kept offset is then its segment's (tagged with :data:`SEGMENT_TAG`).

Nothing that scans orders (poller, gauges, delivery harvest, resume, revocation) sees finished
ids: they are not in the store's index.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import orjson

from worker.domain.ports import stable_fingerprint
from worker.events.models import OrderRequest, OrderStatusEvent
from worker.events.status import OrderStatus

FINISHED_PREFIX = b'{"finished":'


def request_fingerprint(request: OrderRequest) -> int:
    """A 64-bit fingerprint of a request's content, the same in every process and version that
    dumps the request the same way: what a finished record keeps to tell a re-sent request
    (equal fingerprint) from another request reusing its id."""
    dumped = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    return stable_fingerprint(orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS))


@dataclass(frozen=True)
class FinishedRecord:
    """The changelog value of a retired order (see the module docstring)."""

    request_id: str
    status: OrderStatus
    fingerprint: int
    event: OrderStatusEvent

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "finished": 1,
                "status": self.status.value,
                "fingerprint": f"{self.fingerprint:016x}",
                "event": self.event.to_json_dict(),
            }
        )

    @classmethod
    def from_bytes(cls, request_id: str, raw: bytes) -> FinishedRecord:
        """Raises: ValueError (or pydantic.ValidationError): not a finished record."""
        data = orjson.loads(raw)
        return cls(
            request_id,
            OrderStatus(data["status"]),
            int(data["fingerprint"], 16),
            OrderStatusEvent.model_validate(data["event"]),
        )


@dataclass(frozen=True)
class Finished:
    """A finished order as read back from its record (the answer of ``StateStore.finished``)."""

    request_id: str
    status: OrderStatus
    fingerprint: int
    offset: int  # of its finished record in its changelog partition


def short_hash(request_id: str) -> int:
    """The 32-bit hash memory keeps of a finished order's request id: a hit only says "maybe"
    (about one unknown id in 4 billion per finished order shares it); the record read back at
    the kept offset says whether it is that id."""
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=4).digest(), "big")


HashOf = Callable[[str], int]
_MERGE_AT = 1024  # additions kept in a dict before they become a sorted run


class _Run:
    """Finished orders sorted by (short hash, offset): two parallel arrays, 12 bytes an order."""

    __slots__ = ("hashes", "offsets")

    def __init__(self, hashes: array[int], offsets: array[int]) -> None:
        """Sorts the pairs (one ``numpy.lexsort``: a restore sorts a million of them without a
        Python object each)."""
        h = np.frombuffer(hashes, dtype=np.uint32)
        o = np.frombuffer(offsets, dtype=np.int64)
        order = np.lexsort((o, h))
        self.hashes = array("I", h[order].tobytes())
        self.offsets = array("q", o[order].tobytes())

    def __len__(self) -> int:
        return len(self.hashes)

    def nbytes(self) -> int:
        return sum(a.buffer_info()[1] * a.itemsize for a in (self.hashes, self.offsets))

    def find(self, short: int) -> list[int]:
        """The offsets kept under this hash (in increasing order)."""
        i = bisect.bisect_left(self.hashes, short)
        j = bisect.bisect_right(self.hashes, short, i)
        return list(self.offsets[i:j])

    def without(self, offsets: set[int]) -> _Run:
        """The run less the entries at these offsets."""
        kept = ~np.isin(np.frombuffer(self.offsets, dtype=np.int64), np.fromiter(offsets, dtype=np.int64))
        return _Run(
            array("I", np.frombuffer(self.hashes, dtype=np.uint32)[kept].tobytes()),
            array("q", np.frombuffer(self.offsets, dtype=np.int64)[kept].tobytes()),
        )


class FinishedLoader:
    """The finished records of one partition as a restore reads them: appended to arrays (no
    Python object kept per record), sorted once by :meth:`build`. Single finished records and
    segment records (:class:`Segment`) are kept apart: a single whose offset a later segment
    lists among its sources is folded (a crash came between the segment and its tombstones)."""

    __slots__ = ("_hash_of", "folded", "hashes", "offsets", "single_hashes", "single_offsets")

    def __init__(self, hash_of: HashOf = short_hash) -> None:
        self._hash_of = hash_of
        self.hashes, self.offsets = array("I"), array("q")  # segment entries (tagged offsets)
        self.single_hashes, self.single_offsets = array("I"), array("q")
        self.folded = array("q")  # the sources of every segment read

    def add(self, request_id: str, offset: int) -> None:
        """A single finished record."""
        self.single_hashes.append(self._hash_of(request_id))
        self.single_offsets.append(offset)

    def add_segment(self, raw: bytes, offset: int) -> None:
        """A segment record (its entries all point to its offset).

        Raises:
            ValueError: not a segment record.
        """
        hashes, sources = segment_head(raw)
        self.hashes.extend(hashes)
        self.offsets.extend(array("q", [offset | SEGMENT_TAG]) * len(hashes))
        self.folded.extend(sources)

    def build(self) -> tuple[FinishedIds, array[int], array[int]]:
        """The id set; the offsets of the single records not yet folded (in log order); and the
        offsets of the singles already folded but still in the log (their tombstones are due)."""
        singles = np.frombuffer(self.single_offsets, dtype=np.int64)
        gone = np.isin(singles, np.frombuffer(self.folded, dtype=np.int64))  # no Python object each
        pending = array("q", singles[~gone].tobytes())
        leftover = array("q", singles[gone].tobytes())
        hashes = self.hashes + array("I", np.frombuffer(self.single_hashes, dtype=np.uint32)[~gone].tobytes())
        offsets = self.offsets + pending
        ids = FinishedIds(self._hash_of)
        if hashes:
            ids._runs.append(_Run(hashes, offsets))
        return ids, pending, leftover


class FinishedIds:
    """The finished orders of one partition, packed: sorted runs of two parallel arrays (32-bit
    hash of the request id, changelog offset of its finished record: :class:`_Run`, 12 bytes an
    order), plus a dict of at most ``_MERGE_AT`` recent additions. A new run is merged with the
    previous one while that one is not more than twice its size, so there are O(log n) runs and
    each order is re-sorted O(log n) times in all.

    Membership is only a *maybe*: :meth:`candidates` lists the offsets of every kept record whose
    id has the same short hash (several records of one id, before compaction, or of ids that
    collide). The caller reads them back (``StateStore.finished``) and compares keys; the
    record, not memory, holds the id, the status, the fingerprint and the last event.
    """

    __slots__ = ("_hash_of", "_pending", "_runs")

    def __init__(self, hash_of: HashOf = short_hash) -> None:
        self._hash_of = hash_of
        self._runs: list[_Run] = []
        self._pending: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs) + sum(len(o) for o in self._pending.values())

    def nbytes(self) -> int:
        """Bytes held by the sorted runs (the pending dict is bounded by ``_MERGE_AT``)."""
        return sum(run.nbytes() for run in self._runs)

    def add(self, request_id: str, offset: int) -> None:
        self._pending.setdefault(self._hash_of(request_id), []).append(offset)
        if len(self._pending) >= _MERGE_AT:
            self._flush()

    def extend(self, items: Iterable[tuple[str, int]]) -> None:
        """Many additions at once: one sort for all of them."""
        for request_id, offset in items:
            self._pending.setdefault(self._hash_of(request_id), []).append(offset)
        self._flush()

    def candidates(self, request_id: str) -> list[int]:
        """The offsets of the kept finished records that may be this id's, newest first (the
        later record of an id wins); empty: the id is certainly not a finished order here."""
        short = self._hash_of(request_id)
        found = list(self._pending.get(short, ()))
        for run in self._runs:
            found += run.find(short)
        return sorted(found, reverse=True)

    def maybe(self, request_id: str) -> bool:
        """Whether :meth:`candidates` is not empty (no read-back: a *maybe*)."""
        short = self._hash_of(request_id)
        return short in self._pending or any(run.find(short) for run in self._runs)

    def drop(self, offsets: set[int]) -> None:
        """Forget the entries kept at these offsets (single records just folded): one pass
        over every run, so a fold job calls it once for all its segments."""
        if not offsets:
            return
        self._runs = [kept for kept in (run.without(offsets) for run in self._runs) if len(kept)]
        self._pending = {
            h: kept for h, o in self._pending.items() if (kept := [x for x in o if x not in offsets])
        }

    def _flush(self) -> None:
        if not self._pending:
            return
        hashes = array("I", (h for h, offsets in self._pending.items() for _ in offsets))
        offsets = array("q", (o for kept in self._pending.values() for o in kept))
        self._pending = {}
        while self._runs and len(self._runs[-1]) <= 2 * len(hashes):
            older = self._runs.pop()
            hashes += older.hashes
            offsets += older.offsets
        self._runs.append(_Run(hashes, offsets))


# --------------------------------------------------------------------------- segments

#: Key prefix of a *segment* record: many finished orders folded into one changelog record
#: (``StateStore.fold_finished``). No request id starts with a NUL byte (see ``is_segment_key``).
SEGMENT_KEY_PREFIX = b"\x00finished-segment/"
#: Marks a kept offset as a segment record's (the others are single finished records').
SEGMENT_TAG = 1 << 62
_SEGMENT_MAGIC = b"TWFS1"
_COUNT = struct.Struct(">I")


def is_segment_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(SEGMENT_KEY_PREFIX)


def _big_endian(values: array[int]) -> bytes:
    if sys.byteorder == "little":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _native(typecode: str, raw: bytes) -> array[int]:
    values = array(typecode, raw)
    if sys.byteorder == "little":
        values.byteswap()
    return values


@dataclass(frozen=True)
class Segment:
    """Finished records folded into one changelog record, keyed per partition by the highest
    offset of the single records it replaces (``sources``): folding the same singles again
    (after a crash before their tombstones) writes the same key, which compaction keeps once.

    Layout: magic, count, the ``short_hash`` of every id (4 bytes each, big-endian), the source
    offsets (8 bytes each), then the entries (id, status, fingerprint, last event) as one
    zlib-compressed JSON array. A restore reads the hashes and the sources and never inflates
    the entries; a read-back (a re-sent request) inflates them to find its id.
    """

    records: list[FinishedRecord]
    sources: list[int]

    def key(self) -> bytes:
        return SEGMENT_KEY_PREFIX + str(max(self.sources)).encode()

    def to_bytes(self) -> bytes:
        entries = [
            [r.request_id, r.status.value, f"{r.fingerprint:016x}", r.event.to_json_dict()]
            for r in self.records
        ]
        hashes = array("I", (short_hash(r.request_id) for r in self.records))
        return b"".join(
            (
                _SEGMENT_MAGIC,
                _COUNT.pack(len(self.records)),
                _big_endian(hashes),
                _big_endian(array("q", self.sources)),
                zlib.compress(orjson.dumps(entries), 6),
            )
        )


def segment_head(raw: bytes) -> tuple[array[int], array[int]]:
    """The id hashes and the source offsets of a segment record's value, without inflating it.

    Raises:
        ValueError: not a segment record.
    """
    start = len(_SEGMENT_MAGIC)
    if not raw.startswith(_SEGMENT_MAGIC) or len(raw) < start + _COUNT.size:
        raise ValueError("not a finished-orders segment record")
    (count,) = _COUNT.unpack_from(raw, start)
    hashes_at = start + _COUNT.size
    sources_at = hashes_at + 4 * count
    if len(raw) < sources_at + 8 * count:
        raise ValueError("truncated finished-orders segment record")
    return _native("I", raw[hashes_at:sources_at]), _native("q", raw[sources_at : sources_at + 8 * count])


def segment_find(raw: bytes, request_id: str) -> FinishedRecord | None:
    """The finished record of ``request_id`` in a segment record's value (the last one, if it
    holds several), or ``None``.

    Raises:
        ValueError (or pydantic.ValidationError): not a segment record.
    """
    hashes, _ = segment_head(raw)
    body_at = len(_SEGMENT_MAGIC) + _COUNT.size + 12 * len(hashes)
    if short_hash(request_id) not in hashes:
        return None
    try:
        entries = orjson.loads(zlib.decompress(raw[body_at:]))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise ValueError(f"unreadable finished-orders segment: {exc}") from exc
    for entry_id, status, fingerprint, event in reversed(entries):
        if entry_id == request_id:
            return FinishedRecord(
                request_id, OrderStatus(status), int(fingerprint, 16), OrderStatusEvent.model_validate(event)
            )
    return None
