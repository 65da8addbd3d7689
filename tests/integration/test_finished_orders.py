"""Finished orders leave the hot store: after their retention a finished record replaces the
state in the changelog and in memory; scans no longer see it, a restore brings back only the
record, and a re-sent request is still a duplicate, answered from the record's last event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from harness import oneatlas_request, running_worker, stack_for
from test_statestore import order

from worker.config import TopicSettings
from worker.domain.model import OrderState, Phase
from worker.errors import OwnershipLost
from worker.events.models import OrderStatusEvent, Provider
from worker.events.status import OrderStatus, StapiStatus
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.finished import Finished, request_fingerprint, short_hash
from worker.kafka.statestore import StateStore

pytestmark = pytest.mark.integration
#: Two ids whose short hashes are equal (found by a birthday search over "coll-<n>").
COLLIDING = ("coll-24455", "coll-36288")
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def finished(state: OrderState, status: OrderStatus) -> OrderState:
    event = OrderStatusEvent(
        request_id=state.request_id,
        provider=Provider(state.request.provider.value),
        sequence=state.sequence + 1,
        status=status,
        previous_status=state.status,
        stapi_status=StapiStatus.COMPLETED if status is OrderStatus.COMPLETED else StapiStatus.CANCELLED,
        occurred_at=NOW,
    )
    return state.model_copy(
        update={"status": status, "phase": Phase.DONE, "sequence": event.sequence, "last_event": event}
    )


async def test_a_retired_order_is_a_finished_record_in_memory_and_after_a_restore(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_topics([unique_topics.state], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        writer = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await writer.restore([0, 1])
        open_orders = [order(f"open-{i}", "oneatlas", placed=True) for i in range(4)]
        done = [
            finished(order(f"done-{i}", "up42" if i % 2 else "oneatlas", placed=True), OrderStatus.COMPLETED)
            for i in range(6)
        ]
        for i, state in enumerate(open_orders + done):
            await writer.persist(i % 2, state)
        for i, state in enumerate(done):
            retired = await writer.retire((len(open_orders) + i) % 2, state)
            assert isinstance(retired, Finished)
        assert await writer.retire(0, open_orders[0]) is None  # an open order is never retired
        assert await writer.retire(0, open_orders[0]) is None

        def check(store: StateStore) -> None:
            scanned = {index.request_id for _, index in store.indexes()}
            assert scanned == {s.request_id for s in open_orders}  # scans never see them
            assert {i.request_id for i in store.tracked(Provider.ONEATLAS)} == scanned
            assert not any(True for _ in store.awaiting_delivery(Provider.UP42))
            assert store.finished_count() == len(done)
            assert store.finished_nbytes() / store.finished_count() <= 12
            for state in done:
                assert state.request_id in store  # a maybe, confirmed by the read-back below
                assert store.get(state.request_id) is None  # not an order any more
                assert store.index(state.request_id) is None
                assert store.partition_of(state.request_id) is None
            assert "never-seen" not in store

        async def confirm(store: StateStore) -> None:
            for state in done:
                entry = await store.finished(state.request_id)
                assert isinstance(entry, Finished)
                assert entry.status is OrderStatus.COMPLETED
                assert entry.fingerprint == request_fingerprint(state.request)
            assert await store.finished("never-seen") is None

        check(writer)
        await confirm(writer)
        reader = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        result = await reader.restore([0, 1])
        assert result.records == len(open_orders) + 2 * len(done)  # the log is not compacted yet
        check(reader)
        await confirm(reader)
        for state in done:
            outcome = await reader.outcome(state.request_id)
            assert outcome is not None
            assert outcome.event == state.last_event  # read back from the changelog
            assert (outcome.status, outcome.fingerprint) == (
                OrderStatus.COMPLETED,
                request_fingerprint(state.request),
            )
        live = await reader.outcome(open_orders[1].request_id)
        assert live is not None
        assert live.status is OrderStatus.ORDERED
        assert live.event is None
        assert await reader.outcome("never-seen") is None
        reader.release([0, 1])
        assert reader.finished_count() == 0
        assert done[0].request_id not in reader
    finally:
        await producer.stop()


async def test_the_worker_retires_a_finished_order_and_still_answers_its_request_as_a_duplicate(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics) as (stack, events),
        running_worker(
            stack,
            TASKING_TRACKING__FINISHED_RETENTION_SECONDS="0",
            TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS="0",
        ) as worker,
    ):
        dry = oneatlas_request("oa-dry-retired", dryRun=True)
        await stack.publish(dry)
        await events.wait_status("oa-dry-retired", "QUOTED", timeout=40)
        store = worker.worker.intake.store
        await events.wait_for(lambda: store.finished_count() == 1, 20)
        assert isinstance(await store.finished("oa-dry-retired"), Finished)
        assert not any(index.request_id == "oa-dry-retired" for _, index in store.indexes())
        outcome = await store.outcome("oa-dry-retired")
        assert outcome is not None
        assert outcome.event is not None
        assert outcome.event.sequence == events.latest("oa-dry-retired")["sequence"]  # type: ignore[index]
        assert outcome.fingerprint == request_fingerprint(dry)

        await stack.publish(dry)  # sent again after its retirement: still a duplicate
        await events.wait_for(lambda: 'outcome="duplicate"' in worker.worker.metrics.render().decode(), 20)
        assert events.statuses("oa-dry-retired") == ["RECEIVED", "FEASIBLE", "QUOTED"]
        assert store.finished_count() == 1
        assert store.index("oa-dry-retired") is None
        assert stack.sims.oneatlas.paid_order_count("oa-dry-retired") == 0


async def test_a_released_partition_retires_nothing(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """A retirement is a state write: not by an instance that no longer owns the partition (its
    new owner keeps the full state), and nothing reaches the changelog."""
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        store = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await store.restore([0])
        done = finished(order("gone-1", "oneatlas", placed=True), OrderStatus.CANCELLED)
        await store.persist(0, done)
        store.release([0])
        with pytest.raises(OwnershipLost):
            await store.retire(0, done)
        successor = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await successor.restore([0])
        assert successor.get("gone-1") == done  # still the full state
        assert successor.finished_count() == 0
    finally:
        await producer.stop()


async def test_an_id_sharing_a_finished_orders_short_hash_is_new_and_the_finished_one_a_duplicate(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """Memory keeps 32 bits of a finished order's id: a hit is a maybe, and the record read back
    decides. Two ids with equal short hashes, both retired into one partition, are each answered
    with their own record; a third id is unknown."""
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        store = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await store.restore([0])
        first_id, second_id = COLLIDING
        assert short_hash(first_id) == short_hash(second_id)
        first = finished(order(first_id, "oneatlas", placed=True), OrderStatus.COMPLETED)
        await store.persist(0, first)
        await store.retire(0, first)
        assert second_id in store  # the maybe...
        assert await store.finished(second_id) is None  # ...that the read-back clears
        assert await store.used(second_id) is None  # so a request with it is a new order

        second = finished(order(second_id, "up42", placed=True), OrderStatus.CANCELLED)
        await store.persist(0, second)
        await store.retire(0, second)
        for reader in (store, StateStore(producer, broker.bootstrap_servers, unique_topics.state)):
            await reader.restore([0])  # (no-op for the owner)
            for state in (first, second):
                used = await reader.used(state.request_id)
                assert used is not None
                assert used.latest == state.last_event
                assert used.matches(state.request)
            entry = await reader.finished(second_id)
            assert entry is not None
            assert entry.status is OrderStatus.CANCELLED
    finally:
        await producer.stop()


async def test_a_failed_read_back_is_never_a_new_order(
    broker: EmbeddedBroker, unique_topics: TopicSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-sent request of a finished order whose record cannot be read back is not accepted
    (the error goes to the intake, which reads the request again): never a second order."""
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        store = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await store.restore([0])
        done = finished(order("unreadable-1", "oneatlas", placed=True), OrderStatus.COMPLETED)
        await store.persist(0, done)
        await store.retire(0, done)

        async def unreadable(partition: int, offset: int) -> tuple[bytes | None, bytes | None]:
            raise KafkaTimeoutError("changelog unreachable (test)")

        monkeypatch.setattr(store, "_read_at", unreadable)
        with pytest.raises(KafkaTimeoutError):
            await store.used("unreadable-1")
        with pytest.raises(KafkaTimeoutError):
            await store.outcome("unreadable-1")
        assert await store.used("never-seen") is None  # no candidate: nothing to read
        assert store.get("unreadable-1") is None
        assert len(store) == 0  # nothing was started
    finally:
        await producer.stop()
