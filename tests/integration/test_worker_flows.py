"""The worker end to end: real embedded broker, both simulators as HTTP servers, the worker in
process configured only through TASKING_* variables. Each flow reaches its expected status sequence.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from harness import oneatlas_request, running_worker, stack_for, start_worker, up42_request

from worker.config import TopicSettings
from worker.domain.model import OutboxStatus
from worker.events.models import Command, OrderRequest
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

FAST = 86_400.0 * 2  # two simulated days per real second


def command(request_id: str, name: str, command_id: str, **extra: Any) -> Command:
    return Command.model_validate(
        {"requestId": request_id, "commandId": command_id, "command": name, "issuedBy": "tester", **extra}
    )


def assert_contiguous(events: list[dict[str, Any]]) -> None:
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    for before, after in itertools.pairwise(events):
        assert after["previousStatus"] == before["status"]


async def test_oneatlas_oneplan_orders_once_and_completes(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=FAST) as (stack, events), running_worker(stack):
        request = oneatlas_request(
            "oa-oneplan-1",
            acquisitionPolicy={"autoAccept": {"maxCloudCover": 100, "maxIncidenceAngle": 90}},
        )
        await stack.publish(request)
        ordered = await events.wait_status("oa-oneplan-1", "ORDERED", timeout=40)
        assert ordered["providerRefs"]["salesOrderId"]
        await events.wait_status("oa-oneplan-1", "COMPLETED", timeout=60)
        statuses = events.statuses("oa-oneplan-1")
        assert statuses[:4] == ["RECEIVED", "FEASIBLE", "QUOTED", "ORDERED"]
        assert statuses[-1] == "COMPLETED"
        assert_contiguous(events.unique("oa-oneplan-1"))
        assert stack.sims.oneatlas.paid_order_count("oa-oneplan-1") == 1


async def test_dry_run_duplicate_and_invalid_requests(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events), running_worker(stack) as worker:
        dry = oneatlas_request("oa-dry", dryRun=True)
        await stack.publish(dry, dry)  # the second is a duplicate
        bad = b'{"requestId": "bad-1", "provider": "oneatlas", "aoi": 1}'
        await stack.publish(raw=[(unique_topics.requests, b"bad-1", bad)])
        quoted = await events.wait_status("oa-dry", "QUOTED", timeout=40)
        assert quoted["price"]["amount"] > 0
        rejected = await events.wait_status("bad-1", "REJECTED", timeout=20)
        assert rejected["reason"]["code"] == "INVALID_REQUEST"
        await events.wait_for(lambda: len(events.dead_letters) == 1, 20)
        assert events.dead_letters[0]["error"]["code"] == "SCHEMA_VIOLATION"
        assert stack.sims.oneatlas.paid_order_count("oa-dry") == 0
        assert events.statuses("oa-dry") == ["RECEIVED", "FEASIBLE", "QUOTED"]
        metrics = worker.worker.metrics.render().decode()
        assert 'outcome="duplicate"' in metrics


async def test_over_budget_waits_for_approval_then_orders(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events), running_worker(stack):
        cheap = {"maxAmount": 1, "currency": "EUR"}
        await stack.publish(
            oneatlas_request("oa-budget-a", budget=cheap), oneatlas_request("oa-budget-r", budget=cheap)
        )
        for rid in ("oa-budget-a", "oa-budget-r"):
            waiting = await events.wait_status(rid, "DECISION_REQUIRED", timeout=40)
            assert waiting["decision"]["kind"] == "approve-price"
            assert waiting["reason"]["code"] == "OVER_BUDGET"
        await stack.publish(
            command("oa-budget-a", "approve", "c1"),
            command("oa-budget-a", "approve", "c1"),  # same commandId: once
            command("oa-budget-r", "reject", "c2", reason="too expensive"),
        )
        await events.wait_status("oa-budget-a", "ORDERED", timeout=40)
        declined = await events.wait_status("oa-budget-r", "REJECTED", timeout=40)
        assert declined["reason"]["code"] == "DECLINED"
        assert stack.sims.oneatlas.paid_order_count("oa-budget-a") == 1
        assert stack.sims.oneatlas.paid_order_count("oa-budget-r") == 0
        await stack.publish(command("oa-budget-r", "approve", "c3"))
        await events.wait_for(lambda: events.latest("oa-budget-r")["sequence"] > declined["sequence"], 20)
        answer = events.latest("oa-budget-r")
        assert answer["status"] == "REJECTED"
        assert answer["reason"]["code"] == "COMMAND_REJECTED"


async def test_pleiades_neo_quotation_is_accepted_within_budget(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=FAST) as (stack, events), running_worker(stack):
        await stack.publish(
            oneatlas_request(
                "pneo-1", mission="PLEIADESNEO", budget={"maxAmount": 1_000_000, "currency": "EUR"}
            )
        )
        ordered = await events.wait_status("pneo-1", "ORDERED", timeout=60)
        assert ordered["providerRefs"]["quotationId"]
        assert stack.sims.oneatlas.paid_order_count("pneo-1") == 1


async def test_up42_manual_study_option_then_quotation(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=FAST) as (stack, events), running_worker(stack):
        # A cloud limit of 10 % or less makes the simulator's study MANUAL, with options.
        await stack.publish(
            up42_request("up-manual", constraints={"maxCloudCover": 10, "maxIncidenceAngle": 20})
        )
        waiting = await events.wait_status("up-manual", "DECISION_REQUIRED", timeout=60)
        assert waiting["decision"]["kind"] == "select-feasibility-option"
        options = waiting["decision"]["options"]
        assert len(options) >= 2
        await stack.publish(command("up-manual", "select-feasibility-option", "o1", optionId="not-an-option"))
        await events.wait_for(
            lambda: (
                events.latest("up-manual")["reason"] is not None
                and events.latest("up-manual")["reason"]["code"] == "COMMAND_REJECTED"
            ),
            20,
        )
        await stack.publish(
            command("up-manual", "select-feasibility-option", "o2", optionId=options[1]["id"])
        )
        ordered = await events.wait_status("up-manual", "ORDERED", timeout=60)
        assert ordered["providerRefs"]["orderId"]
        assert stack.sims.up42.paid_order_count("up-manual") == 1


async def test_up42_auto_study_completes_with_deliveries(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=FAST * 4) as (stack, events), running_worker(stack):
        await stack.publish(up42_request("up-auto"))
        await events.wait_status("up-auto", "COMPLETED", timeout=90)
        statuses = events.statuses("up-auto")
        assert "ORDERED" in statuses
        assert statuses[0] == "RECEIVED"
        assert_contiguous(events.unique("up-auto"))
        # The last listing follows the final snapshot: wait for the deliveries to be published.
        await events.wait_for(lambda: len(events.acquisitions["up-auto"]) >= 1, 20)
        assert all(a["status"] == "DELIVERED" for a in events.acquisitions["up-auto"])


async def test_cancel_before_placement_and_window_expiry(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events), running_worker(stack):
        now = datetime.now(UTC)
        short = {"start": now.isoformat(), "end": (now + timedelta(seconds=6)).isoformat()}
        await stack.publish(
            oneatlas_request("oa-cancel", autoApprove=False),
            OrderRequest.model_validate(
                {**oneatlas_request("oa-expire", autoApprove=False).to_json_dict(), "window": short}
            ),
        )
        await events.wait_status("oa-cancel", "DECISION_REQUIRED", timeout=40)
        await stack.publish(command("oa-cancel", "cancel", "x1", reason="no longer needed"))
        cancelled = await events.wait_status("oa-cancel", "CANCELLED", timeout=30)
        assert cancelled["stapiStatus"] == "user_cancelled"
        expired = await events.wait_status("oa-expire", "EXPIRED", timeout=40)
        assert expired["reason"]["code"] == "WINDOW_EXPIRED"
        assert stack.sims.oneatlas.paid_order_count("oa-cancel") == 0


# The attempts example's AOI (about 130 km²): ONEDAY/ONENOW need 25 km² (PHR) / 100 km² (SPOT).
TOULOUSE_WIDE = {
    "type": "Polygon",
    "coordinates": [
        [
            [1.37638, 43.54531],
            [1.50959, 43.54531],
            [1.50959, 43.65620],
            [1.37638, 43.65620],
            [1.37638, 43.54531],
        ]
    ],
}


@pytest.mark.parametrize(
    ("mission", "prog", "extra", "expected"),
    [
        ("SPOT", "ONEDAY", {"aoi": TOULOUSE_WIDE}, ["RECEIVED", "FEASIBLE", "QUOTED", "ORDERED"]),
        ("PLEIADES", "ONENOW", {"aoi": TOULOUSE_WIDE}, ["RECEIVED", "FEASIBLE", "QUOTED", "ORDERED"]),
        ("PLEIADES", "ONESERIES", {}, ["RECEIVED", "FEASIBLE", "QUOTED", "ORDERED"]),
        (
            "PLEIADES",
            "ONEPLAN",
            {"constraints": {"acquisitionMode": "STEREO", "minBH": 0.3, "maxBH": 0.6}},
            ["RECEIVED", "FEASIBLE", "FEASIBILITY_PENDING", "ORDERED"],
        ),
    ],
    ids=["spot-oneday", "phr-onenow", "phr-oneseries", "phr-stereo-manual"],
)
async def test_oneatlas_programming_types_reach_ordered(
    broker: EmbeddedBroker,
    unique_topics: TopicSettings,
    mission: str,
    prog: str,
    extra: dict[str, Any],
    expected: list[str],
) -> None:
    async with stack_for(broker, unique_topics, speed=60.0) as (stack, events), running_worker(stack):
        rid = f"oa-{mission.lower()}-{prog.lower()}"
        await stack.publish(oneatlas_request(rid, mission=mission, prog=prog, **extra))
        if "FEASIBILITY_PENDING" in expected:
            await events.wait_status(rid, "FEASIBILITY_PENDING", timeout=40)
            stack.sims.oneatlas.finish_study(rid)
        await events.wait_status(rid, "ORDERED", timeout=40)
        assert events.statuses(rid)[: len(expected)] == expected
        assert stack.sims.oneatlas.paid_order_count(rid) == 1
        if prog in ("ONEDAY", "ONENOW"):
            feasibility = events.latest(rid)["feasibility"]
            assert any(a["chosen"] for a in feasibility["attempts"])


async def test_pleiades_neo_tracks_coverage_items_to_completion(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=FAST) as (stack, events):
        stack.sims.oneatlas.min_clear_sky = 95.0  # every acquisition clear enough to validate
        async with running_worker(stack):
            await stack.publish(
                oneatlas_request(
                    "pneo-done",
                    mission="PLEIADESNEO",
                    acquisitionPolicy={"autoAccept": {"maxCloudCover": 100}},
                )
            )
            await events.wait_status("pneo-done", "COMPLETED", timeout=90)
            assert_contiguous(events.unique("pneo-done"))
            await events.wait_for(lambda: len(events.acquisitions["pneo-done"]) >= 1, 20)
            assert stack.sims.oneatlas.paid_order_count("pneo-done") == 1
            final = events.latest("pneo-done")
            assert final["providerRefs"]["quotationId"]


async def test_worker_creates_missing_topics_co_partitioned(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from harness import Collector, Stack

    from worker.simulators.server import start_simulators

    sims = await start_simulators()
    stack = Stack(broker, sims, unique_topics, group_id="g-create")
    await broker.create_topics([unique_topics.requests], partitions=4)  # "already exists" is fine
    worker = await start_worker(stack, TASKING_KAFKA__CREATE_TOPICS="true", TASKING_KAFKA__PARTITIONS="4")
    events = Collector(broker.bootstrap_servers, unique_topics)
    try:
        await events.start()
        await stack.publish(oneatlas_request("created-1", dryRun=True))
        await events.wait_status("created-1", "QUOTED", timeout=40)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_topics(unique_topics.all())
        finally:
            await admin.close()
        assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(unique_topics.all(), 4)
    finally:
        await worker.shutdown()
        await events.stop()
        await sims.stop()


@pytest.mark.parametrize("failing", ["FEASIBLE", "ORDERED"])
async def test_a_failed_event_publish_neither_stops_the_order_nor_loses_or_reorders_events(
    broker: EmbeddedBroker, unique_topics: TopicSettings, failing: str
) -> None:
    """One event's publish fails once. FEASIBLE: the price call still starts (the state is
    durable) and FEASIBLE goes out later, in order, ahead of QUOTED. ORDERED: no step follows
    (no tracking poll for an hour), so only the publish retry can deliver it."""
    request_id = f"oa-flaky-{failing.lower()}"
    quiet = {"TASKING_TRACKING__POLL_INTERVAL_SECONDS": "3600"}
    async with (
        stack_for(broker, unique_topics) as (stack, events),
        running_worker(stack, **quiet) as worker,
    ):
        publisher = worker.worker.runner.publisher
        original = publisher.outbox
        failed: list[str] = []

        async def flaky(items: list[Any]) -> None:
            statuses = [i.event.status.value for i in items if isinstance(i, OutboxStatus)]
            if not failed and failing in statuses:
                failed.append(failing)
                raise KafkaConnectionError("the broker went away")
            await original(items)

        publisher.outbox = flaky  # type: ignore[method-assign]
        await stack.publish(oneatlas_request(request_id))
        await events.wait_status(request_id, "ORDERED", timeout=40)
        assert failed == [failing]
        assert events.statuses(request_id)[:4] == ["RECEIVED", "FEASIBLE", "QUOTED", "ORDERED"]
        assert_contiguous(events.unique(request_id))
        assert stack.sims.oneatlas.paid_order_count(request_id) == 1
