"""The contract topics are checked before any work: a broken layout stops the start with one
message naming the topics; ``tasking-worker check`` says the same, one line per check; a
partition count that changes while running stops the worker taking work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cli_support import cli_env, invoke
from harness import Stack, spawn_worker, start_worker

from worker.app import build_worker
from worker.config import TopicSettings
from worker.errors import TopicLayoutError
from worker.kafka.broker import EmbeddedBroker, create_topics
from worker.simulators.server import start_simulators

pytestmark = pytest.mark.integration


async def _layout(
    broker: EmbeddedBroker, topics: TopicSettings, counts: dict[str, int], compact: bool = True
) -> None:
    for name in topics.all():
        await create_topics(
            broker.bootstrap_servers, [name], counts.get(name, 3), compacted=[topics.state] if compact else []
        )


async def _start_fails(broker: EmbeddedBroker, topics: TopicSettings) -> str:
    sims = await start_simulators()
    try:
        stack = Stack(broker, sims, topics, group_id=f"g-{topics.requests}")
        with pytest.raises(TopicLayoutError) as raised:
            await build_worker(stack.settings())
        return raised.value.message
    finally:
        await sims.stop()


async def test_mismatched_partition_counts_stop_the_start(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await _layout(broker, unique_topics, {unique_topics.requests: 6, unique_topics.state: 3})
    message = await _start_fails(broker, unique_topics)
    assert "partition counts differ" in message
    assert f"{unique_topics.requests}=6" in message
    assert f"{unique_topics.state}=3" in message


async def test_the_service_process_refuses_the_layout_of_the_issue_with_one_line(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    """``tasking-worker run`` with the request topic at 6 partitions and the state topic at 3:
    the process exits 1 with one line naming both, instead of staying up doing nothing."""
    await _layout(broker, unique_topics, {unique_topics.requests: 6, unique_topics.commands: 6})
    sims = await start_simulators()
    try:
        stack = Stack(broker, sims, unique_topics, group_id=f"g-proc-{unique_topics.requests}")
        process = spawn_worker(stack, tmp_path / "worker.log")
        code = await asyncio.to_thread(process.process.wait, 60)
    finally:
        await sims.stop()
    lines = process.log_text().splitlines()
    fatal = [line for line in lines if line.startswith("fatal:")]
    assert code == 1
    assert len(fatal) == 1
    assert f"{unique_topics.requests}=6" in fatal[0]
    assert f"{unique_topics.state}=3" in fatal[0]
    assert not [line for line in lines if "Traceback" in line]
    assert sum('"topics_not_usable"' in line for line in lines) == 1


async def test_a_missing_topic_stops_the_start_when_creation_is_off(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    present = [t for t in unique_topics.all() if t != unique_topics.deliveries]
    await create_topics(broker.bootstrap_servers, present, 3, compacted=[unique_topics.state])
    message = await _start_fails(broker, unique_topics)
    assert f"missing: {unique_topics.deliveries}" in message
    assert "TASKING_KAFKA__CREATE_TOPICS" in message


async def test_a_state_topic_that_is_not_compacted_stops_the_start(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await _layout(broker, unique_topics, {}, compact=False)
    message = await _start_fails(broker, unique_topics)
    assert f"{unique_topics.state}: cleanup.policy=delete" in message


async def test_check_prints_one_line_per_check_and_fails_on_a_broken_layout(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await _layout(broker, unique_topics, {unique_topics.commands: 2})
    result = await invoke(["check"], cli_env(broker, unique_topics))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert [line.split(":")[0] for line in lines] == [
        "ok   connect",
        "ok   topics exist",
        "FAIL co-partitioned",
        "ok   state compacted",
    ]
    assert f"{unique_topics.commands}=2" in lines[2]


async def test_check_passes_on_a_good_layout(broker: EmbeddedBroker, unique_topics: TopicSettings) -> None:
    await _layout(broker, unique_topics, {})
    result = await invoke(["check"], cli_env(broker, unique_topics))
    assert result.exit_code == 0, result.output
    assert all(line.startswith("ok") for line in result.output.strip().splitlines())


async def test_a_partition_count_changed_while_running_stops_taking_work(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await _layout(broker, unique_topics, {})
    sims = await start_simulators()
    stack = Stack(broker, sims, unique_topics, group_id=f"g-grow-{unique_topics.requests}")
    worker = await start_worker(stack, TASKING_KAFKA__TOPIC_CHECK_INTERVAL_SECONDS="0.5")
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            # The embedded broker has no CreatePartitions: the topic is replaced by a wider one.
            await admin.delete_topics([unique_topics.requests])
            await admin.create_topics([NewTopic(unique_topics.requests, 6, 1)])
        finally:
            await admin.close()
        await asyncio.wait_for(worker.task, 90)  # the worker stopped by itself
        assert worker.worker.exit_code == 1
        readiness = worker.worker.health.readiness()
        assert not readiness.ok
        assert f"{unique_topics.requests} 3 -> " in readiness.checks["kafka"]
    finally:
        if not worker.task.done():
            await worker.shutdown()
        await sims.stop()
