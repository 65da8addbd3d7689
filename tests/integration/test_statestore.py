"""The state store against the real broker: what one instance persists, another restores exactly,
including burnt ids, tombstones and the index every scan reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from worker.config import TopicSettings
from worker.domain.model import OrderState, Phase
from worker.domain.ports import PlacedOrder
from worker.errors import OwnershipLost
from worker.events.models import OrderRequest, OrderStatusEvent, Provider
from worker.events.status import OrderStatus, StapiStatus
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.statestore import BurntId, StateStore

pytestmark = pytest.mark.integration
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def order(rid: str, provider: str, placed: bool) -> OrderState:
    product = (
        {"dataProductId": "bd102407-1814-4f92-8b5a-7697b7a73f5a"}
        if provider == "up42"
        else {"mission": "SPOT", "programmingType": "ONEPLAN"}
    )
    request = OrderRequest.model_validate(
        {
            "requestId": rid,
            "provider": provider,
            "product": product,
            "aoi": {
                "type": "Polygon",
                "coordinates": [[[1, 43], [1.1, 43], [1.1, 43.1], [1, 43.1], [1, 43]]],
            },
            "window": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
        }
    )
    return OrderState(
        request=request,
        received_at=NOW,
        status=OrderStatus.ORDERED if placed else OrderStatus.RECEIVED,
        status_since=NOW,
        sequence=3 if placed else 1,
        phase=Phase.AWAITING_PROVIDER if placed else Phase.VALIDATING,
        placed=PlacedOrder(tracking_key=f"key-{rid}", refs={"orderId": rid}) if placed else None,
    )


async def test_restore_in_another_store_gives_back_every_state(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_topics([unique_topics.state], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        writer = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await writer.restore([0, 1])
        states = [order(f"s-{i}", "up42" if i % 2 else "oneatlas", placed=i % 3 != 0) for i in range(30)]
        for i, state in enumerate(states):
            await writer.persist(i % 2, state)
        newer = states[4].model_copy(update={"sequence": 9, "status": OrderStatus.IN_PROGRESS})
        await writer.persist(0, newer)  # the latest record of a key wins
        rejected = OrderStatusEvent(
            request_id="burnt-1",
            provider=Provider.UP42,
            sequence=1,
            status=OrderStatus.REJECTED,
            previous_status=None,
            stapi_status=StapiStatus.REJECTED,
            occurred_at=NOW,
        )
        await writer.persist(1, BurntId("burnt-1", rejected))

        reader = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        result = await reader.restore([0, 1])
    finally:
        await producer.stop()
    assert result.records == 32
    assert reader.get("s-4") == newer
    assert all(reader.get(s.request_id) == s for s in states if s.request_id != "s-4")
    burnt = reader.get("burnt-1")
    assert isinstance(burnt, BurntId)
    assert burnt.event == rejected
    tracked_up42 = {i.request_id for i in reader.tracked(Provider.UP42)}
    assert tracked_up42 == {s.request_id for s in states if s.request.provider is Provider.UP42 and s.placed}
    assert reader.index("s-4") is not None
    assert reader.index("s-4").status is OrderStatus.IN_PROGRESS  # type: ignore[union-attr]
    reader.release([0])
    assert reader.get("s-0") is None
    assert reader.get("s-1") == states[1]


async def test_a_seen_mark_is_restored_by_the_next_owner_until_the_state_changes(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """``mark_seen`` writes the current state again with the fingerprint in its index header: the
    next owner restores it (its first poll cycle skips the order); a newer state has none."""
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        writer = StateStore(producer, broker.bootstrap_servers, unique_topics.state, hot_size=1)
        await writer.restore([0])
        kept, changed, cold = (order(f"m-{i}", "oneatlas", placed=True) for i in range(3))
        for state in (kept, changed, cold):
            await writer.persist(0, state)  # hot_size 1: m-0 and m-1 are packed, only m-2 is hot
        await writer.mark_seen(0, "m-0", 2**63 + 5)
        await writer.mark_seen(0, "m-1", 7)
        await writer.mark_seen(0, "m-2", 11)
        await writer.persist(0, changed.model_copy(update={"sequence": 4}))  # a new state: no mark

        reader = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await reader.restore([0])
    finally:
        await producer.stop()
    seen = {rid: reader.index(rid).seen for rid in ("m-0", "m-1", "m-2")}  # type: ignore[union-attr]
    assert seen == {"m-0": 2**63 + 5, "m-1": None, "m-2": 11}
    assert {rid: reader.seen_mark(rid) for rid in seen} == seen  # the poll cycle's one-call read
    assert reader.seen_mark("never-written") is None
    assert reader.get("m-0") == kept  # the mark's record holds the same state
    assert reader.get("m-2") == cold
    assert reader.get("m-1") == changed.model_copy(update={"sequence": 4})


async def test_a_released_partition_gets_no_write(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """A step that was under way when its partition was revoked must not write: the new owner may
    have restored the partition already, and a write landing after that restore would be the
    state the next restore finds (a stale state over the new owner's)."""
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        old_owner = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await old_owner.restore([0])
        state = order("rel-1", "oneatlas", placed=True)
        await old_owner.persist(0, state)
        old_owner.release([0])  # revoked while the order's next step is under way
        later = state.model_copy(update={"sequence": 4, "status": OrderStatus.IN_PROGRESS})
        with pytest.raises(OwnershipLost):
            await old_owner.persist(0, later)
        await old_owner.mark_seen(0, "rel-1", 12345)  # nothing, not even an error
        new_owner = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        result = await new_owner.restore([0])
    finally:
        await producer.stop()
    assert result.records == 1, "only the write made while the partition was owned"
    assert new_owner.get("rel-1") == state
