"""The worker end to end: real embedded broker, both simulators as HTTP servers, the worker in
process configured only through TASKING_* variables. Each flow reaches its expected status sequence.
"""

from __future__ import annotations

import pytest

from harness import Collector, Stack, oneatlas_request, stack_for, start_worker, up42_request
from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def test_oneatlas_oneplan_reaches_ordered_then_completes(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events):
        worker = await start_worker(stack)
        try:
            await stack.publish(oneatlas_request("oa-oneplan-1"))
            ordered = await events.wait_status("oa-oneplan-1", "ORDERED", timeout=40)
            assert ordered["providerRefs"]["salesOrderId"]
            assert events.statuses("oa-oneplan-1")[:4] == ["RECEIVED", "FEASIBLE", "QUOTED", "ORDERED"]
            assert stack.sims.oneatlas.paid_order_count("oa-oneplan-1") == 1
        finally:
            await worker.shutdown()
