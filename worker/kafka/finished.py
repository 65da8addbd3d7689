"""Finished orders out of the hot store: the compact *finished* record and the packed id set.

An order whose terminal status is older than the retention (``TASKING_TRACKING__FINISHED_RETENTION_SECONDS``,
default 7 days: late deliveries and commands need that long) is *retired*: its full state is
replaced, in the compacted changelog and in memory, by a finished record. The changelog value
(:class:`FinishedRecord`) holds the request id (the key), the terminal status, the request's
fingerprint and the last status event, for re-publish to a producer that sends the request again.

In memory a finished order costs ~33 bytes (:class:`FinishedIds`: a 128-bit hash of its request
id, the changelog offset of its record, the fingerprint, the status), not its last event: that is
read back from the changelog at the kept offset when it is needed (``StateStore.outcome``), which
is only when the request is sent again. A compacted topic never moves a record it keeps, and a
finished record is its key's last, so the offset stays valid.

Nothing that scans orders (poller, gauges, delivery harvest, resume, revocation) sees finished
ids: they are not in the store's index.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from worker.domain.ports import stable_fingerprint
from worker.events.models import OrderRequest, OrderStatusEvent
from worker.events.status import OrderStatus

FINISHED_PREFIX = b'{"finished":'
_STATUSES = list(OrderStatus)
_STATUS_CODE = {status: code for code, status in enumerate(_STATUSES)}


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


_STATUS_BYTES = {status.value.encode(): status for status in OrderStatus}


def head_of(raw: bytes) -> tuple[OrderStatus, int]:
    """Status and fingerprint of a finished record's value, without building its event: read
    from the fixed head :meth:`FinishedRecord.to_bytes` writes (a restore reads one per finished
    order), else from the parsed JSON.

    Raises:
        ValueError: the value is not a finished record.
    """
    start = raw.find(b'"status":"', 0, 64) + 10
    end = raw.find(b'"', start, start + 40)
    status = _STATUS_BYTES.get(raw[start:end]) if start >= 10 else None
    mark = raw.find(b'"fingerprint":"', end, end + 32) + 15
    if status is not None and mark >= 15 and raw[mark + 16 : mark + 17] == b'"':
        try:
            return status, int(raw[mark : mark + 16], 16)
        except ValueError:
            pass
    try:
        data: dict[str, Any] = orjson.loads(raw)
        return OrderStatus(data["status"]), int(data["fingerprint"], 16)
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a finished record: {exc}") from exc


@dataclass(frozen=True)
class Finished:
    """What memory knows of one finished order (the answer of ``StateStore.get``)."""

    request_id: str
    status: OrderStatus
    fingerprint: int
    offset: int  # of its finished record in its changelog partition


def _key(request_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=16).digest(), "big")


_MERGE_AT = 1024  # additions kept in a dict before they become a sorted run
_MASK = 0xFFFFFFFFFFFFFFFF


class _Run:
    """Finished orders sorted by id hash: five parallel arrays, 33 bytes an order."""

    __slots__ = ("hi", "lo", "offsets", "prints", "status")

    def __init__(self, items: dict[int, tuple[int, int, int]]) -> None:
        keys = sorted(items)
        values = [items[k] for k in keys]
        self.hi = array("Q", (k >> 64 for k in keys))
        self.lo = array("Q", (k & _MASK for k in keys))
        self.offsets = array("q", (v[0] for v in values))
        self.prints = array("Q", (v[1] for v in values))
        self.status = array("B", (v[2] for v in values))

    @classmethod
    def sorted_from(cls, loaded: FinishedLoader) -> _Run:
        """A run of the loader's records; of several records of one id (in log order), the
        last wins."""
        keys = [(h << 64) | low for h, low in zip(loaded.hi, loaded.lo, strict=True)]
        order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: log order kept
        kept = [i for n, i in enumerate(order) if n + 1 == len(order) or keys[order[n + 1]] != keys[i]]
        run = cls({})
        run.hi = array("Q", (loaded.hi[i] for i in kept))
        run.lo = array("Q", (loaded.lo[i] for i in kept))
        run.offsets = array("q", (loaded.offsets[i] for i in kept))
        run.prints = array("Q", (loaded.prints[i] for i in kept))
        run.status = array("B", (loaded.status[i] for i in kept))
        return run

    def __len__(self) -> int:
        return len(self.hi)

    def nbytes(self) -> int:
        arrays = (self.hi, self.lo, self.offsets, self.prints, self.status)
        return sum(a.buffer_info()[1] * a.itemsize for a in arrays)

    def find(self, key: int) -> tuple[int, int, int] | None:
        hi, lo = key >> 64, key & _MASK
        i = bisect.bisect_left(self.hi, hi)
        while i < len(self.hi) and self.hi[i] == hi:
            if self.lo[i] == lo:
                return self.offsets[i], self.prints[i], self.status[i]
            i += 1
        return None

    def items(self) -> dict[int, tuple[int, int, int]]:
        return {
            (self.hi[i] << 64) | self.lo[i]: (self.offsets[i], self.prints[i], self.status[i])
            for i in range(len(self.hi))
        }


class FinishedLoader:
    """The finished records of one partition as a restore reads them: appended to arrays (no
    Python object kept per record), sorted once by :meth:`build`."""

    __slots__ = ("hi", "lo", "offsets", "prints", "status")

    def __init__(self) -> None:
        self.hi, self.lo = array("Q"), array("Q")
        self.offsets, self.prints, self.status = array("q"), array("Q"), array("B")

    def add(self, request_id: str, raw: bytes, offset: int) -> None:
        """Raises: ValueError: ``raw`` is not a finished record."""
        status, fingerprint = head_of(raw)
        key = _key(request_id)
        self.hi.append(key >> 64)
        self.lo.append(key & _MASK)
        self.offsets.append(offset)
        self.prints.append(fingerprint)
        self.status.append(_STATUS_CODE[status])

    def build(self) -> FinishedIds:
        ids = FinishedIds()
        if self.hi:
            ids._runs.append(_Run.sorted_from(self))
        return ids


class FinishedIds:
    """The finished orders of one partition, packed: sorted runs of parallel arrays keyed by a
    128-bit hash of the request id (:class:`_Run`, 33 bytes an order), plus a dict of at most
    ``_MERGE_AT`` recent additions. A new run is merged with the previous one while that one is
    not more than twice its size, so there are O(log n) runs and each order is re-sorted
    O(log n) times in all.

    Two different ids share a 128-bit hash with a probability of about n²/2¹²⁹ (10⁻²⁶ at a
    million ids): a request with a new id is then taken for a duplicate.
    """

    __slots__ = ("_pending", "_runs")

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._pending: dict[int, tuple[int, int, int]] = {}

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs) + len(self._pending)

    def nbytes(self) -> int:
        """Bytes held by the sorted runs (the pending dict is bounded by ``_MERGE_AT``)."""
        return sum(run.nbytes() for run in self._runs)

    def add(self, request_id: str, status: OrderStatus, fingerprint: int, offset: int) -> None:
        self._pending[_key(request_id)] = (offset, fingerprint, _STATUS_CODE[status])
        if len(self._pending) >= _MERGE_AT:
            self._flush()

    def extend(self, items: Iterable[tuple[str, OrderStatus, int, int]]) -> None:
        """Many additions at once (a restore): one sort for all of them; a later item for the
        same id wins."""
        for request_id, status, fingerprint, offset in items:
            self._pending[_key(request_id)] = (offset, fingerprint, _STATUS_CODE[status])
        self._flush()

    def get(self, request_id: str) -> Finished | None:
        key = _key(request_id)
        found = self._pending.get(key)
        for run in reversed(self._runs):  # newest first: a later record of an id wins
            if found is not None:
                break
            found = run.find(key)
        if found is None:
            return None
        offset, fingerprint, code = found
        return Finished(request_id, _STATUSES[code], fingerprint, offset)

    def __contains__(self, request_id: object) -> bool:
        return isinstance(request_id, str) and self.get(request_id) is not None

    def _flush(self) -> None:
        if not self._pending:
            return
        items = self._pending
        self._pending = {}
        while self._runs and len(self._runs[-1]) <= 2 * len(items):
            older = self._runs.pop().items()
            older.update(items)
            items = older
        self._runs.append(_Run(items))
