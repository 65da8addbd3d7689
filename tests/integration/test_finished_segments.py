"""Finished orders folded into segment records (``StateStore.fold_finished``): the segments
restore to the same answers as the single records they replace, the singles are tombstoned
only after their segment is acknowledged, a crash between the two loses nothing, and a
re-sent request of a folded order is still a duplicate (answered with its last event) or,
with other content, a reused id."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import oneatlas_request, running_worker, stack_for
from test_finished_orders import COLLIDING, finished
from test_statestore import order

from worker.config import TopicSettings
from worker.domain.model import OrderState
from worker.events.status import OrderStatus
from worker.kafka import statestore
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.finished import SEGMENT_KEY_PREFIX, Finished, request_fingerprint
from worker.kafka.statestore import StateStore

pytestmark = pytest.mark.integration


async def _log_of(broker: EmbeddedBroker, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Key and value of every record of partition 0, in log order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[tuple[bytes | None, bytes | None]] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records += [(m.key, m.value) for m in batch.get(tp, [])]
        return records
    finally:
        await consumer.stop()


async def _retired(store: StateStore, count: int, prefix: str = "fold") -> list[OrderState]:
    done = [
        finished(order(f"{prefix}-{i}", "oneatlas", placed=True), OrderStatus.COMPLETED) for i in range(count)
    ]
    for state in done:
        await store.persist(0, state)
        await store.retire(0, state)
    return done


async def _answers(store: StateStore, done: list[OrderState]) -> None:
    for state in done:
        used = await store.used(state.request_id)
        assert used is not None
        assert used.latest == state.last_event  # the last event, read back
        assert used.matches(state.request)
        assert not used.matches(oneatlas_request(state.request_id, dryRun=True))  # other content
        entry = await store.finished(state.request_id)
        assert isinstance(entry, Finished)
        assert entry.fingerprint == request_fingerprint(state.request)
    assert await store.used("never-seen") is None


async def test_a_fold_writes_segments_then_tombstones_and_restores_to_the_same_answers(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        store = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await store.restore([0])
        done = await _retired(store, 10)
        assert await store.fold_finished(0, entries=4) == 2  # 8 folded, 2 wait for more
        assert store.finished_count() == 10  # the folded singles' entries are gone
        assert len(store._singles[0]) == 2
        await _answers(store, done)

        log = await _log_of(broker, unique_topics.state)
        segments = [i for i, (key, _) in enumerate(log) if key and key.startswith(SEGMENT_KEY_PREFIX)]
        tombstones = [i for i, (key, value) in enumerate(log) if value is None]
        assert len(segments) == 2
        assert len(tombstones) == 8
        assert min(tombstones) > segments[0]  # a segment before its singles' tombstones

        reader = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await reader.restore([0])
        assert reader.finished_count() == 10  # (the log is not compacted: singles still in it)
        assert len(reader._singles[0]) == 2  # the folded ones are not folded again
        await _answers(reader, done)
        assert await reader.fold_finished(0, entries=4) == 0
    finally:
        await producer.stop()


async def test_an_id_sharing_a_folded_orders_short_hash_is_new(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        store = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await store.restore([0])
        first = finished(order(COLLIDING[0], "oneatlas", placed=True), OrderStatus.COMPLETED)
        await store.persist(0, first)
        await store.retire(0, first)
        await _retired(store, 3, "pad")
        assert await store.fold_finished(0, entries=4) == 1
        assert COLLIDING[1] in store  # a maybe: the segment is read back...
        assert await store.used(COLLIDING[1]) is None  # ...and does not hold it
        await _answers(store, [first])
    finally:
        await producer.stop()


_CRASHING_FOLD = textwrap.dedent(
    """
    import asyncio, sys
    from aiokafka import AIOKafkaProducer
    from worker.kafka.statestore import StateStore

    async def main() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1], enable_idempotence=False)
        await producer.start()
        store = StateStore(producer, sys.argv[1], sys.argv[2])
        await store.restore([0])
        await store.fold_finished(0, entries=4)

    asyncio.run(main())
    """
)


async def test_a_crash_between_a_segment_and_its_tombstones_loses_nothing(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """A real process folds and is killed (SIGKILL) right after the segment is acknowledged:
    the log holds the segment and the singles; a restore answers every order once, does not
    fold them again, and the next fold writes their tombstones."""
    await broker.create_topics([unique_topics.state], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        writer = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await writer.restore([0])
        done = await _retired(writer, 4)
        env = {**os.environ, "TASKING_TEST_CRASH_AT": "after_segment_persist"}
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CRASHING_FOLD,
            broker.bootstrap_servers,
            unique_topics.state,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == -9, stderr.decode()[-2000:]
        assert b"after_segment_persist" in stdout
        log = await _log_of(broker, unique_topics.state)
        assert sum(1 for key, _ in log if key and key.startswith(SEGMENT_KEY_PREFIX)) == 1
        assert not any(value is None for _, value in log)  # no tombstone yet

        survivor = StateStore(producer, broker.bootstrap_servers, unique_topics.state)
        await survivor.restore([0])
        assert survivor.finished_count() == 4  # the segment's entries, not the singles too
        assert len(survivor._singles[0]) == 0
        assert len(survivor._unburied[0]) == 4
        await _answers(survivor, done)
        assert await survivor.fold_finished(0, entries=4) == 0  # nothing folded twice...
        log = await _log_of(broker, unique_topics.state)
        assert sum(1 for _, value in log if value is None) == 4  # ...the tombstones written
        assert len(survivor._unburied[0]) == 0
        await _answers(survivor, done)
    finally:
        await producer.stop()


async def test_the_worker_folds_retired_orders_and_answers_a_resent_request_as_a_duplicate(
    broker: EmbeddedBroker, unique_topics: TopicSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statestore, "FOLD_ENTRIES", 1)
    async with (
        stack_for(broker, unique_topics) as (stack, events),
        running_worker(
            stack,
            TASKING_TRACKING__FINISHED_RETENTION_SECONDS="0",
            TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS="0",
        ) as worker,
    ):
        dry = oneatlas_request("oa-dry-folded", dryRun=True)
        await stack.publish(dry)
        await events.wait_status("oa-dry-folded", "QUOTED", timeout=40)
        store = worker.worker.intake.store
        await events.wait_for(lambda: store.finished_count() == 1 and not any(store._singles.values()), 30)
        await stack.publish(dry)  # sent again after its fold: still a duplicate
        await events.wait_for(lambda: 'outcome="duplicate"' in worker.worker.metrics.render().decode(), 20)
        assert events.statuses("oa-dry-folded") == ["RECEIVED", "FEASIBLE", "QUOTED"]
        other = oneatlas_request("oa-dry-folded", dryRun=True, customerReference="another")
        await stack.publish(other)  # the id reused with other content

        def reused() -> list[dict[str, Any]]:
            return [d for d in events.dead_letters if d["error"]["code"] == "REQUEST_ID_REUSED"]

        await events.wait_for(lambda: len(reused()) == 1, 20)
        assert store.index("oa-dry-folded") is None
        assert stack.sims.oneatlas.paid_order_count("oa-dry-folded") == 0
