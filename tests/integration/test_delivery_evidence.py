"""Completion on evidence and delivery bulkheads end to end: the simulators' delivery hosts, a real
broker, the worker at its default delivery settings (no grace period).

- An order completes in the harvest cycle that sees its last product: the COMPLETED event carries
  the time of that product's DeliveryEvent (the same step), for OneAtlas and for UP42.
- A UP42 collection that answers 404 affects only its own order's products: they are published
  without the original archive, the order completes, and the product is published again,
  complete, once the collection reads; another order goes on untouched.
- A UP42 asset that the listing shows late, with an older ``createdAt`` than assets already seen,
  is delivered.
- A UP42 asset whose metadata extraction FAILED is delivered as its archive.
- A product that appears after COMPLETED is published and counted by a repeated COMPLETED.

The time from the last product at the provider to COMPLETED is printed (``-s`` shows it).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from harness import (
    HOUR,
    Collector,
    fast_oneatlas_request,
    fast_up42_request,
    reliability_stack,
    running_worker,
    wait_until,
)
from test_deliveries import ce_time, oneatlas_sim, ordered, provider_done

from worker.config import TopicSettings
from worker.events.stac_validation import validate_item
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault

LONG_TIMEOUT = {"TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS": "3600"}  # never the way to COMPLETED here
HARVEST_SECONDS = 2.0  # the harvest interval where a test tells one cycle from the next
SLOW_HARVEST = {"TASKING_TRACKING__DELIVERY_INTERVAL_SECONDS": str(HARVEST_SECONDS)}


def occurred(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurredAt"].replace("Z", "+00:00"))


def last_delivery_time(events: Collector, request_id: str) -> datetime:
    return max(ce_time(h) for h in events.delivery_headers[request_id])


async def test_oneatlas_completes_in_the_cycle_that_sees_its_last_product(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = oneatlas_sim(stack)
        request = fast_oneatlas_request("oa-evidence", stack.sims)
        async with running_worker(stack, **LONG_TIMEOUT):
            await stack.publish(request)
            await wait_until(lambda: ordered(sim, request), 30, "the order is placed")
            sim.plan_delivery(request.reference, withhold_all=True)
            await wait_until(lambda: provider_done(sim, request), 60, "the provider completes the order")
            await events.wait_status(request.request_id, "IN_PROGRESS", timeout=30)
            released = time.monotonic()
            sim.plan_delivery(request.reference, release=True)
            completed = await events.wait_status(request.request_id, "COMPLETED", timeout=30)
            figure = time.monotonic() - released
        assert completed["reason"] is None
        assert occurred(completed) == last_delivery_time(events, request.request_id), (
            "COMPLETED in the same step as the last product"
        )
        print(f"\nOneAtlas: product released -> COMPLETED received: {figure:.2f} s (harvest every 0.5 s)")


async def test_up42_completes_in_the_cycle_that_sees_its_last_product(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        sim.config.deliveries_per_order = 2
        sim.config.scenes_per_delivery = 2
        request = fast_up42_request("up-evidence", stack.sims)
        sim.fault_deliveries(request.reference, "missing")  # stored, extraction held back
        async with running_worker(stack, **LONG_TIMEOUT, **SLOW_HARVEST):
            await stack.publish(request)
            await wait_until(
                lambda: any(o.status == "FULFILLED" for o in sim._orders_for(request.reference)),
                60,
                "the provider fulfils the order",
            )
            await events.wait_status(request.request_id, "IN_PROGRESS", timeout=30)
            released = time.monotonic()
            assert sim.release_deliveries(request.reference) == 2
            completed = await events.wait_status(request.request_id, "COMPLETED", timeout=30)
            figure = time.monotonic() - released
        assert completed["reason"] is None
        assert completed["progress"]["deliveries"] == 4, "two assets of two scenes each"
        assert len(events.delivered_items(request.request_id)) == 4
        # The products are held for one acquisition listing (UP42 lists them as acquisitions at
        # the same time), published with it, and the harvest's storage evidence completes the
        # order in that same harvest: within one harvest interval, never a grace period later.
        since_last = occurred(completed) - last_delivery_time(events, request.request_id)
        assert timedelta(0) <= since_last < timedelta(seconds=HARVEST_SECONDS), since_last
        print(f"\nUP42: extraction finished -> COMPLETED received: {figure:.2f} s (harvest every 2 s)")


async def test_a_collection_that_answers_404_affects_only_its_order(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        broken = fast_up42_request("up-404", stack.sims)
        healthy = fast_up42_request("up-fine", stack.sims)
        sim.fault_deliveries(broken.reference, "missing")
        async with running_worker(stack, **LONG_TIMEOUT):
            await stack.publish(broken, healthy)
            await wait_until(
                lambda: any(a.order_id in _ids(sim, broken) for a in sim.storage.assets.values()),
                60,
                "the broken order's asset is stored",
            )
            (stored,) = [a for a in sim.storage.assets.values() if a.order_id in _ids(sim, broken)]
            collection = stored.collection["id"]
            sim.inject(Fault(kind="status", path=f".*/collections/{collection}", status=404, times=None))
            sim.release_deliveries(broken.reference)
            fine = await events.wait_status(healthy.request_id, "COMPLETED", timeout=60)
            done = await events.wait_status(broken.request_id, "COMPLETED", timeout=60)
            (first,) = events.deliveries[broken.request_id]
            assert not any("original" in a.get("roles", []) for a in first["assets"].values())
            sim.core.clear_faults()
            await wait_until(lambda: len(events.deliveries[broken.request_id]) == 2, 30, "the whole product")
        assert fine["reason"] is None
        assert fine["progress"]["deliveries"] == 1
        healthy_item = events.deliveries[healthy.request_id][0]
        assert any("original" in a.get("roles", []) for a in healthy_item["assets"].values())
        assert done["reason"] is None, "its items are published: the order is delivered"
        first_headers, whole_headers = events.delivery_headers[broken.request_id]
        whole = events.deliveries[broken.request_id][1]
        assert whole["id"] == first["id"]
        assert whole_headers["ce_id"] == first_headers["ce_id"] + b":r1"
        assert any("original" in a.get("roles", []) for a in whole["assets"].values()), "completed later"
        validate_item(whole)
        assert events.event_problems() == []


def _ids(sim: Any, request: Any) -> set[str]:
    return {o.id for o in sim._orders_for(request.reference)}


async def test_an_asset_listed_late_with_an_older_creation_time_is_delivered(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        sim.config.deliveries_per_order = 2
        sim.config.late_listing_delay = HOUR / 2
        late = fast_up42_request("up-late-listed", stack.sims)
        other = fast_up42_request("up-listed", stack.sims)  # its assets move the cursor meanwhile
        sim.fault_deliveries(late.reference, "late_listed")
        async with running_worker(stack, **LONG_TIMEOUT):
            await stack.publish(late, other)
            for request in (late, other):
                completed = await events.wait_status(request.request_id, "COMPLETED", timeout=90)
                assert completed["reason"] is None, request.request_id
        for request in (late, other):
            stored = sorted(i["id"] for order in _ids(sim, request) for i in sim.storage.items_of(order))
            assert len(stored) == 2
            assert sorted(events.delivered_items(request.request_id)) == stored, request.request_id
        assert all(
            a.listed_at is not None for a in sim.storage.assets.values() if a.order_id in _ids(sim, late)
        )
        assert events.event_problems() == []


async def test_an_asset_whose_extraction_failed_is_delivered_as_its_archive(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        request = fast_up42_request("up-failed-extraction", stack.sims)
        sim.fault_deliveries(request.reference, "failed")
        async with running_worker(stack, **LONG_TIMEOUT):
            await stack.publish(request)
            completed = await events.wait_status(request.request_id, "COMPLETED", timeout=90)
        assert completed["reason"] is None
        (stored,) = [a for a in sim.storage.assets.values() if a.order_id in _ids(sim, request)]
        (item,) = events.deliveries[request.request_id]
        validate_item(item)
        assert item["id"] == stored.id
        assert "FAILED" in item["properties"]["tasking:note"]
        (data,) = item["assets"].values()
        assert data["href"].endswith(f"/v2/assets/{stored.id}")
        assert data["roles"] == ["data", "original"]


async def test_a_product_that_appears_after_completed_is_published(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = stack.sims.up42
        request = fast_up42_request("up-after", stack.sims)
        async with running_worker(stack, **LONG_TIMEOUT):
            await stack.publish(request)
            first = await events.wait_status(request.request_id, "COMPLETED", timeout=90)
            (order_id,) = _ids(sim, request)
            sim.deliver(order_id, cloud_cover=3.0)  # the provider adds a product later
            await wait_until(lambda: len(events.delivered_items(request.request_id)) == 2, 30, "the late one")
            await events.wait_for(
                lambda: (events.latest(request.request_id) or {}).get("progress", {}).get("deliveries") == 2,
                30,
            )
        assert first["progress"]["deliveries"] == 1
        latest = events.latest(request.request_id)
        assert latest is not None
        assert (latest["status"], latest["previousStatus"]) == ("COMPLETED", "COMPLETED")
        assert latest["sequence"] == first["sequence"] + 1
        for item in events.deliveries[request.request_id]:
            validate_item(item)
        assert events.event_problems() == []
