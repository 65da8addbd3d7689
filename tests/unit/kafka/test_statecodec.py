"""The store's compact form of an order: packed bytes plus an index that restores read from a record
header (or, for records without one, from the JSON) without building the state."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from worker.domain.model import OrderState, Phase
from worker.domain.ports import PlacedOrder
from worker.events.models import OrderRequest, Provider
from worker.events.status import OrderStatus
from worker.kafka.statecodec import (
    _ZDICT,
    INDEX_HEADER,
    SNAPSHOT_REVISION,
    OrderIndex,
    pack,
    unpack,
    unpack_refs,
    unpack_state,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def state(**changes: object) -> OrderState:
    request = OrderRequest.model_validate(
        {
            "requestId": "ix-1",
            "provider": "up42",
            "product": {"dataProductId": "bd102407-1814-4f92-8b5a-7697b7a73f5a"},
            "aoi": {
                "type": "Polygon",
                "coordinates": [[[1, 43], [1.1, 43], [1.1, 43.1], [1, 43.1], [1, 43]]],
            },
            "window": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
        }
    )
    base = OrderState(
        request=request,
        received_at=NOW - timedelta(hours=3),
        status=OrderStatus.ORDERED,
        status_since=NOW,
        phase=Phase.AWAITING_PROVIDER,
        placed=PlacedOrder(tracking_key="order-9", refs={"orderId": "order-9"}),
    )
    return base.model_copy(update=changes)


def fields(index: OrderIndex) -> tuple[object, ...]:
    return (
        index.request_id,
        index.provider,
        index.status,
        index.phase,
        index.since,
        index.tracking_key,
        index.has_outbox,
        index.tracking,
        index.terminal,
    )


def test_pack_round_trips_and_shrinks_a_state() -> None:
    value = state().model_dump_json().encode()
    packed = pack(value, {"orderId": "order-9"})
    assert unpack(packed) == value
    assert unpack_state(packed) == state()
    assert unpack_refs(packed) == {"orderId": "order-9"}
    assert len(packed) < len(value) / 3


@pytest.mark.parametrize("refs", [None, {}, {"orderId": "o\n9", "long": "x" * 5000}])
def test_the_refs_line_is_read_alone_and_the_value_comes_back_whole(refs: dict[str, str] | None) -> None:
    """The refs' line ends at the first newline (escaped inside their JSON), however long; the
    value after it may hold newlines of its own."""
    value = b'{"a":1}\n{"b":"\n"}'
    packed = pack(value, refs)
    assert unpack_refs(packed) == refs
    assert unpack(packed) == value


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


@pytest.mark.parametrize("provider", ["up42", "oneatlas"])
def test_the_compression_dictionary_names_every_field_of_a_state(provider: str) -> None:
    """Each field name the dictionary lacks is spelt out again in every packed state: a field
    added to the state (or to what it holds) must be added to the dictionary too."""
    placed = state(placed=PlacedOrder(tracking_key="k", refs={}, amount=1.0, currency="EUR"))
    request = placed.request.model_copy(update={"provider": Provider(provider)})
    dumped = json.loads(placed.model_copy(update={"request": request}).model_dump_json())
    dumped.pop("request")  # its product and options depend on the provider; its other fields:
    names = _keys(dumped) | set(json.loads(request.model_dump_json()))
    missing = sorted(n for n in names if f'"{n}":'.encode() not in _ZDICT)
    assert missing == []


def test_header_and_json_give_the_same_index() -> None:
    original = state()
    value = original.model_dump_json().encode()
    assert original.placed is not None
    expected = OrderIndex.of_state(original, pack(value, original.placed.refs))
    name, raw = expected.header()
    assert name == INDEX_HEADER
    from_header = OrderIndex.of_record("ix-1", value, [("other", b"x"), (name, raw)])
    from_json = OrderIndex.of_record("ix-1", value, None)  # a record written without the header
    assert fields(from_header) == fields(expected) == fields(from_json)
    assert fields(expected)[1:] == (
        Provider.UP42,
        OrderStatus.ORDERED,
        Phase.AWAITING_PROVIDER,
        NOW,
        "order-9",
        False,
        True,
        False,
    )
    assert unpack_state(from_header.packed or b"") == original
    assert from_header.refs == from_json.refs == expected.refs == original.placed.refs


def test_a_version_1_header_is_read_from_the_value_with_the_refs() -> None:
    original = state()
    value = original.model_dump_json().encode()
    old = b'[1, "up42", "ORDERED", "AWAITING_PROVIDER", "2020-01-01T00:00:00+00:00", "order-9", false]'
    index = OrderIndex.of_record("ix-1", value, [(INDEX_HEADER, old)])
    assert original.placed is not None
    assert index.refs == original.placed.refs
    assert index.since == NOW, "read from the value, not from the old header"


def test_index_before_placement_and_when_done() -> None:
    fresh = OrderIndex.of_state(
        state(placed=None, status=None, status_since=None, phase=Phase.VALIDATING), None
    )
    assert (fresh.tracking_key, fresh.tracking, fresh.since) == (None, False, NOW - timedelta(hours=3))
    done = OrderIndex.of_state(state(phase=Phase.DONE, status=OrderStatus.COMPLETED), None)
    assert done.terminal
    assert not done.tracking


def test_unreadable_index_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unreadable index"):
        OrderIndex.of_record(
            "ix-1", b"{}", [(INDEX_HEADER, b'[2, "nowhere", null, "DONE", "x", null, false, null]')]
        )
    with pytest.raises(ValueError):
        OrderIndex.of_json("ix-1", b"not json")


def test_a_stored_state_is_decoded_without_the_aoi_geometry_checks_a_request_gets() -> None:
    """The bow-tie ring below is refused on intake; a stored state holding it (written by a
    version with other rules, say) still decodes, with every schema rule applied."""
    bow_tie = [[1, 43], [1.1, 43.1], [1.1, 43], [1, 43.1], [1, 43]]
    raw = (
        state()
        .model_dump_json()
        .replace(
            '"coordinates":[[[1.0,43.0],[1.1,43.0],[1.1,43.1],[1.0,43.1],[1.0,43.0]]]',
            '"coordinates":' + json.dumps([bow_tie]),
        )
    )
    assert json.dumps([bow_tie]) in raw
    with pytest.raises(ValidationError, match="ring"):
        OrderState.model_validate_json(raw)  # what a request with this AOI meets
    decoded = unpack_state(pack(raw.encode()))
    assert decoded.request.aoi.ring()[1] == (1.1, 43.1)
    with pytest.raises(ValidationError):
        unpack_state(pack(raw.replace('"provider":"up42"', '"provider":"nowhere"').encode()))


def test_the_seen_fingerprint_travels_in_the_header_of_the_same_version() -> None:
    value = state().model_dump_json().encode()
    index = OrderIndex.of_record("ix-1", value, None)
    index.seen = 2**64 - 1  # a fingerprint is 64 bits (stable_fingerprint)
    restored = OrderIndex.of_record("ix-1", value, [index.header()])
    assert restored.seen == 2**64 - 1
    assert fields(restored) == fields(index)
    unseen = OrderIndex.of_record("ix-1", value, [OrderIndex.of_record("ix-1", value, None).header()])
    assert unseen.seen is None


def test_a_seen_fingerprint_of_another_version_is_not_trusted() -> None:
    """Whether unchanged provider data still changes nothing depends on how snapshots are built
    and decided: a mark of another snapshot revision is dropped (the order is decided again)."""
    value = state().model_dump_json().encode()
    name, raw = OrderIndex.of_record("ix-1", value, None).header()
    other = json.loads(raw)
    other[8:10] = [12345, "0.0.0-other"]
    restored = OrderIndex.of_record("ix-1", value, [(name, json.dumps(other).encode())])
    assert restored.seen is None
    assert restored.tracking_key == "order-9"


@pytest.mark.parametrize("seen_by", [f"snapshots-{SNAPSHOT_REVISION}", "0.1.0"])
def test_a_seen_fingerprint_of_the_same_snapshot_revision_is_trusted_across_releases(seen_by: str) -> None:
    """A release that keeps how snapshots are built and decided (``SNAPSHOT_REVISION``) keeps
    the marks: its first start decides only the orders whose snapshot changed. ``0.1.0`` wrote
    its version in place of the revision (revision 1)."""
    value = state().model_dump_json().encode()
    name, raw = OrderIndex.of_record("ix-1", value, None).header()
    written = json.loads(raw)
    written[8:10] = [12345, seen_by]
    assert OrderIndex.of_record("ix-1", value, [(name, json.dumps(written).encode())]).seen == 12345
    written[9] = f"snapshots-{SNAPSHOT_REVISION + 1}"  # a later revision's mark
    assert OrderIndex.of_record("ix-1", value, [(name, json.dumps(written).encode())]).seen is None


def test_a_version_1_header_is_still_read() -> None:
    value = state().model_dump_json().encode()
    header = b'[1, "up42", "ORDERED", "AWAITING_PROVIDER", "2026-05-01T12:00:00+00:00", "order-9", false]'
    restored = OrderIndex.of_record("ix-1", value, [(INDEX_HEADER, header)])
    assert fields(restored) == fields(OrderIndex.of_state(state(), None))
    assert restored.seen is None


def test_a_hot_index_keeps_its_refs_compact_and_a_packed_one_keeps_them_only_packed() -> None:
    """A hot order's refs are kept as their JSON, copied out of orjson's output buffer (which
    alone would keep ~4 KB allocated per order); once its state is packed (or restored), only
    the packed state holds them."""
    refs = {"salesOrderId": "SAL40000001", "contractId": "CTR21000001", "customerReference": "trk-1"}
    placed = state(placed=PlacedOrder(tracking_key="SAL40000001", refs=refs))
    hot = OrderIndex.of_state(placed, None)
    assert hot.refs == refs
    assert sys.getsizeof(hot._refs) <= 256
    value = placed.model_dump_json().encode()
    hot.pack(value)
    assert (hot._refs, hot.refs, unpack(hot.packed or b"")) == (None, refs, value)
    restored = OrderIndex.of_record("ix-1", value, [hot.header()])
    assert (restored._refs, restored.refs) == (None, refs)


@pytest.mark.parametrize(
    "since",
    [
        NOW + timedelta(microseconds=123_457),
        datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 5, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_the_status_start_is_kept_to_the_microsecond(since: datetime) -> None:
    """``since`` is kept as epoch seconds: read back, it is the same instant, in UTC, through
    the header too."""
    index = OrderIndex.of_state(state(status_since=since), None)
    assert index.since == since
    assert index.since.utcoffset() == timedelta(0)
    value = state(status_since=since).model_dump_json().encode()
    assert OrderIndex.of_record("ix-1", value, [index.header()]).since == since
