"""No poison pill: a record whose processing raises (not a bad message: an exception) is tried a
bounded number of times, then dead-lettered ``INTERNAL_ERROR``, and its partition goes on
(CONTRACT §8).

Through a real worker process on the embedded broker: the poison is injected with the test
facility ``TASKING_TEST_POISON_MARK`` (``worker.crashpoints``): every record whose value
carries the mark raises while being processed, on every attempt.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    checked,
    fast_oneatlas_request,
    http_get,
    metric_value,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
)

from worker.config import TopicSettings
from worker.events.codec import encode_input
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

MARK = "poison-mark-7f3a"


async def committed_and_end(bootstrap: str, group: str, topic: str) -> tuple[int | None, int]:
    """The group's committed offset and the end offset of partition 0 of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        committed = await consumer.committed(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        return committed, end
    finally:
        await consumer.stop()


async def wait_committed(
    broker: EmbeddedBroker, group: str, topic: str, expected: int, timeout: float = 30.0
) -> tuple[int | None, int]:
    """Committed and end offsets once the commit reached ``expected`` (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        committed, end = await committed_and_end(broker.bootstrap_servers, group, topic)
        if committed == expected or time.monotonic() > deadline:
            return committed, end
        await asyncio.sleep(0.3)


async def test_a_poison_record_is_dead_lettered_and_its_partition_goes_on(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    async with reliability_stack(broker, unique_topics, partitions=1) as (stack, events):
        poison = fast_oneatlas_request("poison-1", stack.sims, customerReference=MARK)
        # After it, on the same partition: a valid request with the same key (and id), and others.
        valid = [fast_oneatlas_request("poison-1", stack.sims)] + [
            fast_oneatlas_request(f"after-poison-{n}", stack.sims) for n in range(3)
        ]
        records = [encode_input(poison)] + [encode_input(r) for r in valid]
        assert {r.key for r in records[:2]} == {b"poison-1"}
        await stack.publish(poison, *valid)
        worker = spawn_worker(
            stack,
            log_dir / "worker.log",
            TASKING_TEST_POISON_MARK=MARK,
            TASKING_INTAKE__RECORD_ATTEMPTS="3",
            TASKING_INTAKE__RECORD_BACKOFF_SECONDS="0.1",
        )
        try:
            await wait_ready(worker)
            await wait_all_terminal(events, valid, timeout=120)
            verdict = await checked(stack, events, valid, log_dir)
            assert verdict.failures() == []
            internal = [d for d in events.dead_letters if d["error"]["code"] == "INTERNAL_ERROR"]
            assert len(internal) == 1
            assert internal[0]["source"]["offset"] == 0
            assert internal[0]["error"]["details"] == {"exception": "PoisonRecord", "attempts": 3}
            assert "PoisonRecord" in internal[0]["error"]["message"]
            committed, end = await wait_committed(broker, stack.group_id, unique_topics.requests, 5)
            assert (committed, end) == (5, 5)
            _, text = await http_get(worker.http_port, "/metrics")
            requests = unique_topics.requests
            assert metric_value(text, "tasking_record_failures_total", topic=requests, outcome="retried") == 2
            assert (
                metric_value(text, "tasking_record_failures_total", topic=requests, outcome="dead_lettered")
                == 1
            )
            assert metric_value(text, "tasking_dead_letters_total", reason="INTERNAL_ERROR") == 1
            assert worker.process.poll() is None
        finally:
            worker.kill()
