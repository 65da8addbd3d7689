"""The ownership fence before paid calls, against the real consumer group of the embedded broker.

* ``GroupOwnership`` confirms a partition only while the consumer's current generation holds it:
  after a second member joins and the partitions are split, the first member's confirmation of a
  partition that moved fails, the new owner's succeeds.
* A paid call whose confirmation fails is not sent; once the partition is reassigned (revoked,
  restored, resumed: a new tenure) the owner reads the durable intent back and places the order
  exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from harness import fast_oneatlas_request, reliability_stack, running_worker, wait_until

from worker.config import TopicSettings
from worker.events.models import Command
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.ownership import GroupOwnership, Ownership

pytestmark = pytest.mark.integration

SESSION_MS = 6000


@contextlib.asynccontextmanager
async def member(broker: EmbeddedBroker, topic: str, group: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer-group member that keeps polling (so it takes part in rebalances)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    consumer.subscribe([topic])

    async def poll() -> None:
        while True:
            await consumer.getmany(timeout_ms=200)

    task = asyncio.create_task(poll())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def test_only_the_current_owner_is_confirmed(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_contract_topics(unique_topics, partitions=4)
    topic, group = unique_topics.requests, f"own-{unique_topics.requests[-8:]}"
    async with member(broker, topic, group) as first:
        await wait_until(lambda: len(first.assignment()) == 4, 30, "the first member owns all")
        first_fence = GroupOwnership(first, topic, session_timeout=SESSION_MS / 1000)
        assert await first_fence.confirm(0)
        assert first_fence.holds(0)
        async with member(broker, topic, group) as second:
            await wait_until(
                lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2, 30, "a split"
            )
            moved = {tp.partition for tp in second.assignment()}
            second_fence = GroupOwnership(second, topic, session_timeout=SESSION_MS / 1000)
            for partition in moved:
                assert not first_fence.holds(partition)
                assert not await first_fence.confirm(partition)
                assert await second_fence.confirm(partition)
                assert second_fence.holds(partition)
            kept = next(tp.partition for tp in first.assignment())
            assert await first_fence.confirm(kept)


class Reassigned:
    """The real fence, except that a fresh confirmation (the one before a paid call) fails while
    ``moved`` is set: what a member sees once its partition went to another member."""

    def __init__(self, real: Ownership) -> None:
        self.real = real
        self.moved = True
        self.refused = 0

    def holds(self, partition: int) -> bool:
        return self.real.holds(partition)

    async def confirm(self, partition: int, fresh: bool = True) -> bool:
        if fresh and self.moved:
            self.refused += 1
            return False
        return await self.real.confirm(partition, fresh)


async def test_a_paid_call_is_not_sent_without_ownership_and_the_owner_resumes(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        reliability_stack(broker, unique_topics) as (stack, events),
        running_worker(stack) as running,
    ):
        worker = running.worker
        fence = Reassigned(worker.runner.ownership)
        worker.runner.ownership = fence
        request = fast_oneatlas_request("own-1", stack.sims)
        await stack.publish(request)
        await wait_until(
            lambda: fence.refused >= 2, 40, "a refused placement"
        )  # the placement was attempted, refused, retried
        assert stack.sims.oneatlas.paid_order_count("own-1") == 0
        assert "ORDERED" not in events.statuses("own-1")
        assert "FAILED" not in events.statuses("own-1")  # left to its owner, not failed

        partition = worker.intake.store.partition_of("own-1")
        assert partition is not None
        await worker.intake.release({partition})  # the rebalance: revoked, then assigned again
        fence.moved = False
        await worker.intake.acquire({partition})

        await events.wait_status("own-1", "COMPLETED", timeout=60)
        assert stack.sims.oneatlas.paid_order_count("own-1") == 1
        sequence = [e["sequence"] for e in events.unique("own-1")]
        assert sequence == list(range(1, len(sequence) + 1))


async def test_every_assignment_resumes_its_orders(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """Revoke-and-reassign of the same partition, and an assignment of a partition the instance
    still believes it holds (its revocation never ran, its timers were lost): both restore the
    partition and give its orders their timers back, as after a fresh start."""
    async with (
        reliability_stack(broker, unique_topics) as (stack, events),
        running_worker(stack) as running,
    ):
        worker = running.worker
        await stack.publish(fast_oneatlas_request("own-wait", stack.sims, autoApprove=False))
        await events.wait_status("own-wait", "DECISION_REQUIRED", timeout=40)
        partition = worker.intake.store.partition_of("own-wait")
        assert partition is not None
        timer = "own-wait:window_end"
        assert worker.scheduler.get_job(timer) is not None

        await worker.intake.release({partition})
        assert worker.scheduler.get_job(timer) is None
        await worker.intake.acquire({partition})
        assert worker.scheduler.get_job(timer) is not None

        tenure = worker.intake.store.tenure(partition)
        worker.runner.timers.cancel_orders(["own-wait"])  # lost, while the partition stays "held"
        await worker.intake.acquire({partition})
        assert worker.intake.store.tenure(partition) != tenure  # restored anew, not skipped
        assert worker.scheduler.get_job(timer) is not None

        await stack.publish(
            Command.model_validate({"requestId": "own-wait", "commandId": "c1", "command": "approve"})
        )
        await events.wait_status("own-wait", "COMPLETED", timeout=60)
        assert stack.sims.oneatlas.paid_order_count("own-wait") == 1
        sequence = [e["sequence"] for e in events.unique("own-wait")]
        assert sequence == list(range(1, len(sequence) + 1))
