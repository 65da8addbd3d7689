"""What the person on call relies on, through real processes: ``status`` names the partition (and
so the instance) that owns a request, a misspelt variable is reported at start, ``SIGUSR1`` writes
a stack dump to the log, and a OneAtlas deployment without end users does not start. And what
the producer relies on: a request without a budget is not bought at any price by default."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cli_support import cli_env, invoke
from harness import WorkerProcess, oneatlas_request, running_worker, spawn_worker, stack_for, wait_ready

from worker.config import TopicSettings
from worker.events import codec
from worker.events.models import OrderStatusEvent, Provider
from worker.events.status import OrderStatus, stapi_status
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def _event(request_id: str) -> OrderStatusEvent:
    return OrderStatusEvent(
        request_id=request_id,
        provider=Provider.ONEATLAS,
        sequence=1,
        status=OrderStatus.RECEIVED,
        previous_status=None,
        stapi_status=stapi_status(OrderStatus.RECEIVED),
        occurred_at=datetime.now(UTC),
    )


async def test_status_prints_the_partition_a_producer_puts_the_request_on(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_contract_topics(unique_topics, partitions=6)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    placed: dict[str, int] = {}
    try:
        for request_id in ("req-part-a", "req-part-b", "req-part-c", "req-part-d"):
            record = codec.encode_status(_event(request_id))
            await producer.send_and_wait(unique_topics.status, record.value, key=record.key)
            # Where a producer (default partitioner) puts a request with this id.
            sent = await producer.send_and_wait(unique_topics.requests, b"{}", key=request_id.encode())
            placed[request_id] = sent.partition
    finally:
        await producer.stop()
    assert len(set(placed.values())) > 1  # the ids spread, so a constant answer would fail
    env = cli_env(broker, unique_topics)
    for request_id, partition in placed.items():
        result = await invoke(["status", request_id], env)
        assert result.exit_code == 0, result.output
        assert f"partition: {partition} of {unique_topics.requests}" in result.stdout


def _lines(worker: WorkerProcess, event: str) -> list[dict[str, object]]:
    found = []
    for line in worker.log_text().splitlines():
        if f'"event":"{event}"' in line:
            found.append(orjson.loads(line))
    return found


async def _wait_for_line(worker: WorkerProcess, event: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _lines(worker, event)
        if found:
            return found[0]
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.log_text()[-3000:]}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {event} line:\n{worker.log_text()[-3000:]}")


async def test_a_misspelt_variable_is_named_and_sigusr1_dumps_every_stack(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    async with stack_for(broker, unique_topics) as (stack, _):
        worker = spawn_worker(stack, tmp_path / "worker.log", TASKING_LOG_LEVL="DEBUG")
        try:
            await wait_ready(worker)
            (warning,) = _lines(worker, "unknown_variable")
            assert warning["level"] == "warning"
            assert warning["variable"] == "TASKING_LOG_LEVL"
            assert warning["closest"] == "TASKING_LOG_LEVEL"

            worker.process.send_signal(signal.SIGUSR1)
            dump = await _wait_for_line(worker, "stack_dump")
            tasks = dump["tasks"]
            threads = dump["threads"]
            assert isinstance(tasks, list)
            assert isinstance(threads, list)
            assert dump["taskCount"] == len(tasks) > 0
            assert any(t["name"] == "MainThread" and t["frames"] for t in threads)
            assert all(isinstance(t["frames"], list) for t in tasks)
            # the worker's own code is where its tasks wait
            assert any("worker/" in frame for t in tasks for frame in t["frames"])
            assert worker.process.poll() is None  # a dump stops nothing
        finally:
            code = worker.terminate()
    assert code == 0


def test_a_oneatlas_key_without_end_users_refuses_the_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKING_")}
    env["TASKING_ONEATLAS__API_KEY"] = "key-SECRET-123"
    exe = Path(sys.executable).parent / "tasking-worker"
    result = subprocess.run(
        [str(exe), "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "TASKING_ONEATLAS__END_USERS" in lines[0]
    assert "key-SECRET-123" not in result.stderr + result.stdout


async def test_by_default_a_request_without_budget_waits_for_approve_through_the_broker(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics) as (stack, events),
        running_worker(stack, TASKING_APPROVAL__UNBUDGETED_CEILING="") as _,
    ):
        await stack.publish(oneatlas_request("oa-no-budget"))
        waiting = await events.wait_status("oa-no-budget", "DECISION_REQUIRED")
        assert waiting["decision"]["kind"] == "approve-price"
        assert waiting["reason"]["code"] == "NO_BUDGET"
        assert waiting["reason"]["details"]["currency"] == "EUR"
        assert "ceiling" not in waiting["reason"]["details"]
        # nothing was ordered at the provider
        assert stack.sims.oneatlas.core.count("POST", "/api/v1/prices") == 1  # it was priced
        assert stack.sims.oneatlas.core.count("POST", "/api/v1/orders", status_ok=False) == 0
