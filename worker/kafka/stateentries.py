"""What the state store (:mod:`worker.kafka.statestore`) keeps per request id, and the pure
helpers of its changelog: burnt-id markers, the answers about a used id, request fingerprints,
and how one changelog record (key, value, headers) becomes what memory holds.

Nothing here does I/O; :class:`~worker.kafka.statestore.StateStore` reads and writes the topic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import structlog

from worker.domain.model import OrderState
from worker.events.models import OrderRequest, OrderStatusEvent
from worker.events.status import OrderStatus
from worker.kafka.finished import (
    request_fingerprint as finished_fingerprint,
)
from worker.kafka.statecodec import OrderIndex, unpack_state

# These helpers are the store's: their lines keep its logger name (log filters rely on it).
log = structlog.get_logger("worker.kafka.statestore")

_BURNT = b'{"burnt":'
#: Header of every changelog record: the consumer-group generation of its writer.
GENERATION_HEADER = "tw-generation"


@dataclass(frozen=True)
class BurntId:
    """A request id that holds no order: first seen in an invalid request (its ``REJECTED``
    event), or an order ended because its state outgrew a record (its ``FAILED`` event). The
    event is kept for re-publication; ``fingerprint`` is that of the content first received
    with the id (``None`` in markers written before it was kept)."""

    request_id: str
    event: OrderStatusEvent
    fingerprint: str | None = None

    def to_bytes(self) -> bytes:
        body: dict[str, object] = {"burnt": True, "event": self.event.to_json_dict()}
        if self.fingerprint is not None:
            body["fingerprint"] = self.fingerprint
        return orjson.dumps(body)

    @classmethod
    def from_bytes(cls, request_id: str, raw: bytes) -> BurntId:
        body = orjson.loads(raw)
        event = OrderStatusEvent.model_validate(body["event"])
        fingerprint = body.get("fingerprint")
        return cls(request_id, event, fingerprint if isinstance(fingerprint, str) else None)


@dataclass(frozen=True)
class UsedId:
    """What a producer is answered with about a ``requestId`` already used: the latest status
    event published for it, and the fingerprint of the content first received with it (``None``
    when unknown)."""

    latest: OrderStatusEvent | None
    # str: request_fingerprint of the first request (a full state) or raw_fingerprint of an
    # invalid one (a burnt id); int: the finished record's (worker.kafka.finished).
    fingerprint: str | int | None

    def matches(self, request: OrderRequest) -> bool:
        """Whether ``request`` has the content first received under its id."""
        if isinstance(self.fingerprint, int):
            return self.fingerprint == finished_fingerprint(request)
        return self.fingerprint == request_fingerprint(request)


def request_fingerprint(request: OrderRequest) -> str:
    """The content of a valid request, as compared between a first request and a re-send."""
    return hashlib.sha256(request.model_dump_json(by_alias=True).encode()).hexdigest()[:32]


def raw_fingerprint(value: bytes | None) -> str:
    """The content of an invalid request: its bytes."""
    return hashlib.sha256(value or b"").hexdigest()[:32]


def first_request(state: OrderState) -> OrderRequest:
    """The request as received (a provider choice replaces ``state.request`` once it chooses)."""
    return state.routing.request if state.routing is not None else state.request


Entry = OrderState | BurntId
Held = OrderIndex | BurntId  # what memory keeps per request id (see worker.kafka.statecodec)


@dataclass(frozen=True)
class Outcome:
    """What a producer that sends a request id again is answered with, for any id the store
    knows (:meth:`StateStore.outcome`): the latest status event (``None`` only for an order that
    has published none yet), its status (the terminal one for a finished order), and the
    fingerprint of the request first received (``worker.kafka.finished.request_fingerprint``;
    ``None`` for a burnt id, whose request was invalid)."""

    request_id: str
    status: OrderStatus | None
    event: OrderStatusEvent | None
    fingerprint: int | None


@dataclass
class RestoreResult:
    partitions: list[int]
    records: int
    seconds: float


def _origin(state: OrderState) -> OrderRequest:
    """The request as received (a provider-choice order's ``request`` becomes its chosen offer's)."""
    return state.routing.request if state.routing is not None else state.request


def _value_of(entry: Entry) -> bytes:
    return entry.to_bytes() if isinstance(entry, BurntId) else entry.model_dump_json().encode()


def _stale(request_id: str, headers: Sequence[tuple[str, bytes]] | None, seen: dict[str, int]) -> bool:
    """Whether a record was written in an older group generation than one already read for its
    key (a write of an ended tenure that landed late); records without the header (older
    versions) are never stale."""
    for name, raw in headers or ():
        if name == GENERATION_HEADER:
            try:
                generation = int(raw)
            except ValueError:
                return False
            if generation < seen.get(request_id, generation):
                return True
            seen[request_id] = generation
            return False
    return False


def _cold(index: OrderIndex) -> OrderState:
    """Decode an order that is not hot (whose index therefore holds its packed state)."""
    assert index.packed is not None, "an order that is not hot has its packed state"
    return unpack_state(index.packed)


def _held_of(entry: Entry) -> Held:
    """What memory keeps of an entry: a state's index is unpacked, as the state is kept hot."""
    return entry if isinstance(entry, BurntId) else OrderIndex.of_state(entry, None)


def _apply(
    entries: dict[str, Held],
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    generations: dict[str, int] | None = None,
) -> None:
    if key is None:
        return
    request_id = key.decode()
    if generations is not None and _stale(request_id, headers, generations):
        log.warning("stale_state_record_ignored", requestId=request_id)
        return
    if value is None:
        entries.pop(request_id, None)  # tombstone
    elif value.startswith(_BURNT):
        entries[request_id] = BurntId.from_bytes(request_id, value)
    else:
        entries[request_id] = OrderIndex.of_record(request_id, value, headers)
