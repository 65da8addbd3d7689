"""State bounded by input: whatever a valid request carries, its state fits one changelog record,
or the request gets an outcome that says why, and its partition's commits go on.

Through a real worker process on the embedded broker (one partition, so every request shares it):

* a valid ``auto`` request whose candidates carry large ``providerOptions`` (400 kB, under the
  1 MiB request limit) would have a first state of about 1.2 MB: it is refused at intake, before
  any provider call (dead letter ``TOO_LARGE`` and ``REJECTED`` with the measured and allowed
  sizes), the request after it completes, and the same request sent again is answered with its
  ``REJECTED`` event once more;
* an order whose state outgrows the limit later (``TASKING_INTAKE__MAX_STATE_BYTES`` made small)
  ends ``FAILED`` with reason ``STATE_TOO_LARGE`` instead of retrying a write that cannot succeed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    UP42_PHR_PRODUCT,
    checked,
    fast_oneatlas_request,
    read_topic,
    reliability_stack,
    sim_window,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
)

from worker.config import TopicSettings
from worker.events.models import OrderRequest
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

TOULOUSE = [[1.4316, 43.5688], [1.4316, 43.6019], [1.4670, 43.6019], [1.4670, 43.5688], [1.4316, 43.5688]]


def large_auto_request(request_id: str, window: dict[str, str], pad: int) -> OrderRequest:
    options: dict[str, Any] = {"note": "x" * pad}
    return OrderRequest.model_validate(
        {
            "requestId": request_id,
            "provider": "auto",
            "candidates": [
                {
                    "provider": "oneatlas",
                    "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"},
                    "providerOptions": options,
                },
                {
                    "provider": "up42",
                    "product": {"dataProductId": UP42_PHR_PRODUCT},
                    "providerOptions": options,
                },
            ],
            "aoi": {"type": "Polygon", "coordinates": [TOULOUSE]},
            "window": window,
        }
    )


async def committed_offset(bootstrap: str, group: str, topic: str) -> tuple[int | None, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return await consumer.committed(tp), (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def wait_committed(broker: EmbeddedBroker, group: str, topic: str, expected: int) -> int | None:
    deadline = time.monotonic() + 30
    while True:
        committed, _ = await committed_offset(broker.bootstrap_servers, group, topic)
        if committed == expected or time.monotonic() > deadline:
            return committed
        await asyncio.sleep(0.3)


async def test_a_request_whose_state_would_not_fit_is_refused_and_the_partition_goes_on(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    async with reliability_stack(broker, unique_topics, partitions=1) as (stack, events):
        big = large_auto_request("big-auto", sim_window(stack.sims, 30), pad=200_000)
        assert len(big.model_dump_json(by_alias=True)) < 1024 * 1024  # a valid, accepted size
        after = fast_oneatlas_request("after-big", stack.sims)
        await stack.publish(big, after)
        worker = spawn_worker(stack, log_dir / "worker.log")
        try:
            await wait_ready(worker)
            await wait_all_terminal(events, [big, after], timeout=120)
            assert events.statuses("big-auto") == ["REJECTED"]
            reason = events.latest("big-auto")["reason"]  # type: ignore[index]
            assert reason["code"] == "INVALID_REQUEST"
            assert reason["details"]["deadLetterCode"] == "TOO_LARGE"
            assert reason["details"]["maxStateBytes"] == 750_000
            assert reason["details"]["stateSize"] > 750_000
            dead = [d for d in events.dead_letters if d["error"]["code"] == "TOO_LARGE"]
            assert len(dead) == 1
            assert dead[0]["source"]["offset"] == 0
            assert stack.sims.oneatlas.paid_order_count("big-auto") == 0
            assert stack.sims.up42.paid_order_count("big-auto") == 0
            assert (await checked(stack, events, [after], log_dir)).failures() == []
            assert await wait_committed(broker, stack.group_id, unique_topics.requests, 2) == 2
            await stack.publish(big)  # the same request again: answered, not "reused"
            await events.wait_for(lambda: len(events.status["big-auto"]) == 2, 30)
            assert [e["sequence"] for e in events.status["big-auto"]] == [1, 1]
            assert not [d for d in events.dead_letters if d["error"]["code"] == "REQUEST_ID_REUSED"]
        finally:
            worker.kill()


async def test_an_order_that_outgrows_a_record_ends_failed_and_the_partition_goes_on(
    broker: EmbeddedBroker, unique_topics: TopicSettings, log_dir: Path
) -> None:
    async with reliability_stack(broker, unique_topics, partitions=1) as (stack, events):
        # A first state of about 7.3 kB (within 3/4 of 10 kB) that grows past 10 kB as its five
        # acquisitions come in.
        stack.sims.oneatlas.coverage_per_acquisition = 0.2
        growing = fast_oneatlas_request("growing", stack.sims, providerOptions={"pad": "x" * 5300})
        small = fast_oneatlas_request("small-after", stack.sims)
        await stack.publish(growing, small)
        worker = spawn_worker(stack, log_dir / "worker.log", TASKING_INTAKE__MAX_STATE_BYTES="10000")
        try:
            await wait_ready(worker)
            await wait_all_terminal(events, [growing, small], timeout=120)
            assert events.statuses("small-after")[-1] == "COMPLETED"
            sizes = [
                len(r.value or b"") for r in await read_topic(broker.bootstrap_servers, unique_topics.state)
            ]
            assert events.statuses("growing")[-1] == "FAILED", sizes
            reason = events.latest("growing")["reason"]  # type: ignore[index]
            assert reason["code"] == "STATE_TOO_LARGE"
            assert reason["details"]["maxStateBytes"] == 10_000
            assert reason["details"]["stateSize"] > 10_000
            assert events.event_problems() == []
            assert await wait_committed(broker, stack.group_id, unique_topics.requests, 2) == 2
            assert "record_not_durable" not in worker.log_text()
        finally:
            worker.kill()
