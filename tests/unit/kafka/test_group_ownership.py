"""``GroupOwnership``: the broker's word before paid calls, a lease for state writes, offsets never
moved by a confirmation, concurrent confirmations sharing one round trip."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from worker.kafka.ownership import GroupOwnership

TOPIC = "tasking.order-requests"


class FakeConsumer:
    """The part of ``AIOKafkaConsumer`` the fence uses; commits are recorded (and can fail)."""

    def __init__(self, partitions: set[int]) -> None:
        self.assigned = {TopicPartition(TOPIC, p) for p in partitions}
        self.commits: list[dict[TopicPartition, int]] = []
        self.evicted = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.sleep(0.01)
        if self.evicted:
            raise CommitFailedError("the group has already rebalanced")
        self.commits.append(dict(offsets))

    async def committed(self, tp: TopicPartition) -> int | None:
        return 7 if tp.partition == 0 else None

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fence(consumer: FakeConsumer, clock: Clock) -> GroupOwnership:
    return GroupOwnership(consumer, TOPIC, session_timeout=10.0, clock=clock)  # type: ignore[arg-type]


async def test_confirm_recommits_the_committed_offset_and_opens_a_lease() -> None:
    consumer, clock = FakeConsumer({0, 1}), Clock()
    own = fence(consumer, clock)
    assert not own.holds(0)  # no confirmation yet: writes must ask the broker
    assert await own.confirm(0)
    clock.now += 0.1
    assert await own.confirm(1)
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 7}, {TopicPartition(TOPIC, 1): 3}]
    assert own.holds(0)
    clock.now += 4.8
    assert own.holds(1)
    clock.now += 0.2  # past half the session timeout: a frozen process wakes up here
    assert not own.holds(1)


async def test_batch_commits_set_the_offset_a_confirmation_repeats() -> None:
    consumer, clock = FakeConsumer({0}), Clock()
    own = fence(consumer, clock)
    tp = TopicPartition(TOPIC, 0)
    await own.commit({tp: 42})
    clock.now += 1
    assert await own.confirm(0)
    assert consumer.commits == [{tp: 42}, {tp: 42}]  # never back to the broker's older 7


async def test_an_evicted_member_or_a_moved_partition_is_not_confirmed() -> None:
    consumer, clock = FakeConsumer({0}), Clock()
    own = fence(consumer, clock)
    assert await own.confirm(0)
    assert not await own.confirm(5)  # not assigned: no commit at all
    assert len(consumer.commits) == 1
    consumer.evicted = True
    clock.now += 1
    assert not await own.confirm(0)
    assert not own.holds(0)  # a refusal ends the lease at once


async def test_concurrent_confirmations_share_a_round_trip() -> None:
    consumer, clock = FakeConsumer({0}), Clock()
    own = fence(consumer, clock)
    results = await asyncio.gather(*(own.confirm(0) for _ in range(10)))
    assert results == [True] * 10
    assert len(consumer.commits) == 1
    clock.now += 1  # asked after that commit was sent: a fresh one
    assert await own.confirm(0)
    assert len(consumer.commits) == 2


async def test_forget_drops_offsets_and_the_lease() -> None:
    consumer, clock = FakeConsumer({0}), Clock()
    own = fence(consumer, clock)
    await own.commit({TopicPartition(TOPIC, 0): 42})
    own.forget({0})
    assert not own.holds(0)
    clock.now += 1
    assert await own.confirm(0)
    assert consumer.commits[-1] == {TopicPartition(TOPIC, 0): 7}  # read again from the broker
