"""Delivered imagery end to end: the simulators' delivery hosts (UP42 storage, the OneAtlas
workspace search), a real broker, the worker; for UP42, OneAtlas legacy (Pléiades ONEPLAN) and
Pléiades Neo.

Every published DeliveryEvent validates against the shipped STAC schemas; COMPLETED comes after
the last delivery; a delivery that appears after the provider finished holds COMPLETED back; a
delivery that never comes ends in DELIVERY_INCOMPLETE; a restart and a rebalance during delivery
neither miss nor duplicate an item (a re-publish keeps its ce_id and its bytes). OneAtlas products
are joined to their acquisitions: a Pléiades Neo product through the ``ACQ_…`` of its zip name
(the coverage item's ``archiveId``), a legacy one through its ``DS_…`` ``sourceIdentifier`` (the
segment's ``catalogId``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from harness import (
    DAY,
    HOUR,
    Collector,
    RecordingCollector,
    Stack,
    fast_oneatlas_request,
    fast_up42_request,
    reliability_stack,
    running_worker,
    wait_until,
)

from worker.config import TopicSettings
from worker.events.models import OrderRequest
from worker.events.stac_validation import validate_item
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.oneatlas import OneAtlasSimulator


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
            await asyncio.sleep(4)  # eight harvest cycles: COMPLETED must still wait
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
        stack.sims.up42.fault_deliveries(request.reference, "missing")  # extraction never ends
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


# ----------------------------------------------------------------------------- OneAtlas


@dataclass(frozen=True)
class Flavour:
    """One OneAtlas ordering flavour: its mission and what its acquisition ids look like."""

    name: str
    mission: str
    acquisition_prefix: str  # the simulator's segment / coverage item ids
    source_prefix: str  # the join key the product carries
    finished_status: str  # the provider status the order ends in

    def request(self, request_id: str, stack: Stack) -> OrderRequest:
        extra: dict[str, Any] = {"mission": self.mission}
        if self.mission == "PLEIADESNEO":
            extra["budget"] = {"maxAmount": 1_000_000, "currency": "EUR"}  # the quotation is accepted
        return fast_oneatlas_request(request_id, stack.sims, **extra)


LEGACY = Flavour("legacy", "PLEIADES", "AS_FC_", "DS_", "Completed")  # the ICR status
NEO = Flavour("pneo", "PLEIADESNEO", "CIE_", "ACQ_", "COMPLETED/ACCEPTED")  # line status/quotation
FLAVOURS = pytest.mark.parametrize("flavour", [LEGACY, NEO], ids=lambda f: f.name)


def oneatlas_sim(
    stack: Stack, acquisitions: int = 1, delivery_delay: float = HOUR / 2, interval: float = HOUR
) -> OneAtlasSimulator:
    """The OneAtlas simulator, set so an order needs ``acquisitions`` validated acquisitions
    (``interval`` simulated seconds apart) and each is delivered ``delivery_delay`` simulated
    seconds after its validation."""
    sim = stack.sims.oneatlas
    sim.acquisition_interval = interval
    sim.coverage_per_acquisition = 1.0 / acquisitions
    sim.quotation_delay = HOUR / 2
    sim.delivery_delay = delivery_delay
    return sim


def provider_done(sim: OneAtlasSimulator, request: OrderRequest) -> bool:
    """The provider completed the order (the simulator's lifecycle runs lazily: ticked here)."""
    try:
        sim.delivered(request.reference)
        return sim.order(request.reference).status.upper() == "COMPLETED"
    except KeyError:  # not ordered yet
        return False


def ordered(sim: OneAtlasSimulator, request: OrderRequest) -> bool:
    try:
        sim.order(request.reference)
    except KeyError:
        return False
    return True


def validated(sim: OneAtlasSimulator, request: OrderRequest) -> list[str]:
    order = sim.order(request.reference)
    return sorted(a.id for a in order.acquisitions if a.status.upper() == "VALIDATED")


def check_oneatlas_items(
    events: Collector, request_id: str, sim: OneAtlasSimulator, request: OrderRequest, flavour: Flavour
) -> None:
    """Every delivery of ``request_id`` is a valid STAC Item with its deterministic ce_id, an
    authenticated download asset on the access host, and the acquisition it was made from."""
    assert events.deliveries[request_id], "no delivery was published"
    stored = {p["id"]: p for p in sim.delivered(request.reference)}
    announced = {a["acquisitionId"] for a in events.acquisitions[request_id] if a["status"] == "VALIDATED"}
    for item, headers in zip(events.deliveries[request_id], events.delivery_headers[request_id], strict=True):
        validate_item(item)
        assert headers["ce_id"] == f"{request_id}:delivery:{item['id']}".encode()
        assert headers["ce_type"] == b"tasking.delivery.v1"
        props = item["properties"]
        assert props["tasking:provider"] == "oneatlas"
        product = stored[item["id"]]  # a product the provider delivered for this very order
        assert product["acquisitionId"].startswith(flavour.acquisition_prefix)
        # The join: the product names the acquisition it was made from, which the worker announced.
        assert props["tasking:acquisition_ids"] == [product["acquisitionId"]]
        assert product["acquisitionId"] in announced
        data = item["assets"]["data"]
        assert data["href"].endswith(f"/api/v1/items/{item['id']}/download")
        assert data["title"] == product["fileName"]
        if flavour is NEO:
            assert flavour.source_prefix in product["fileName"], "PNEO: the ACQ_ id is in the zip name"


async def completed_after_deliveries(events: Collector, request_id: str) -> dict[str, Any]:
    completed = await events.wait_status(request_id, "COMPLETED", timeout=5)
    last_delivery = max(ce_time(h) for h in events.delivery_headers[request_id])
    assert last_delivery <= datetime.fromisoformat(completed["occurredAt"].replace("Z", "+00:00"))
    return completed


@FLAVOURS
async def test_oneatlas_products_are_published_as_stac_items_then_completed(
    broker: EmbeddedBroker, unique_topics: TopicSettings, flavour: Flavour
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = oneatlas_sim(stack, acquisitions=2)
        rid = f"oa-deliv-{flavour.name}"
        request = flavour.request(rid, stack)
        async with running_worker(stack):
            await stack.publish(request)
            completed = await events.wait_status(rid, "COMPLETED", timeout=90)
        assert completed["reason"] is None
        assert len(validated(sim, request)) == 2
        check_oneatlas_items(events, rid, sim, request, flavour)
        assert len(events.delivered_items(rid)) == 2, "one product per validated acquisition"
        joined = sorted(a for i in events.deliveries[rid] for a in i["properties"]["tasking:acquisition_ids"])
        assert joined == validated(sim, request)
        assert completed["progress"]["deliveries"] == 2
        await completed_after_deliveries(events, rid)
        assert events.event_problems() == []


@FLAVOURS
async def test_a_oneatlas_delivery_after_the_provider_finished_holds_completed_back(
    broker: EmbeddedBroker, unique_topics: TopicSettings, flavour: Flavour
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = oneatlas_sim(stack)
        late = flavour.request(f"oa-late-{flavour.name}", stack)
        other = flavour.request(f"oa-other-{flavour.name}", stack)
        # The other order runs its whole course while this one waits: a longer delivery timeout.
        async with running_worker(stack, TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS="20"):
            await stack.publish(late)
            await wait_until(lambda: ordered(sim, late), 30, "the order is placed")
            sim.plan_delivery(late.reference, withhold_all=True)  # stored, not yet in the catalogue
            await wait_until(lambda: provider_done(sim, late), 60, "the provider completes the order")
            await events.wait_status(late.request_id, "IN_PROGRESS", timeout=30)
            # Another order of the same workspace is delivered meanwhile: the harvest moves on.
            await stack.publish(other)
            await events.wait_status(other.request_id, "COMPLETED", timeout=60)
            await asyncio.sleep(2)  # four harvest cycles: COMPLETED must still wait
            assert "COMPLETED" not in events.statuses(late.request_id)
            assert events.deliveries[late.request_id] == []
            sim.plan_delivery(late.reference, release=True)
            completed = await events.wait_status(late.request_id, "COMPLETED", timeout=30)
        assert completed["reason"] is None
        for request in (late, other):
            check_oneatlas_items(events, request.request_id, sim, request, flavour)
            assert len(events.delivered_items(request.request_id)) == 1
            await completed_after_deliveries(events, request.request_id)
        assert events.event_problems() == []


@FLAVOURS
async def test_a_oneatlas_delivery_that_never_comes_ends_in_delivery_incomplete(
    broker: EmbeddedBroker, unique_topics: TopicSettings, flavour: Flavour
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = oneatlas_sim(stack, acquisitions=2, delivery_delay=30 * DAY)
        rid = f"oa-never-{flavour.name}"
        request = flavour.request(rid, stack)
        async with running_worker(stack, TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS="4"):
            await stack.publish(request)
            await wait_until(lambda: provider_done(sim, request), 60, "the provider completes the order")
            first, second = validated(sim, request)
            sim.plan_delivery(request.reference, delay=0, withhold=[second])  # a partial delivery
            completed = await events.wait_status(rid, "COMPLETED", timeout=60)
        assert completed["reason"]["code"] == "DELIVERY_INCOMPLETE"
        details = completed["reason"]["details"]
        assert details["delivered"] == 1
        assert details["missingAcquisitionIds"] == [second]
        assert details["providerStatus"] == flavour.finished_status
        check_oneatlas_items(events, rid, sim, request, flavour)
        (item,) = events.deliveries[rid]
        assert item["properties"]["tasking:acquisition_ids"] == [first]
        assert events.event_problems() == []


@FLAVOURS
async def test_a_restart_during_oneatlas_delivery_neither_misses_nor_duplicates_an_item(
    broker: EmbeddedBroker, unique_topics: TopicSettings, flavour: Flavour
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sim = oneatlas_sim(stack, acquisitions=2, delivery_delay=HOUR, interval=4 * HOUR)
        rid = f"oa-restart-{flavour.name}"
        request = flavour.request(rid, stack)
        async with running_worker(stack):
            await stack.publish(request)
            await wait_until(lambda: len(events.delivered_items(rid)) == 1, 60, "the first delivery")

        # The worker is down while the second product arrives and the order is completed.
        await wait_until(
            lambda: provider_done(sim, request) and len(sim.delivered(request.reference)) == 2,
            60,
            "the provider completes and delivers the order while no worker runs",
        )
        assert len(events.delivered_items(rid)) == 1
        async with running_worker(stack):
            completed = await events.wait_status(rid, "COMPLETED", timeout=60)
        assert completed["reason"] is None
        assert sorted(events.delivered_items(rid)) == sorted(
            p["id"] for p in sim.delivered(request.reference)
        )
        check_oneatlas_items(events, rid, sim, request, flavour)
        await completed_after_deliveries(events, rid)
        assert events.event_problems() == [], "a re-published item keeps its ce_id and its bytes"


@FLAVOURS
async def test_a_rebalance_during_oneatlas_delivery_neither_misses_nor_duplicates_an_item(
    broker: EmbeddedBroker, unique_topics: TopicSettings, flavour: Flavour
) -> None:
    async with reliability_stack(broker, unique_topics, partitions=4) as (stack, events):
        sim = oneatlas_sim(stack, acquisitions=2, delivery_delay=HOUR, interval=4 * HOUR)
        requests = [flavour.request(f"oa-rebal-{flavour.name}-{n}", stack) for n in range(4)]
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
            stored = sorted(p["id"] for p in sim.delivered(r.reference))
            assert len(stored) == 2, r.request_id
            assert sorted(events.delivered_items(r.request_id)) == stored, r.request_id
            assert events.latest(r.request_id)["reason"] is None  # type: ignore[index]
            check_oneatlas_items(events, r.request_id, sim, r, flavour)
        assert events.event_problems() == []
