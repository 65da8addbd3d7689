"""Provider choice end to end (``provider: "auto"``): real embedded broker, both simulators as HTTP
servers, the worker in process. Offers are collected from both providers at once, the preferred
one is ordered (or a human chooses), a refusal falls back, and exactly one order is ever paid
across both providers."""

from __future__ import annotations

from typing import Any

import pytest
from cli_support import cli_env, invoke
from harness import PANAMA, TOULOUSE, UP42_PHR_PRODUCT, Stack, running_worker, stack_for, window

from worker.config import TopicSettings
from worker.events.models import Command, OrderRequest
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault

pytestmark = pytest.mark.integration

FAST = 86_400.0 * 2  # two simulated days per real second
ONEATLAS = {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"}}
ONEATLAS_ONEDAY = {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEDAY"}}
# About 125 km²: within every OneAtlas product's area range (ONEDAY needs 25 km² at least).
TOULOUSE_WIDE = [[1.36, 43.57], [1.5, 43.57], [1.5, 43.67], [1.36, 43.67], [1.36, 43.57]]
UP42 = {"provider": "up42", "product": {"dataProductId": UP42_PHR_PRODUCT}}
# One UP42 credit is worth 1000 EUR here: the simulated UP42 estimate (10 credits/km², at least 100)
# is then far above the simulated OneAtlas price; with 0.0001 it is far below.
UP42_DEAR = '{"CREDITS": 1000.0}'
UP42_CHEAP = '{"CREDITS": 0.0001}'


def auto_request(
    request_id: str, *candidates: dict[str, Any], aoi: Any = TOULOUSE, **extra: Any
) -> OrderRequest:
    body: dict[str, Any] = {
        "requestId": request_id,
        "provider": "auto",
        "candidates": list(candidates or (ONEATLAS, UP42)),
        "aoi": {"type": "Polygon", "coordinates": [aoi]},
        "window": window(),
        "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
        **extra,
    }
    return OrderRequest.model_validate(body)


def select(request_id: str, option_id: str) -> Command:
    return Command.model_validate(
        {
            "requestId": request_id,
            "commandId": f"{request_id}-pick",
            "command": "select-offer",
            "optionId": option_id,
        }
    )


def paid(stack: Stack, request_id: str) -> dict[str, int]:
    return {
        "oneatlas": stack.sims.oneatlas.paid_order_count(request_id),
        "up42": stack.sims.up42.paid_order_count(request_id),
    }


def offer_ids(event: dict[str, Any]) -> list[tuple[str, str]]:
    return [(o["id"], o["status"]) for o in event["offers"]]


async def test_cheapest_wins_and_the_other_offer_stays_visible(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_CHEAP),
    ):
        await stack.publish(auto_request("auto-cheap-up42"))
        quoted = await events.wait_status("auto-cheap-up42", "QUOTED", timeout=40)
        assert quoted["provider"] == "auto"
        assert offer_ids(quoted) == [("up42-2", "OFFERED"), ("oneatlas-1", "OFFERED")]
        up42_offer, oneatlas_offer = quoted["offers"]
        assert up42_offer["price"]["currency"] == "CREDITS"
        assert oneatlas_offer["price"]["currency"] == "EUR"
        assert up42_offer["comparablePrice"]["amount"] < oneatlas_offer["comparablePrice"]["amount"]
        assert oneatlas_offer["feasibility"]["automation"] == "AUTOMATIC"
        pending = await events.wait_status("auto-cheap-up42", "FEASIBILITY_PENDING", timeout=40)
        assert pending["provider"] == "up42"
        assert pending["providerRefs"]["orderId"]
        assert paid(stack, "auto-cheap-up42") == {"oneatlas": 0, "up42": 1}


async def test_cheapest_and_dry_run_with_the_rates_of_the_deployment(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_DEAR) as worker,
    ):
        await stack.publish(auto_request("auto-cheap-oa"), auto_request("auto-dry", dryRun=True))
        ordered = await events.wait_status("auto-cheap-oa", "ORDERED", timeout=40)
        assert ordered["provider"] == "oneatlas"
        assert ordered["providerRefs"]["salesOrderId"]
        assert offer_ids(ordered) == [("oneatlas-1", "OFFERED"), ("up42-2", "OFFERED")]
        assert events.statuses("auto-cheap-oa")[:3] == ["RECEIVED", "QUOTED", "ORDERED"]
        dry = await events.wait_status("auto-dry", "QUOTED", timeout=40)
        assert len(dry["offers"]) == 2
        assert paid(stack, "auto-cheap-oa") == {"oneatlas": 1, "up42": 0}
        assert paid(stack, "auto-dry") == {"oneatlas": 0, "up42": 0}
        assert events.statuses("auto-dry") == ["RECEIVED", "QUOTED"]
        metrics = worker.worker.metrics.render().decode()
        assert (
            'tasking_routing_choices_total{by="worker",prefer="cheapest",provider="oneatlas"} 1.0' in metrics
        )


async def test_earliest_prefers_a_stated_opportunity_to_a_lower_price(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    # A slow simulated clock: a ONEDAY attempt's order deadline must not pass before placement.
    async with (
        stack_for(broker, unique_topics, speed=60.0) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_CHEAP) as worker,
    ):
        request = auto_request(
            "auto-earliest", ONEATLAS_ONEDAY, UP42, aoi=TOULOUSE_WIDE, routing={"prefer": "earliest"}
        )
        await stack.publish(request)
        ordered = await events.wait_status("auto-earliest", "ORDERED", timeout=40)
        first, second = ordered["offers"]
        assert (first["id"], second["id"]) == ("oneatlas-1", "up42-2")
        assert first["firstOpportunity"] is not None
        assert second["firstOpportunity"] is None
        assert first["comparablePrice"]["amount"] > second["comparablePrice"]["amount"]
        assert paid(stack, "auto-earliest") == {"oneatlas": 1, "up42": 0}
        metrics = worker.worker.metrics.render().decode()
        assert (
            'tasking_routing_choices_total{by="worker",prefer="earliest",provider="oneatlas"} 1.0' in metrics
        )


async def test_an_infeasible_candidate_drops_out_and_a_human_chooses_by_command(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_DEAR),
    ):
        stack.sims.oneatlas.add_no_capacity_aoi({"type": "Polygon", "coordinates": [PANAMA]})
        await stack.publish(
            auto_request("auto-infeasible", aoi=PANAMA),
            auto_request("auto-human", autoApprove=False),
        )
        pending = await events.wait_status("auto-infeasible", "FEASIBILITY_PENDING", timeout=40)
        assert offer_ids(pending) == [("up42-2", "OFFERED"), ("oneatlas-1", "DROPPED")]
        assert pending["offers"][1]["reason"]["code"] == "NOT_FEASIBLE"
        waiting = await events.wait_status("auto-human", "DECISION_REQUIRED", timeout=40)
        assert waiting["decision"]["kind"] == "select-offer"
        assert [o["id"] for o in waiting["decision"]["options"]] == ["oneatlas-1", "up42-2"]
        await stack.publish(select("auto-human", "up42-2"))  # not the cheapest: the human decides
        chosen = await events.wait_status("auto-human", "FEASIBILITY_PENDING", timeout=40)
        assert chosen["provider"] == "up42"
        assert chosen["reason"]["code"] == "OFFER_SELECTED"
        assert paid(stack, "auto-human") == {"oneatlas": 0, "up42": 1}
        assert paid(stack, "auto-infeasible") == {"oneatlas": 0, "up42": 1}


async def test_one_provider_down_the_other_is_ordered(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_CHEAP) as worker,
    ):
        runner = worker.worker.runner
        runner.settings = runner.settings.model_copy(
            update={"retry_base_seconds": 0.1, "max_step_retries": 1}
        )
        stack.sims.up42.inject(Fault("status", path=r"/v2/.*", status=503, times=None))
        await stack.publish(auto_request("auto-down"))
        ordered = await events.wait_status("auto-down", "ORDERED", timeout=60)
        assert ordered["provider"] == "oneatlas"
        assert offer_ids(ordered) == [("oneatlas-1", "OFFERED"), ("up42-2", "DROPPED")]
        assert ordered["offers"][1]["reason"]["code"] == "RETRIES_EXHAUSTED"
        assert paid(stack, "auto-down") == {"oneatlas": 1, "up42": 0}


async def test_a_provider_without_credentials_drops_out_and_the_other_is_ordered(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_CHEAP, TASKING_UP42__USERNAME=""),
    ):
        await stack.publish(auto_request("auto-unconfigured"))
        ordered = await events.wait_status("auto-unconfigured", "ORDERED", timeout=40)
        assert offer_ids(ordered) == [("oneatlas-1", "OFFERED"), ("up42-2", "DROPPED")]
        assert ordered["offers"][1]["reason"]["code"] == "PROVIDER_NOT_CONFIGURED"
        assert paid(stack, "auto-unconfigured") == {"oneatlas": 1, "up42": 0}


async def test_a_refused_placement_falls_back_to_the_next_offer_once(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_CHEAP) as worker,
    ):
        refusal = {"status": 400, "title": "Bad Request", "detail": "The data product is not available"}
        stack.sims.up42.inject(Fault("status", path="/v2/orders", method="POST", status=400, body=refusal))
        await stack.publish(auto_request("auto-fallback"))
        ordered = await events.wait_status("auto-fallback", "ORDERED", timeout=60)
        assert ordered["provider"] == "oneatlas"
        said = next(
            e
            for e in events.unique("auto-fallback")
            if (e.get("reason") or {}).get("code") == "PROVIDER_REJECTED"
        )
        assert said["status"] == "QUOTED"
        assert said["reason"]["details"]["offer"] == "up42-2"
        assert [o["id"] for o in said["reason"]["details"]["offers"]] == ["up42-2", "oneatlas-1"]
        assert offer_ids(ordered) == [("up42-2", "DROPPED"), ("oneatlas-1", "OFFERED")]
        assert paid(stack, "auto-fallback") == {"oneatlas": 1, "up42": 0}
        metrics = worker.worker.metrics.render().decode()
        assert (
            'tasking_routing_choices_total{by="fallback",prefer="cheapest",provider="oneatlas"} 1.0'
            in metrics
        )


async def test_status_command_lists_the_offers(broker: EmbeddedBroker, unique_topics: TopicSettings) -> None:
    """``tasking-worker status`` on a real provider-choice order: one line per offer."""
    async with (
        stack_for(broker, unique_topics, speed=FAST) as (stack, events),
        running_worker(stack, TASKING_ROUTING__RATES=UP42_CHEAP),
    ):
        await stack.publish(auto_request("auto-status", dryRun=True))
        await events.wait_status("auto-status", "QUOTED", timeout=40)
        shown = await invoke(["status", "auto-status"], cli_env(broker, unique_topics))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "offers (preferred first):" in shown.stdout
    up42_line = next(line for line in lines if line.strip().startswith("up42-2"))
    oneatlas_line = next(line for line in lines if line.strip().startswith("oneatlas-1"))
    assert lines.index(up42_line) < lines.index(oneatlas_line)
    assert "OFFERED" in up42_line
    assert "CREDITS (~" in up42_line
    assert "EUR" in oneatlas_line
