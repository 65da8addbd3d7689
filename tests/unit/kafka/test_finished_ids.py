"""The packed set of finished orders: exact membership, the latest record of an id wins, and a
finished order costs at most 64 bytes of memory (structure, not speed)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from worker.events.models import OrderRequest, OrderStatusEvent, Provider
from worker.events.status import OrderStatus, StapiStatus
from worker.kafka.finished import FinishedIds, FinishedLoader, FinishedRecord, head_of, request_fingerprint

STATUSES = [OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REJECTED]


def test_every_added_id_is_found_with_its_fields_and_no_other() -> None:
    ids = FinishedIds()
    ids.extend((f"r-{i}", STATUSES[i % 3], i * 7, i) for i in range(5000))  # a restore
    for i in range(5000, 9000):  # retirements after it, merged into runs as they come
        ids.add(f"r-{i}", STATUSES[i % 3], i * 7, i)
    assert len(ids) == 9000
    for i in (0, 1, 4999, 5000, 7777, 8999):
        found = ids.get(f"r-{i}")
        assert found is not None
        assert (found.request_id, found.status, found.fingerprint, found.offset) == (
            f"r-{i}",
            STATUSES[i % 3],
            i * 7,
            i,
        )
    assert ids.get("r-9000") is None
    assert "r-9000" not in ids
    assert "r-42" in ids


def test_a_later_record_of_an_id_wins() -> None:
    ids = FinishedIds()
    ids.extend([("a", OrderStatus.COMPLETED, 1, 10)])
    ids.add("a", OrderStatus.CANCELLED, 2, 20)
    found = ids.get("a")
    assert found is not None
    assert (found.status, found.offset) == (OrderStatus.CANCELLED, 20)
    for i in range(3000):  # pushes "a"'s newer entry through the merges
        ids.add(f"b-{i}", OrderStatus.COMPLETED, i, 100 + i)
    found = ids.get("a")
    assert found is not None
    assert (found.status, found.offset) == (OrderStatus.CANCELLED, 20)


def test_a_finished_order_costs_at_most_64_bytes() -> None:
    ids = FinishedIds()
    ids.extend((f"req-{i:08d}", OrderStatus.COMPLETED, i, i) for i in range(100_000))
    assert len(ids) == 100_000
    assert ids.nbytes() / len(ids) <= 64


def _event() -> OrderStatusEvent:
    return OrderStatusEvent(
        request_id="done-1",
        provider=Provider.UP42,
        sequence=7,
        status=OrderStatus.COMPLETED,
        previous_status=OrderStatus.IN_PROGRESS,
        stapi_status=StapiStatus.COMPLETED,
        occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
    )


def test_a_finished_record_round_trips_and_its_head_reads_without_the_event() -> None:
    record = FinishedRecord("done-1", OrderStatus.COMPLETED, 2**64 - 1, _event())
    raw = record.to_bytes()
    assert FinishedRecord.from_bytes("done-1", raw) == record
    assert head_of(raw) == (OrderStatus.COMPLETED, 2**64 - 1)


def test_the_request_fingerprint_follows_content_not_field_order() -> None:
    base = {
        "requestId": "f-1",
        "provider": "oneatlas",
        "product": {"mission": "SPOT", "programmingType": "ONEPLAN"},
        "aoi": {"type": "Polygon", "coordinates": [[[1, 43], [1.1, 43], [1.1, 43.1], [1, 43.1], [1, 43]]]},
        "window": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
    }
    same = OrderRequest.model_validate(dict(reversed(list(base.items()))))
    other = OrderRequest.model_validate({**base, "window": {**base["window"], "end": "2026-06-02T00:00:00Z"}})  # type: ignore[dict-item]
    first = OrderRequest.model_validate(base)
    assert request_fingerprint(first) == request_fingerprint(same)
    assert request_fingerprint(first) != request_fingerprint(other)


def test_a_restore_loader_keeps_the_last_record_of_each_id() -> None:
    loader = FinishedLoader()
    for i in range(3000):
        record = FinishedRecord(f"l-{i % 1000}", STATUSES[i % 3], i, _event())
        loader.add(record.request_id, record.to_bytes(), offset=i)
    ids = loader.build()
    assert len(ids) == 1000
    for n in (0, 1, 999):
        found = ids.get(f"l-{n}")
        assert found is not None
        assert (found.offset, found.fingerprint, found.status) == (
            2000 + n,
            2000 + n,
            STATUSES[(2000 + n) % 3],
        )
    assert ids.get("l-1000") is None


def test_the_head_is_read_the_same_from_the_fixed_prefix_and_from_json() -> None:
    raw = FinishedRecord("h-1", OrderStatus.CANCELLED, 0xABCDEF, _event()).to_bytes()
    reordered = orjson.dumps(dict(reversed(list(orjson.loads(raw).items()))))
    assert head_of(raw) == head_of(reordered) == (OrderStatus.CANCELLED, 0xABCDEF)
