"""Every request has exactly one owner: a request sent without a Kafka key is forwarded once to
its topic keyed by its ``requestId`` and processed there (CONTRACT §1), idempotently across
restarts.

Through real worker processes on the embedded broker (3 partitions): keyless requests are sent;
a first worker is killed (``SIGKILL``, crash point ``after_forward``) right after its first
forward, before the offset commit, so that record is forwarded a second time after the restart;
then two instances share the work and one of them is killed mid-flight and restarted. Every
request completes with exactly one paid order, its state lives only in the partition of its
key, and the event guarantees hold.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from harness import (
    assignments,
    checked,
    crash_points,
    mixed_requests,
    read_topic,
    reliability_stack,
    spawn_worker,
    status_partition,
    wait_all_terminal,
    wait_ready,
    wait_until,
)

from worker.config import TopicSettings
from worker.events.codec import encode_input
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def test_keyless_requests_have_one_owner_across_kills(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        requests = mixed_requests("keyless", 8, stack.sims)
        raw = [(unique_topics.requests, None, encode_input(r).value) for r in requests]
        await stack.publish(raw=raw)

        first = spawn_worker(stack, log_dir / "crash.log", TASKING_TEST_CRASH_AT="after_forward")
        await asyncio.to_thread(first.process.wait, 120)
        assert crash_points(first) == ["after_forward"]

        a = spawn_worker(stack, log_dir / "a.log")
        b = spawn_worker(stack, log_dir / "b.log")
        restarted = None
        try:
            await wait_ready(a)
            await wait_ready(b)
            await wait_until(
                lambda: sum("ORDERED" in events.statuses(r.request_id) for r in requests) >= 2,
                120,
                "two requests ordered",
            )
            a.kill()  # mid-flight: other requests are still being validated, priced or placed
            restarted = spawn_worker(stack, log_dir / "a2.log")
            await wait_ready(restarted)
            await wait_all_terminal(events, requests, timeout=240)
            verdict = await checked(stack, events, requests, log_dir)
            assert verdict.failures() == []
            assert assignments(b), "the second instance owned partitions"
        finally:
            for worker in (a, b, restarted):
                if worker is not None:
                    worker.kill()

        inputs = await read_topic(broker.bootstrap_servers, unique_topics.requests)
        keyed = Counter(r.key for r in inputs if r.key is not None)
        assert set(keyed) == {r.request_id.encode() for r in requests}
        assert max(keyed.values()) >= 2, "the record forwarded before the crash was forwarded again"
        assert all(r.header("tasking-forwarded-from") is not None for r in inputs if r.key is not None)
        state = await read_topic(broker.bootstrap_servers, unique_topics.state)
        for request in requests:
            partitions = {r.partition for r in state if r.key == request.request_id.encode()}
            assert partitions == {status_partition(events, request.request_id)}, request.request_id
