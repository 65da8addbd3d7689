"""How the state store keeps an order in memory: packed changelog bytes plus a small index.

A decoded :class:`OrderState` is a tree of frozen pydantic models, about 17 KB resident for 2.4 KB
of JSON. An idle order needs none of it until an event must be applied, so the store keeps, per
order, an :class:`OrderIndex`: the changelog value compressed with the placed order's refs
(:func:`pack`, ~270 bytes for a tracked order's 2.7 KB) and the few fields the poller, the gauges
and the resume read for every order (provider, status, phase, the status' start, the tracking
key, whether the outbox holds events, the seen fingerprint). The whole is ~700 bytes resident per
order at 100,000 orders, the store's dictionaries included.

The index of a restored record is read from its JSON with ``orjson`` (no model validation: the
changelog is written only by this worker, from validated states); the full :class:`OrderState` is
validated when :func:`unpack_state` decodes it, the first time the order is read.

Packed bytes never leave the process, so their layout and the compression dictionary
(:data:`_ZDICT`, the key skeleton every state dump shares) can change freely between versions;
the changelog's value and index header are what other versions read.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.domain.model import TRACKED_PHASES, OrderState, Phase
from worker.events.models import STORED, Provider
from worker.events.status import OrderStatus

# The field names and fixed vocabulary of OrderState dumps (the shapes of events, intents,
# decisions and acquisitions, a UP42 request's, then a whole OneAtlas state's in field order), no
# values of any order: deflate refers back to it, so the per-order bytes are mostly ids, times and
# coordinates. It must follow the schema: each field it lacks costs every order its name (the
# fields added since it was last written cost ~200 bytes per packed state).
_ZDICT = (
    b'{"kind":"status","event":{"kind":"acquisition","n":0,"event":{"acquisition_id":""'
    b',"status":"","decided_by":null}},"intent":{"kind":"place_order","started_at":"","attempt":1'
    b',"target":null,"accept":null,"decided_by":null,"outcome_unknown_at":null,"from_resume":false'
    b',"interrupted":0},"decision":{"kind":"approve-price","deadline":null,"options":[]}'
    b',"reason":{"code":"","message":"","details":{}},"acquisitions":{"":{"status":"","events":0'
    b',"decided_by":null,"decision_sent":false,"acquisition":null,"pending_accept":null}}'
    b',"study":null,"quotation":{"id":"","amount":0,"currency":"EUR"'
    b',"valid_until":null}}{"provider":"up42","product":{"dataProductId":""},"refs":{"orderId":""'
    b',"assetId":""}}{"request":{"request_id":"","provider":"oneatlas"'
    b',"product":{"mission":"PLEIADES","programming_type":"ONEPLAN"},"aoi":{"type":"Polygon"'
    b',"coordinates":[[[]]]},"window":{"start":"","end":""},"constraints":{"max_cloud_cover":0.0'
    b',"max_incidence_angle":0.0,"acquisition_mode":"MONO","min_bh":null,"max_bh":null}'
    b',"processing":{"processing_level":null,"spectral_processing":null'
    b',"radiometric_processing":null,"pixel_coding":null,"image_format":null,"projection":null'
    b',"dem":null,"priority":null,"licence":null},"provider_options":{},"budget":null'
    b',"auto_approve":true,"dry_run":false,"customer_reference":null,"acquisition_policy":null'
    b',"display_name":null,"comments":null,"candidates":null,"routing":null},"received_at":""'
    b',"unbudgeted_ceiling":{"EUR":0.0,"CREDITS":0.0},"status":"ORDERED","status_since":""'
    b',"sequence":0,"phase":"AWAITING_PROVIDER","step_retries":0,"placed":{"tracking_key":""'
    b',"refs":{"salesOrderId":"","contractId":"","customerReference":"","so":"","taskingId":""}'
    b',"amount":0.0,"currency":"EUR","identity":{},"finished":false}'
    b',"feasibility":{"programming_type":"ONEPLAN","automation":"AUTOMATIC"'
    b',"classification":"CHALLENGING","automation_name":"","available":true,"expires_at":null}'
    b',"attempts":[],"chosen_attempt":null,"price":{"amount":0.0,"currency":"EUR","area_km2":0.0'
    b',"indicative":false},"approved_amount":null,"study":null,"quotation":null,"decision":null'
    b',"progress":{"acquisitions":{"proposed":0,"validated":0,"refused":0},"coverage_pct":0.0'
    b',"deliveries":0},"reason":null,"intent":null,"cancel_requested_by":null,"cancel_audit":null'
    b',"audit":null,"change_marker":"in progress|0|0|0","commands_seen":[],"acquisitions":{}'
    b',"deliveries":{},"held_products":[],"finished":null,"settled_items":null,"listing_due":false'
    b',"last_event":{"request_id":"","provider":"oneatlas","sequence":0,"status":"ORDERED"'
    b',"previous_status":"ORDERED","stapi_status":"accepted","occurred_at":""'
    b',"provider_refs":{"salesOrderId":"","contractId":"","customerReference":"","so":""'
    b',"taskingId":""},"feasibility":{"automation":"AUTOMATIC","classification":"CHALLENGING"'
    b',"programming_type":"ONEPLAN","attempts":[]},"price":{"amount":0.0,"currency":"EUR"'
    b',"area_km2":0.0},"decision":null,"progress":{"acquisitions":{"proposed":0,"validated":0'
    b',"refused":0},"coverage_pct":0.0,"deliveries":0},"reason":null,"offers":null},"outbox":[]'
    b',"routing":null,"found_order":null}'
)
INDEX_HEADER = "tw-index"  # see OrderIndex.header
_HEADER_VERSION = 2  # 2: + refs, seen, seen_by; version 1 headers are read from the value
SNAPSHOT_REVISION = 1
"""How snapshots are built from the providers' data and decided: a ``seen`` fingerprint says that
the provider's data is unchanged; whether that data still changes nothing also depends on this.
A release that changes how an adapter builds snapshots or how the domain core decides a
``Polled`` event must raise it; any other release keeps it, so its first start after an upgrade
decides only the orders whose snapshot changed (the fingerprints are kept with the state)."""
SEEN_BY = f"snapshots-{SNAPSHOT_REVISION}"
# Records written when the mark was tied to the worker's version: 0.1.0 built and decided
# snapshots as revision 1 does.
_SEEN_BY_ALSO = {"0.1.0"} if SNAPSHOT_REVISION == 1 else set()
_STORED = {STORED: True}
_WBITS = -15  # raw deflate: no header or checksum (the bytes never leave this process)
# Level 3 with the dictionary: ~270 bytes for a 2.7 KB tracked state with its refs (level 1: ~325,
# level 6: ~255 at half again the time). A restore packs every record, so this is its main cost
# after the Kafka client's: level 3 indexes a record in ~24 µs of CPU, level 6 in ~35.
_LEVEL = 3
_REFS_CHUNK = 256  # bytes inflated at a time until the refs' line ends (most fit in one)
# Plain dict lookups: an Enum call costs a few microseconds, a restore does three per record.
_PROVIDERS = {member.value: member for member in Provider}
_STATUSES = {member.value: member for member in OrderStatus}
_PHASES = {member.value: member for member in Phase}


def pack(value: bytes, refs: dict[str, str] | None = None) -> bytes:
    """Compress a changelog value, with the placed order's refs, for keeping in memory.

    The refs come first, as a line of JSON (orjson writes no raw newline), so :func:`unpack_refs`
    inflates only that line; the state's own copies of them then cost deflate a back reference.
    """
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, 8, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return packer.compress(orjson.dumps(refs) + b"\n" + value) + packer.flush()


def unpack(packed: bytes) -> bytes:
    """The changelog value :func:`pack` was given."""
    unpacker = zlib.decompressobj(_WBITS, zdict=_ZDICT)
    whole = unpacker.decompress(packed) + unpacker.flush()
    return whole[whole.index(b"\n") + 1 :]


def unpack_refs(packed: bytes) -> dict[str, str] | None:
    """The refs :func:`pack` was given, inflating no more than their line (~2 µs, against ~20 µs
    to inflate and parse the whole state)."""
    unpacker = zlib.decompressobj(_WBITS, zdict=_ZDICT)
    head = unpacker.decompress(packed, _REFS_CHUNK)
    while b"\n" not in head and unpacker.unconsumed_tail:
        head += unpacker.decompress(unpacker.unconsumed_tail, _REFS_CHUNK)
    refs: dict[str, str] | None = orjson.loads(head[: head.index(b"\n")])
    return refs


def unpack_state(packed: bytes) -> OrderState:
    """Decode a packed state: every schema rule, but not the AOI's geometric checks, which the
    request passed before it was first stored (``worker.events.models.STORED``).

    Raises:
        pydantic.ValidationError: the value is not a valid state.
    """
    return OrderState.model_validate_json(unpack(packed), context=_STORED)


class _Kind:
    """What many orders share: provider, status, phase and whether the outbox holds events, one
    object per combination (:func:`_kind`), so an index keeps one reference for the four."""

    __slots__ = ("has_outbox", "phase", "provider", "status", "terminal", "tracked_phase")

    def __init__(
        self, provider: Provider, status: OrderStatus | None, phase: Phase, has_outbox: bool
    ) -> None:
        self.provider = provider
        self.status = status
        self.phase = phase
        self.has_outbox = has_outbox
        self.terminal = phase is Phase.DONE
        self.tracked_phase = phase in TRACKED_PHASES


# A few hundred combinations at most (providers x statuses x phases x 2).
_KINDS: dict[tuple[Provider, OrderStatus | None, Phase, bool], _Kind] = {}


def _kind(provider: Provider, status: OrderStatus | None, phase: Phase, has_outbox: bool) -> _Kind:
    key = (provider, status, phase, has_outbox)
    kind = _KINDS.get(key)
    if kind is None:
        kind = _KINDS[key] = _Kind(*key)
    return kind


class OrderIndex:
    """One order as the store keeps it: its packed state and what is read of every order.

    ``since`` is ``status_since`` or, before any status, ``received_at`` (what the age gauges
    read), in UTC; it is kept as epoch seconds (a float: 24 bytes, a datetime takes 48; exact to
    the microsecond for any date before the year 2200) and rebuilt when read (~0.5 µs; the
    gauges, which read it of every order, read :attr:`since_epoch`). ``packed`` is ``None``
    only while the store holds the decoded state (it packs the state when it drops it from its
    hot set). ``tracking_key`` is
    the placed order's key (``None`` before placement). ``seen`` is the fingerprint of the last
    tracking snapshot that changed nothing in *this* state (see ``Runner.snapshot_is_news``); a
    new state starts with none. ``refs`` are the placed order's provider ids (the delivery
    harvest passes them to the adapter, which matches products by them); ``None`` before
    placement. They are kept in the packed state (:func:`pack`), and apart, as their JSON, only
    while there is none (a hot order: the store packs its state when it goes idle, :meth:`pack`).
    The header carries ``seen`` (``StateStore.mark_seen`` writes it), so the first poll
    cycle after a restore skips what the previous owner already knew changes nothing.
    """

    # Eight references (the object takes 96 bytes): provider, status, phase and has_outbox are
    # one shared _Kind (three references fewer per order).
    __slots__ = ("_kind", "_refs", "_since", "packed", "request_id", "seen", "tracking_key")

    def __init__(
        self,
        request_id: str,
        packed: bytes | None,
        provider: Provider,
        status: OrderStatus | None,
        phase: Phase,
        since: datetime,
        tracking_key: str | None,
        has_outbox: bool,
        refs: dict[str, str] | None = None,
    ) -> None:
        self.request_id = request_id
        self.packed = packed
        self._kind = _kind(provider, status, phase, bool(has_outbox))
        # A naive time (never written by this worker) is taken as UTC, as the gauges take it.
        self._since = (since if since.tzinfo is not None else since.replace(tzinfo=UTC)).timestamp()
        self.tracking_key = tracking_key
        # Given packed bytes hold the refs (pack(value, refs)); otherwise they are kept as their
        # JSON (~150 bytes, a dict of five strings takes ~500), copied out of orjson's output
        # buffer, which would keep ~4 KB allocated per order.
        self._refs = None if packed is not None or refs is None else bytes(memoryview(orjson.dumps(refs)))
        self.seen: int | None = None

    @property
    def refs(self) -> dict[str, str] | None:
        """The placed order's provider ids (``None`` before placement). Only the delivery harvest
        reads them, once per waiting order and cycle: ~2 µs from the packed state
        (:func:`unpack_refs`), ~1 µs from a hot order's JSON."""
        if self.packed is not None:
            return unpack_refs(self.packed)
        return None if self._refs is None else orjson.loads(self._refs)

    def pack(self, value: bytes) -> None:
        """Keep ``value``, the changelog value of the state this index was built from, packed
        with the refs (which then leave the index)."""
        self.packed = pack(value, self.refs)
        self._refs = None

    @property
    def since(self) -> datetime:
        return datetime.fromtimestamp(self._since, UTC)

    @property
    def since_epoch(self) -> float:
        """``since`` in epoch seconds, as kept (what a scan over every order compares)."""
        return self._since

    @property
    def provider(self) -> Provider:
        return self._kind.provider

    @property
    def status(self) -> OrderStatus | None:
        return self._kind.status

    @property
    def phase(self) -> Phase:
        return self._kind.phase

    @property
    def has_outbox(self) -> bool:
        return self._kind.has_outbox

    @property
    def terminal(self) -> bool:
        return self._kind.terminal

    @property
    def tracking(self) -> bool:
        """Whether the batched poller follows this order (as ``OrderState.tracking``)."""
        return self.tracking_key is not None and self._kind.tracked_phase

    @classmethod
    def of_state(cls, state: OrderState, packed: bytes | None) -> OrderIndex:
        return cls(
            state.request_id,
            packed,
            state.request.provider,
            state.status,
            state.phase,
            state.status_since or state.received_at,
            state.placed.tracking_key if state.placed is not None else None,
            bool(state.outbox),
            dict(state.placed.refs) if state.placed is not None else None,
        )

    def header(self) -> tuple[str, bytes]:
        """The record header that carries this index with the state it was built from, so a
        restore reads it without parsing the state (:meth:`of_record`)."""
        fields = [
            _HEADER_VERSION,
            self.provider.value,
            None if self.status is None else self.status.value,
            self.phase.value,
            self.since.isoformat(),
            self.tracking_key,
            self.has_outbox,
            self.refs,
            self.seen,
            None if self.seen is None else SEEN_BY,
        ]
        return INDEX_HEADER, orjson.dumps(fields)

    @classmethod
    def of_record(
        cls, request_id: str, value: bytes, headers: Sequence[tuple[str, bytes]] | None
    ) -> OrderIndex:
        """The index of a changelog record: from its :meth:`header` when it has one this
        version reads, otherwise from the value (:meth:`of_json`; e.g. records written before
        the header existed).

        Raises:
            ValueError: neither the header nor the value is an index this version reads.
        """
        for name, raw in headers or ():
            if name == INDEX_HEADER:
                fields = orjson.loads(raw)
                if fields[0] == _HEADER_VERSION:
                    index = cls._of_fields(request_id, value, fields[1:8])
                    seen, seen_by = fields[8:10]
                    if isinstance(seen, int) and (seen_by == SEEN_BY or seen_by in _SEEN_BY_ALSO):
                        index.seen = seen
                    return index
        return cls.of_json(request_id, value)

    @classmethod
    def _of_fields(cls, request_id: str, value: bytes, fields: list[Any]) -> OrderIndex:
        try:
            provider, status, phase, since, tracking_key, has_outbox, refs = fields
            refs = None if refs is None else {str(k): str(v) for k, v in refs.items()}
            return cls(
                request_id,
                pack(value, refs),
                _PROVIDERS[provider],
                None if status is None else _STATUSES[status],
                _PHASES[phase],
                datetime.fromisoformat(since),
                tracking_key,
                bool(has_outbox),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"state record {request_id!r} has an unreadable index: {exc}") from exc

    @classmethod
    def of_json(cls, request_id: str, value: bytes) -> OrderIndex:
        """The index of a changelog value, read without building the state.

        Raises:
            ValueError: the value is not JSON or lacks a field every state dump has.
        """
        try:
            data: dict[str, Any] = orjson.loads(value)
            status, placed = data["status"], data["placed"]
            refs = None if placed is None else {str(k): str(v) for k, v in placed["refs"].items()}
            return cls(
                request_id,
                pack(value, refs),
                _PROVIDERS[data["request"]["provider"]],
                None if status is None else _STATUSES[status],
                _PHASES[data["phase"]],
                datetime.fromisoformat(data["status_since"] or data["received_at"]),
                None if placed is None else str(placed["tracking_key"]),
                bool(data["outbox"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"state record {request_id!r} lacks {exc}") from exc
