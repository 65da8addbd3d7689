"""The adapters' per-order caches are bounded by the open orders this instance owns: what they
keep of an order (UP42: the last poll's view, ``_seen``; OneAtlas: the learnt backend,
``_backends``) is dropped when the order ends or its partition leaves the instance."""

from __future__ import annotations

from typing import Any

import pytest
from harness import oneatlas_request, running_worker, stack_for, up42_request

from worker.config import TopicSettings
from worker.events.models import Provider
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration
FAST = 86_400.0 * 8


def caches(worker: Any) -> dict[str, int]:
    providers = worker.worker.providers
    return {
        "up42": len(providers[Provider.UP42]._seen),
        "oneatlas": len(providers[Provider.ONEATLAS]._backends),
    }


async def test_caches_return_to_zero_when_the_orders_end(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack) as worker,
    ):
        await stack.publish(up42_request("cache-up"))
        await stack.publish(
            oneatlas_request(
                "cache-oa", acquisitionPolicy={"autoAccept": {"maxCloudCover": 100, "maxIncidenceAngle": 90}}
            )
        )
        await events.wait_for(lambda: min(caches(worker).values()) >= 1, 60)  # learnt while open
        await events.wait_status("cache-up", "COMPLETED", timeout=90)
        await events.wait_status("cache-oa", "COMPLETED", timeout=90)
        await events.wait_for(lambda: caches(worker) == {"up42": 0, "oneatlas": 0}, 10)


async def test_caches_return_to_zero_when_the_partitions_leave(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events), running_worker(stack) as worker:
        await stack.publish(up42_request("leave-up"))
        await stack.publish(oneatlas_request("leave-oa"))
        await events.wait_for(lambda: min(caches(worker).values()) >= 1, 60)
        intake = worker.worker.intake
        await intake.release(set(intake.store.owned_partitions()))  # what a revocation runs
        assert caches(worker) == {"up42": 0, "oneatlas": 0}
