"""Tracking and acquisitions through the running worker: acquisition events only on change,
decisions by policy and by command sent exactly once, decision expiry, cancellation allowed and
refused, a restart in the middle of tracking, and the polling load bounded by pages.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import (
    oneatlas_request,
    running_worker,
    spawn_worker,
    stack_for,
    up42_request,
)
from test_worker_flows import command

from worker.config import TopicSettings
from worker.domain.model import OrderState, Phase
from worker.domain.ports import PolledOrder
from worker.errors import OwnershipLost
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.kafka.broker import EmbeddedBroker
from worker.providers.oneatlas import OneAtlasProvider
from worker.runtime.timers import Poller

pytestmark = pytest.mark.integration

HOURLY = 3600.0  # one simulated hour per real second: no autopilot acquisition during a test
POLICY = {"autoAccept": {"maxCloudCover": 10, "maxIncidenceAngle": 40}, "autoRefuse": False}


def segment_calls(sim: Any, action: str) -> int:
    return sim.core.count("POST", rf".*/segments/[^/]+/{action}")


def acquisition_history(events: Any, request_id: str, acquisition_id: str) -> list[tuple[str, str]]:
    return [
        (e["status"], e["decidedBy"])
        for e in events.acquisitions[request_id]
        if e["acquisitionId"] == acquisition_id
    ]


async def test_policy_and_command_decisions_are_sent_once(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=HOURLY) as (stack, events), running_worker(stack):
        await stack.publish(oneatlas_request("trk-1", acquisitionPolicy=POLICY))
        await events.wait_status("trk-1", "ORDERED", timeout=40)
        sim = stack.sims.oneatlas
        clear = sim.propose_acquisition("trk-1", cloud_cover=5)
        cloudy = sim.propose_acquisition("trk-1", cloud_cover=60)
        await events.wait_for(
            lambda: ("ACCEPTED", "policy") in acquisition_history(events, "trk-1", clear), 30
        )
        await events.wait_for(
            lambda: ("PROPOSED", "provider") in acquisition_history(events, "trk-1", cloudy), 30
        )
        await asyncio.sleep(2)  # several poll cycles: nothing more may be published
        assert acquisition_history(events, "trk-1", cloudy) == [("PROPOSED", "provider")]
        await stack.publish(
            command("trk-1", "refuse-acquisition", "r1", acquisitionId=cloudy),
            command("trk-1", "refuse-acquisition", "r1", acquisitionId=cloudy),
        )
        await events.wait_for(
            lambda: ("REFUSED", "command") in acquisition_history(events, "trk-1", cloudy), 30
        )
        await asyncio.sleep(2)
        # Our acceptance, then the provider validating it (the decision taking effect): each once.
        assert acquisition_history(events, "trk-1", clear) == [
            ("PROPOSED", "provider"),
            ("ACCEPTED", "policy"),
            ("VALIDATED", "policy"),
        ]
        assert acquisition_history(events, "trk-1", cloudy) == [
            ("PROPOSED", "provider"),
            ("REFUSED", "command"),
        ]
        assert segment_calls(sim, "accept") == 1
        assert segment_calls(sim, "refuse") == 1
        progress = events.latest("trk-1")["progress"]["acquisitions"]
        assert progress["refused"] == 1
        assert progress["validated"] >= 1
        for headers, event in zip(events.headers["trk-1"], events.status["trk-1"], strict=True):
            assert headers["ce_id"] == f"trk-1:{event['sequence']}".encode()


async def test_decision_expires_and_cancel_allowed_and_refused(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=1.0) as (stack, events):
        stack.sims.oneatlas.quotation_validity = 4.0
        async with running_worker(stack):
            budget = {"maxAmount": 100_000, "currency": "EUR"}
            await stack.publish(
                oneatlas_request("pneo-exp", mission="PLEIADESNEO", budget=budget),
                oneatlas_request("oa-cancel-ok"),
                up42_request("up-cancel-no"),
            )
            await events.wait_for(
                lambda: (
                    (
                        events.latest("pneo-exp") is not None
                        and events.latest("pneo-exp")["providerRefs"].get("quotationId") is not None
                    )
                    or stack.sims.oneatlas.core.count("POST", "/api/v1/orders") >= 1
                ),
                40,
            )
            await asyncio.sleep(1)
            stack.sims.oneatlas.send_quotation("pneo-exp", amount=250_000)  # above the budget
            waiting = await events.wait_status("pneo-exp", "DECISION_REQUIRED", timeout=30)
            assert waiting["decision"]["deadline"] is not None
            expired = await events.wait_status("pneo-exp", "EXPIRED", timeout=30)
            assert expired["reason"]["code"] == "DECISION_EXPIRED"

            await events.wait_status("oa-cancel-ok", "ORDERED", timeout=40)
            await stack.publish(command("oa-cancel-ok", "cancel", "k1", reason="plans changed"))
            cancelled = await events.wait_status("oa-cancel-ok", "CANCELLED", timeout=30)
            assert cancelled["stapiStatus"] == "user_cancelled"
            assert stack.sims.oneatlas.core.count("POST", r".*/taskings/[^/]+/cancel") == 1


async def test_up42_cancel_after_activation_is_refused_with_the_reason(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics, speed=86_400.0) as (stack, events), running_worker(stack):
        await stack.publish(up42_request("up-cancel-no"))
        await events.wait_status("up-cancel-no", "ORDERED", timeout=60)
        before = events.latest("up-cancel-no")["sequence"]
        await stack.publish(command("up-cancel-no", "cancel", "k2"))
        await events.wait_for(
            lambda: any(
                e["reason"] and e["reason"]["code"] == "COMMAND_REJECTED"
                for e in events.unique("up-cancel-no")[before:]
            ),
            30,
        )
        answer = next(
            e
            for e in events.unique("up-cancel-no")[before:]
            if e["reason"] and e["reason"]["code"] == "COMMAND_REJECTED"
        )
        assert "CREATED" in answer["reason"]["message"]
        assert "CANCELLED" not in events.statuses("up-cancel-no")


async def test_restart_in_tracking_sends_no_decision_twice(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    async with stack_for(broker, unique_topics, speed=HOURLY) as (stack, events):
        first = spawn_worker(stack, tmp_path / "w1.log")
        try:
            await stack.publish(oneatlas_request("trk-r", acquisitionPolicy=POLICY))
            await events.wait_status("trk-r", "ORDERED", timeout=60)
            sim = stack.sims.oneatlas
            clear = sim.propose_acquisition("trk-r", cloud_cover=3)
            await events.wait_for(
                lambda: ("VALIDATED", "policy") in acquisition_history(events, "trk-r", clear), 30
            )
            cloudy = sim.propose_acquisition("trk-r", cloud_cover=70)
            await events.wait_for(
                lambda: ("PROPOSED", "provider") in acquisition_history(events, "trk-r", cloudy), 30
            )
        finally:
            first.kill()
        second = spawn_worker(stack, tmp_path / "w2.log")
        try:
            await stack.publish(command("trk-r", "accept-acquisition", "a1", acquisitionId=cloudy))
            await events.wait_for(
                lambda: ("VALIDATED", "command") in acquisition_history(events, "trk-r", cloudy), 60
            )
            await asyncio.sleep(2)
            assert segment_calls(sim, "accept") == 2  # one per acquisition, never repeated
            distinct = {
                (e["acquisitionId"], e["status"], e["decidedBy"]) for e in events.acquisitions["trk-r"]
            }
            assert distinct == {
                (clear, "PROPOSED", "provider"),
                (clear, "ACCEPTED", "policy"),
                (clear, "VALIDATED", "policy"),
                (cloudy, "PROPOSED", "provider"),
                (cloudy, "ACCEPTED", "command"),
                (cloudy, "VALIDATED", "command"),
            }
            assert sim.paid_order_count("trk-r") == 1
            assert [e["sequence"] for e in events.unique("trk-r")] == list(
                range(1, len(events.unique("trk-r")) + 1)
            )
        finally:
            assert second.terminate() == 0


async def test_polling_5000_orders_costs_pages_not_orders() -> None:
    import httpx

    from worker.config import HttpClientSettings, OneAtlasSettings
    from worker.simulators.oneatlas import OneAtlasSimulator

    sim = OneAtlasSimulator()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="https://sim")
    settings = OneAtlasSettings(
        api_key="sim-oneatlas-key",
        contract_id=sim.legacy_contract_id,
        neo_contract_id=sim.neo_contract_id,
        workspace_id=sim.workspace_id,
        base_url="https://sim",
        auth_url="https://sim/auth/realms/IDP/protocol/openid-connect/token",
        rate_limit_per_second=100_000,
        max_concurrency=64,
    )
    provider = OneAtlasProvider(settings, HttpClientSettings(), client=client, page_size=500)
    states: list[OrderState] = []
    for i in range(5000):
        request = oneatlas_request(f"load-{i}")
        placed = await provider.place_order(request, _auto_context())
        states.append(
            OrderState(
                request=request,
                received_at=datetime.now(UTC),
                phase=Phase.AWAITING_PROVIDER,
                placed=placed,
                status=OrderStatus.IN_PROGRESS,
            )
        )
    delivered: list[str] = []

    async def dispatch(request_id: str, snapshot: Any, at: datetime) -> None:
        delivered.append(request_id)

    poller = Poller(
        scheduler=None,
        providers={Provider.ONEATLAS: provider},  # type: ignore[arg-type]
        tracked=lambda name: states,
        dispatch=dispatch,
        metrics=_NoMetrics(),
        interval=1.0,
        clock=lambda: datetime.now(UTC),
    )
    before = len(sim.core.calls)
    await poller.run_cycle(Provider.ONEATLAS)
    cycle_calls = len(sim.core.calls) - before
    assert len(delivered) == 5000
    assert cycle_calls <= 5000 // 500 + 2, cycle_calls
    await provider.aclose()


def _auto_context() -> Any:
    from worker.domain.ports import FeasibilityResult, OrderContext
    from worker.events.models import Automation, Classification

    return OrderContext(
        feasibility=FeasibilityResult(
            programming_type="ONEPLAN", automation=Automation.AUTOMATIC, classification=Classification.EASY
        )
    )


class _NoMetrics:
    def scheduler_job(self, job: str, ok: bool) -> None:
        return None

    def poll_succeeded(self, provider: str) -> None:
        return None

    def poll_error(self, provider: str, kind: str) -> None:
        return None

    def set_tracking_errors(self, provider: str, orders: int) -> None:
        return None


async def test_unchanged_snapshots_are_skipped_changed_ones_are_not(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with (
        stack_for(broker, unique_topics, speed=HOURLY) as (stack, events),
        running_worker(stack) as worker,
    ):
        await stack.publish(oneatlas_request("skip-1"))
        await events.wait_status("skip-1", "ORDERED", timeout=40)
        runner = worker.worker.runner
        provider = worker.worker.providers[Provider.ONEATLAS]
        state = runner.store.get("skip-1")
        assert isinstance(state, OrderState)
        assert state.placed is not None
        key = state.placed.tracking_key
        polled = (await provider.poll([key]))[key]
        await events.wait_for(lambda: not runner.snapshot_is_news("skip-1", polled.fingerprint), 20)
        assert runner.snapshot_is_news("skip-1", polled.fingerprint + 1)
        assert runner.snapshot_is_news("unknown-order", polled.fingerprint)
        stack.sims.oneatlas.propose_acquisition("skip-1", cloud_cover=50)  # the provider moves on
        await events.wait_for(lambda: len(events.acquisitions["skip-1"]) == 1, 30)
        assert runner.snapshot_is_news("skip-1", polled.fingerprint)  # the state changed: forgotten
        moved = (await provider.poll([key]))[key]
        assert moved.fingerprint != polled.fingerprint
        assert moved.snapshot.change_marker != polled.snapshot.change_marker


class _Lost:
    """The fence of a member whose partitions went to another member (frozen past its session)."""

    def holds(self, partition: int) -> bool:
        return False

    async def confirm(self, partition: int, fresh: bool = True) -> bool:
        return False


async def test_an_instance_that_lost_ownership_writes_no_seen_mark(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """The seen mark rewrites the order's state in the changelog: an instance that no longer owns
    the partition must not write it (its successor's newer state would be overwritten)."""
    async with (
        stack_for(broker, unique_topics, speed=HOURLY) as (stack, events),
        running_worker(stack) as worker,
    ):
        await stack.publish(oneatlas_request("fenced-1"))
        await events.wait_status("fenced-1", "ORDERED", timeout=40)
        runner = worker.worker.runner
        state = runner.store.get("fenced-1")
        assert isinstance(state, OrderState)
        assert state.placed is not None
        key = state.placed.tracking_key
        polled = (await worker.worker.providers[Provider.ONEATLAS].poll([key]))[key]
        # The owner's poll cycles find that this snapshot changes nothing (and mark it).
        await events.wait_for(lambda: not runner.snapshot_is_news("fenced-1", polled.fingerprint), 20)
        unseen = PolledOrder(polled.fingerprint ^ 0xFFFF, lambda: polled.snapshot)  # same data
        owner = runner.ownership
        runner.ownership = _Lost()
        try:
            with pytest.raises(OwnershipLost):
                await runner.deliver_snapshot("fenced-1", unseen, datetime.now(UTC))
            assert runner.snapshot_is_news("fenced-1", unseen.fingerprint), "no mark, not even in memory"
        finally:
            runner.ownership = owner
        await runner.deliver_snapshot("fenced-1", unseen, datetime.now(UTC))  # the owner marks it
        assert not runner.snapshot_is_news("fenced-1", unseen.fingerprint)
