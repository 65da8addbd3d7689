"""The packed set of finished orders: every added id is a candidate at its offset, the latest
record of an id comes first, ids sharing a short hash are all candidates (the record read back
decides), and a finished order costs at most 12 bytes of memory (structure, not speed)."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.events.models import OrderRequest, OrderStatusEvent, Provider
from worker.events.status import OrderStatus, StapiStatus
from worker.kafka.finished import (
    SEGMENT_KEY_PREFIX,
    SEGMENT_TAG,
    FinishedIds,
    FinishedLoader,
    FinishedRecord,
    Segment,
    request_fingerprint,
    segment_find,
    segment_head,
    short_hash,
)

#: Two ids whose short hashes are equal (found by a birthday search over "coll-<n>").
COLLIDING = ("coll-24455", "coll-36288")


def test_every_added_id_is_a_candidate_at_its_offset() -> None:
    ids = FinishedIds()
    ids.extend((f"r-{i}", i) for i in range(5000))  # a restore
    for i in range(5000, 9000):  # retirements after it, merged into runs as they come
        ids.add(f"r-{i}", i)
    assert len(ids) == 9000
    for i in (0, 1, 4999, 5000, 7777, 8999):
        assert i in ids.candidates(f"r-{i}")
        assert ids.maybe(f"r-{i}")
    assert ids.candidates("r-9000") == []  # (its short hash is none of the 9000)
    assert not ids.maybe("r-9000")


def test_the_later_record_of_an_id_is_the_first_candidate() -> None:
    ids = FinishedIds()
    ids.extend([("a", 10)])
    ids.add("a", 20)
    assert ids.candidates("a") == [20, 10]
    for i in range(3000):  # pushes "a"'s newer entry through the merges
        ids.add(f"b-{i}", 100 + i)
    assert ids.candidates("a") == [20, 10]


def test_ids_sharing_a_short_hash_are_all_candidates() -> None:
    first, second = COLLIDING
    assert short_hash(first) == short_hash(second)
    ids = FinishedIds()
    ids.add(first, 5)
    ids.extend([(second, 9), ("other", 7)])
    assert ids.candidates(first) == ids.candidates(second) == [9, 5]
    assert ids.candidates("other") == [7]


def test_the_hash_is_injectable_and_collisions_survive_the_runs() -> None:
    ids = FinishedIds(hash_of=len)
    for i in range(2500):  # every id of 6 characters shares one hash
        ids.add(f"x-{i:04d}", i)
    assert len(ids.candidates("y-0000")) == 2500
    assert ids.candidates("y-0000")[:2] == [2499, 2498]
    assert ids.candidates("z") == []


def test_a_finished_order_costs_at_most_12_bytes() -> None:
    ids = FinishedIds()
    ids.extend((f"req-{i:08d}", i) for i in range(100_000))
    assert len(ids) == 100_000
    assert ids.nbytes() / len(ids) <= 12


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


def test_a_finished_record_round_trips() -> None:
    record = FinishedRecord("done-1", OrderStatus.COMPLETED, 2**64 - 1, _event())
    assert FinishedRecord.from_bytes("done-1", record.to_bytes()) == record


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


def test_a_restore_loader_keeps_every_record_newest_first() -> None:
    loader = FinishedLoader()
    for i in range(3000):
        loader.add(f"l-{i % 1000}", offset=i)
    ids, pending, _ = loader.build()
    assert len(ids) == 3000  # 32 bits cannot tell records of one id apart: the read-back does
    for n in (0, 1, 999):
        assert ids.candidates(f"l-{n}") == [2000 + n, 1000 + n, n]
    assert ids.candidates("l-1000") == []
    assert list(pending) == list(range(3000))  # all wait for a fold


def _record(
    request_id: str, status: OrderStatus = OrderStatus.COMPLETED, fingerprint: int = 1
) -> FinishedRecord:
    return FinishedRecord(
        request_id, status, fingerprint, _event().model_copy(update={"request_id": request_id})
    )


def test_a_segment_holds_its_ids_hashes_and_sources_and_finds_each_record() -> None:
    records = [_record(f"s-{i}", fingerprint=i) for i in range(50)]
    records.append(_record("s-7", OrderStatus.CANCELLED, 99))  # a later record of an id
    segment = Segment(records, list(range(100, 151)))
    raw = segment.to_bytes()
    assert segment.key() == SEGMENT_KEY_PREFIX + b"150"
    hashes, sources = segment_head(raw)
    assert list(hashes) == [short_hash(r.request_id) for r in records]
    assert list(sources) == list(range(100, 151))
    assert segment_find(raw, "s-3") == records[3]
    found = segment_find(raw, "s-7")
    assert found is not None
    assert (found.status, found.fingerprint) == (OrderStatus.CANCELLED, 99)  # the last wins
    assert segment_find(raw, "s-50") is None
    assert segment_find(raw, COLLIDING[1]) is None


def test_a_restore_keeps_segment_entries_and_drops_the_singles_a_segment_lists() -> None:
    """A crash between a segment and its tombstones leaves both: the singles the segment lists
    are not kept (nor folded again) but due for tombstones; the others wait for a fold."""
    loader = FinishedLoader()
    for i in range(6):
        loader.add(f"one-{i}", offset=10 + i)
    folded = Segment([_record(f"one-{i}") for i in range(4)], [10, 11, 12, 13])
    loader.add_segment(folded.to_bytes(), offset=40)
    ids, pending, unburied = loader.build()
    assert list(pending) == [14, 15]
    assert list(unburied) == [10, 11, 12, 13]
    assert ids.candidates("one-2") == [40 | SEGMENT_TAG]
    assert ids.candidates("one-5") == [15]
    assert len(ids) == 6
    ids.drop({15})
    assert ids.candidates("one-5") == []
    assert ids.candidates("one-2") == [40 | SEGMENT_TAG]
