"""Delivered imagery end to end: the UP42 simulator's storage, a real broker, the worker.

Every published DeliveryEvent validates against the shipped STAC schemas; COMPLETED comes after
the last delivery; a delivery that appears after the provider finished holds COMPLETED back; a
delivery that never comes ends in DELIVERY_INCOMPLETE; a restart during delivery neither misses
nor duplicates an item (a re-publish keeps its ce_id and its bytes).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from harness import (
    HOUR,
    Collector,
    RecordingCollector,
    fast_up42_request,
    reliability_stack,
    running_worker,
    wait_until,
)

from worker.config import TopicSettings
from worker.events.stac_validation import validate_item
from worker.kafka.broker import EmbeddedBroker


def check_items(events: Collector, request_id: str) -> None:
    """Every delivery of ``request_id`` is a valid STAC Item with its deterministic ce_id."""
    assert events.deliveries[request_id], "no delivery was published"
    for item, headers in zip(events.deliveries[request_id], events.delivery_headers[request_id], strict=True):
        validate_item(item)
        assert headers["ce_id"] == f"{request_id}:delivery:{item['id']}".encode()
        assert headers["ce_type"] == b"tasking.delivery.v1"
        assert item["properties"]["tasking:provider"] == "up42"
        assert item["properties"]["tasking:acquisition_ids"] == [item["id"]], (
            "UP42: the item is the acquisition"
        )
        data = [a for a in item["assets"].values() if "data" in a.get("roles", [])]
        assert data, "at least one data asset"
        assert all(
            "/v2/assets/" in a["href"] and "Signature" not in a["href"] for a in item["assets"].values()
        )


def ce_time(headers: dict[str, bytes]) -> datetime:
    return datetime.fromisoformat(headers["ce_time"].decode().replace("Z", "+00:00"))


async def test_up42_products_are_published_as_stac_items_then_completed(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        stack.sims.up42.config.deliveries_per_order = 2
        stack.sims.up42.config.scenes_per_delivery = 2
        stack.sims.up42.config.extraction_delay = HOUR / 2
        request = fast_up42_request("up-deliv-1", stack.sims)
        async with running_worker(stack):
            await stack.publish(request)
            completed = await events.wait_status("up-deliv-1", "COMPLETED", timeout=90)
        assert completed["reason"] is None
        check_items(events, "up-deliv-1")
        items = events.delivered_items("up-deliv-1")
        assert len(items) == 4, "two assets of two scenes each"
        assert completed["progress"]["deliveries"] == 4
        last_delivery = max(ce_time(h) for h in events.delivery_headers["up-deliv-1"])
        assert last_delivery <= datetime.fromisoformat(completed["occurredAt"].replace("Z", "+00:00"))
        assert events.event_problems() == []


async def test_a_delivery_after_the_provider_finished_holds_completed_back(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        request = fast_up42_request("up-late", stack.sims)
        sim.fault_deliveries(request.reference, "missing")  # the asset is stored, its items are not listed
        async with running_worker(stack):
            await stack.publish(request)
            await wait_until(
                lambda: any(o.status == "FULFILLED" for o in sim._orders_for(request.reference)),
                60,
                "the provider fulfils the order",
            )
            await events.wait_status("up-late", "IN_PROGRESS", timeout=30)
            await asyncio.sleep(4)  # well past the 1 s grace period: COMPLETED must still wait
            assert "COMPLETED" not in events.statuses("up-late")
            assert events.deliveries["up-late"] == []
            assert sim.release_deliveries(request.reference) == 1
            completed = await events.wait_status("up-late", "COMPLETED", timeout=30)
        assert completed["reason"] is None
        check_items(events, "up-late")
        (delivery,) = events.delivery_headers["up-late"]
        assert ce_time(delivery) <= datetime.fromisoformat(completed["occurredAt"].replace("Z", "+00:00"))
        assert events.event_problems() == []


async def test_a_delivery_that_never_comes_ends_in_delivery_incomplete(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        request = fast_up42_request("up-never", stack.sims)
        stack.sims.up42.fault_deliveries(request.reference, "failed")
        async with running_worker(stack):
            await stack.publish(request)
            completed = await events.wait_status("up-never", "COMPLETED", timeout=90)
        assert completed["reason"]["code"] == "DELIVERY_INCOMPLETE"
        assert completed["reason"]["details"]["delivered"] == 0
        assert completed["reason"]["details"]["providerStatus"] == "FULFILLED"
        assert events.deliveries["up-never"] == []


async def test_a_restart_during_delivery_neither_misses_nor_duplicates_an_item(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        sim.config.deliveries_per_order = 2
        request = fast_up42_request("up-restart", stack.sims)
        async with running_worker(stack):
            await stack.publish(request)
            await wait_until(lambda: len(events.delivered_items("up-restart")) == 1, 60, "the first delivery")

        # The worker is down while the second asset arrives and the order is fulfilled (the
        # simulator's lifecycle runs lazily, at each request: tick it as a request would).
        def fulfilled() -> bool:
            sim.tick()
            return any(o.status == "FULFILLED" for o in sim._orders_for(request.reference))

        await wait_until(
            fulfilled,
            60,
            "the provider fulfils the order while no worker runs",
        )
        assert len(events.delivered_items("up-restart")) == 1
        async with running_worker(stack):
            completed = await events.wait_status("up-restart", "COMPLETED", timeout=60)
        assert completed["reason"] is None
        items = events.delivered_items("up-restart")
        assert len(items) == 2
        assert sorted(items) == sorted(
            i["id"] for i in sim.storage.items_of(sim._orders_for(request.reference)[0].id)
        )
        check_items(events, "up-restart")
        assert events.event_problems() == [], "a re-published item keeps its ce_id and its bytes"
        assert isinstance(events, RecordingCollector)


async def test_a_rebalance_during_delivery_neither_misses_nor_duplicates_an_item(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics, partitions=4) as (stack, events):
        sim = stack.sims.up42
        sim.config.deliveries_per_order = 2
        requests = [fast_up42_request(f"up-rebal-{n}", stack.sims) for n in range(4)]
        async with running_worker(stack):
            await stack.publish(*requests)
            await wait_until(
                lambda: sum(len(events.delivered_items(r.request_id)) for r in requests) >= 2,
                90,
                "the first deliveries",
            )
            # A second instance joins: partitions move while products keep arriving.
            async with running_worker(stack):
                for r in requests:
                    await events.wait_status(r.request_id, "COMPLETED", timeout=90)
        for r in requests:
            (order,) = sim._orders_for(r.reference)
            stored = sorted(i["id"] for i in sim.storage.items_of(order.id))
            assert sorted(events.delivered_items(r.request_id)) == stored, r.request_id
            assert events.latest(r.request_id)["reason"] is None  # type: ignore[index]
            check_items(events, r.request_id)
        assert events.event_problems() == []
