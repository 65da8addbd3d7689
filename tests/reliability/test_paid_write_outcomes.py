"""The outcome rule of paid writes through real processes: a worker process, the embedded broker
and both simulators with their paid-write fault switches (docs/reliability.md "Outcome of paid
writes").

Each case fails on the code before the rule (the first four ended ``REJECTED`` or ``FAILED``
with an order at the provider, or with two paid orders; the identity cases adopted another
request's order):

* a placement whose answer is lost after the client's timeout, a listing that shows the order
  only a few seconds later, and a re-send the provider refuses as a duplicate reference, for a
  direct request to each provider and for ``provider: "auto"`` with fallback (never a second
  order at the other provider);
* a placement answered 2xx with an HTML maintenance page (the order exists);
* the same lost answer and refusal with a listing that never catches up in time: DECISION_REQUIRED
  ``OUTCOME_UNKNOWN``, one paid order, never ``REJECTED``;
* a customer reference already used by another request's order: the request adopts its own order
  (lost answer), or, when it has none, goes to DECISION_REQUIRED ``CUSTOMER_REFERENCE_IN_USE``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import (
    TOULOUSE,
    UP42_PHR_PRODUCT,
    RecordingCollector,
    Stack,
    failed_cases,
    fast_oneatlas_request,
    fast_up42_request,
    reliability_stack,
    sim_window,
    spawn_worker,
    wait_ready,
)
from reliability_sizes import SOAK, Sizes

from worker.config import TopicSettings
from worker.events.models import OrderRequest
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault

pytestmark = pytest.mark.integration

ONEATLAS_ORDERS = "/api/v1/orders"
UP42_ORDERS = "/v2/orders"
# The answer comes after the client's timeout (0.8 s in the harness's worker environment).
LOST = {"kind": "lost_response", "method": "POST", "delay": 3.0}
LAG = 4.0  # seconds the listings hide a new order: longer than the settle period (1 s)
ONEATLAS_FIRST = '{"CREDITS": 1000.0}'  # the UP42 estimate is far dearer: OneAtlas is preferred


@dataclass
class Outcome:
    name: str
    statuses: list[str]
    last: dict[str, Any] | None
    paid: dict[str, int]
    expect_status: str
    expect_reason: str | None
    expect_paid: dict[str, int]
    problems: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        wrong = list(self.problems)
        if not self.statuses or self.statuses[-1] != self.expect_status:
            wrong.append(
                f"ended {self.statuses[-1:] or 'nowhere'}, not {self.expect_status}: {self.statuses}"
            )
        if "REJECTED" in self.statuses:
            wrong.append("REJECTED while an order exists at the provider")
        code = ((self.last or {}).get("reason") or {}).get("code")
        if self.expect_reason is not None and code != self.expect_reason:
            wrong.append(f"reason {code}, not {self.expect_reason}")
        if self.paid != self.expect_paid:
            wrong.append(f"paid orders {self.paid}, expected {self.expect_paid}")
        return wrong


Scenario = Callable[[Stack, RecordingCollector, str], Awaitable[Outcome]]


@dataclass(frozen=True)
class Case:
    name: str
    scenario: Scenario
    env: dict[str, str] = field(default_factory=dict)


def _paid(stack: Stack, reference: str) -> dict[str, int]:
    return {
        "oneatlas": stack.sims.oneatlas.paid_order_count(reference),
        "up42": stack.sims.up42.paid_order_count(reference),
    }


async def _settle(events: RecordingCollector, rid: str, status: str, timeout: float) -> None:
    await events.wait_for(lambda: status in events.statuses(rid), timeout=timeout)
    await asyncio.sleep(1.0)  # a late second order or a late refusal would be recorded by now


def _lost_then_refused(stack: Stack, provider: str, lag: float = LAG) -> None:
    """The paid POST's answer is lost, the listing lags, the re-send is refused as a duplicate."""
    if provider == "oneatlas":
        sim: Any = stack.sims.oneatlas
        sim.inject(Fault(path=ONEATLAS_ORDERS, **LOST))
    else:
        sim = stack.sims.up42
        sim.inject(Fault(path=UP42_ORDERS, **LOST))
    sim.listing_lag = lag
    sim.duplicate_reference_status = 409


async def lost_refused_direct_oneatlas(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    _lost_then_refused(stack, "oneatlas")
    request = fast_oneatlas_request(rid, stack.sims)
    await stack.publish(request)
    await _settle(events, rid, "COMPLETED", 120)
    return _outcome("direct oneatlas", stack, events, request, "COMPLETED", None, "oneatlas")


async def lost_refused_direct_up42(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    _lost_then_refused(stack, "up42")
    request = fast_up42_request(rid, stack.sims)
    await stack.publish(request)
    await _settle(events, rid, "COMPLETED", 120)
    return _outcome("direct up42", stack, events, request, "COMPLETED", None, "up42")


async def lost_refused_auto_fallback(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    _lost_then_refused(stack, "oneatlas")
    request = OrderRequest.model_validate(
        {
            "requestId": rid,
            "provider": "auto",
            "candidates": [
                {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"}},
                {"provider": "up42", "product": {"dataProductId": UP42_PHR_PRODUCT}},
            ],
            "routing": {"prefer": "cheapest", "fallback": True},
            "aoi": {"type": "Polygon", "coordinates": [TOULOUSE]},
            "window": sim_window(stack.sims, 30),
            "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
        }
    )
    await stack.publish(request)
    await _settle(events, rid, "COMPLETED", 120)
    return _outcome("auto", stack, events, request, "COMPLETED", None, "oneatlas")


async def html_on_success(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    stack.sims.oneatlas.inject(Fault("html_success", path=ONEATLAS_ORDERS, method="POST"))
    request = fast_oneatlas_request(rid, stack.sims)
    await stack.publish(request)
    await _settle(events, rid, "COMPLETED", 120)
    return _outcome("html", stack, events, request, "COMPLETED", None, "oneatlas")


async def undecidable(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    _lost_then_refused(stack, "oneatlas", lag=3600.0)  # the listing never catches up in time
    request = fast_oneatlas_request(rid, stack.sims)
    await stack.publish(request)
    await _settle(events, rid, "DECISION_REQUIRED", 90)
    outcome = _outcome(
        "undecidable", stack, events, request, "DECISION_REQUIRED", "OUTCOME_UNKNOWN", "oneatlas"
    )
    details = ((outcome.last or {}).get("reason") or {}).get("details") or {}
    if details.get("unknownSends") != 1 or not details.get("evidence"):
        outcome.problems.append(f"the reason does not state what is known: {details}")
    return outcome


async def _other_request_first(stack: Stack, events: RecordingCollector, rid: str, reference: str) -> str:
    """Another request's order under ``reference`` (another AOI): its sales order id."""
    other = fast_oneatlas_request(f"{rid}-other", stack.sims, customerReference=reference)
    await stack.publish(other)
    await events.wait_for(lambda: "ORDERED" in events.statuses(other.request_id), timeout=60)
    ordered = next(e for e in events.unique(other.request_id) if e["status"] == "ORDERED")
    return str(ordered["providerRefs"]["salesOrderId"])


def _mine(stack: Stack, rid: str, reference: str) -> OrderRequest:
    ring = [[x + 2.0, y] for x, y in TOULOUSE]  # same reference, another AOI
    return fast_oneatlas_request(
        rid, stack.sims, customerReference=reference, aoi={"type": "Polygon", "coordinates": [ring]}
    )


async def reference_reused_own_order_adopted(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    reference = f"shared-{rid}"
    theirs = await _other_request_first(stack, events, rid, reference)
    stack.sims.oneatlas.inject(Fault(path=ONEATLAS_ORDERS, **LOST))
    request = _mine(stack, rid, reference)
    await stack.publish(request)
    await _settle(events, rid, "COMPLETED", 120)
    outcome = _outcome("reused, own order", stack, events, request, "COMPLETED", None, "oneatlas", paid=2)
    ordered = next((e for e in events.unique(rid) if e["status"] == "ORDERED"), {})
    if ordered.get("providerRefs", {}).get("salesOrderId") in (None, theirs):
        outcome.problems.append(f"adopted the other request's order {theirs}, not its own")
    return outcome


async def reference_in_use(stack: Stack, events: RecordingCollector, rid: str) -> Outcome:
    reference = f"shared-{rid}"
    await _other_request_first(stack, events, rid, reference)
    # Our placement gets a 503 (nothing created, outcome unknown): the read finds only theirs.
    stack.sims.oneatlas.inject(Fault("status", path=ONEATLAS_ORDERS, method="POST", status=503))
    request = _mine(stack, rid, reference)
    await stack.publish(request)
    await _settle(events, rid, "DECISION_REQUIRED", 90)
    return _outcome(
        "reference in use",
        stack,
        events,
        request,
        "DECISION_REQUIRED",
        "CUSTOMER_REFERENCE_IN_USE",
        "oneatlas",
        paid=1,
    )


def _outcome(
    name: str,
    stack: Stack,
    events: RecordingCollector,
    request: OrderRequest,
    status: str,
    reason: str | None,
    provider: str,
    paid: int = 1,
) -> Outcome:
    rid = request.request_id
    expected = {"oneatlas": 0, "up42": 0, provider: paid}
    return Outcome(
        name,
        events.statuses(rid),
        events.latest(rid),
        _paid(stack, request.reference),
        status,
        reason,
        expected,
        events.event_problems(),
    )


CASES = [
    Case("lost answer, lagging listing, refused re-send: oneatlas", lost_refused_direct_oneatlas),
    Case("lost answer, lagging listing, refused re-send: up42", lost_refused_direct_up42),
    Case(
        "auto with fallback never orders twice",
        lost_refused_auto_fallback,
        {"TASKING_ROUTING__RATES": ONEATLAS_FIRST},
    ),
    Case("2xx with an HTML body", html_on_success),
    Case(
        "undecidable within the outcome timeout",
        undecidable,
        {"TASKING_HTTP_CLIENT__OUTCOME_TIMEOUT_SECONDS": "3"},
    ),
    Case("reused reference, own order adopted", reference_reused_own_order_adopted),
    Case("reused reference, no own order", reference_in_use),
]


async def run_case(broker: EmbeddedBroker, directory: Path, case: Case) -> Outcome:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    async with reliability_stack(broker, topics) as (stack, events):
        worker = spawn_worker(stack, directory / f"{suffix}.log", **case.env)
        try:
            await wait_ready(worker)
            started = time.monotonic()
            outcome = await case.scenario(stack, events, f"pw-{suffix}")
            print(f"{case.name}: {time.monotonic() - started:.1f} s, statuses {outcome.statuses}")
            return outcome
        finally:
            worker.kill()


async def test_paid_writes_follow_the_outcome_rule(
    broker: EmbeddedBroker, log_dir: Path, sizes: Sizes
) -> None:
    report = await failed_cases(CASES, lambda case: run_case(broker, log_dir, case), sizes.concurrency)
    assert not report, "\n".join(report)


@pytest.mark.soak
async def test_paid_writes_follow_the_outcome_rule_many_times(broker: EmbeddedBroker, log_dir: Path) -> None:
    """Every case, ``SOAK_OUTCOME_ROUNDS`` times (default 5), with the soak concurrency."""
    from reliability_sizes import env_int

    rounds = env_int("SOAK_OUTCOME_ROUNDS", 5)
    cases = [Case(f"{c.name} #{n}", c.scenario, c.env) for n in range(rounds) for c in CASES]
    report = await failed_cases(cases, lambda case: run_case(broker, log_dir, case), SOAK.concurrency)
    assert not report, "\n".join(report)
