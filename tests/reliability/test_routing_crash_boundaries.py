"""SIGKILL at each boundary of the chosen offer's placement (``provider: "auto"``), then a
restart: exactly one paid order across both providers, and the request converges.

The same boundaries as ``test_crash_boundaries.py`` (the crash hook of
``worker/crashpoints.py``, or a simulator fault plus an external SIGKILL), for a request
that chose among a OneAtlas and a UP42 offer. The rates decide which offer is preferred. A last
case refuses the preferred offer's placement (fallback) and kills the worker while the fallback
placement's answer is lost: the next worker must find that order at its provider, and order
nothing anywhere else.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import (
    TOULOUSE,
    UP42_PHR_PRODUCT,
    Stack,
    WorkerProcess,
    crash_points,
    failed_cases,
    reliability_stack,
    sim_window,
    spawn_worker,
    wait_until,
)
from reliability_sizes import Sizes

from worker.config import TopicSettings
from worker.events.models import OrderRequest
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault

pytestmark = pytest.mark.integration

ONEATLAS_FIRST = '{"CREDITS": 1000.0}'  # the UP42 estimate is far dearer than the OneAtlas price
UP42_FIRST = '{"CREDITS": 0.0001}'
SLOW_CLIENT = {"TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "5", "TASKING_HTTP_CLIENT__SETTLE_SECONDS": "6"}
ONEATLAS_ORDERS = "/api/v1/orders"
UP42_REFUSAL = {"status": 400, "title": "Bad Request", "detail": "The data product is not available"}


@dataclass(frozen=True)
class Case:
    name: str
    rates: str
    chosen: str  # the provider that must end up with the one paid order
    crash_at: str | None = None
    faults: tuple[tuple[str, Fault], ...] = ()  # (simulator, fault) injected before publishing
    kill_when_recorded: tuple[str, str] | None = None  # (method, path) seen by a simulator
    first_env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("before intent persisted", ONEATLAS_FIRST, "oneatlas", crash_at="before_intent_persist:place_order"),
    Case("after intent persisted", ONEATLAS_FIRST, "oneatlas", crash_at="after_intent_persist:place_order"),
    Case("after the answer", ONEATLAS_FIRST, "oneatlas", crash_at="after_call_returned:place_order"),
    Case("before result written", ONEATLAS_FIRST, "oneatlas", crash_at="before_result_persist:place_order"),
    Case("after result written", ONEATLAS_FIRST, "oneatlas", crash_at="after_result_persist:place_order"),
    Case(
        "provider acted, answer lost",
        ONEATLAS_FIRST,
        "oneatlas",
        faults=(("oneatlas", Fault("lost_response", path=ONEATLAS_ORDERS, method="POST", delay=30.0)),),
        kill_when_recorded=("POST", ONEATLAS_ORDERS),
        first_env=SLOW_CLIENT,
    ),
    Case("up42 after intent persisted", UP42_FIRST, "up42", crash_at="after_intent_persist:place_order"),
    Case("up42 after the answer", UP42_FIRST, "up42", crash_at="after_call_returned:place_order"),
    Case(
        "fallback placement answer lost",
        UP42_FIRST,
        "oneatlas",
        faults=(
            ("up42", Fault("status", path="/v2/orders", method="POST", status=400, body=UP42_REFUSAL)),
            ("oneatlas", Fault("lost_response", path=ONEATLAS_ORDERS, method="POST", delay=30.0)),
        ),
        kill_when_recorded=("POST", ONEATLAS_ORDERS),
        first_env=SLOW_CLIENT,
    ),
]


@dataclass
class Outcome:
    case: Case
    statuses: list[str]
    paid: dict[str, int]
    quotations: int
    problems: list[str]
    points: list[str]
    first_exit: int | None
    seconds: float

    def failures(self) -> list[str]:
        wrong = []
        if not self.statuses or self.statuses[-1] != "COMPLETED":
            wrong.append(f"did not complete: {self.statuses}")
        expected = {"oneatlas": 0, "up42": 0, self.case.chosen: 1}
        if self.paid != expected:
            wrong.append(f"paid orders {self.paid}, expected {expected}")
        if self.case.chosen == "up42" and self.quotations != 1:
            wrong.append(f"{self.quotations} accepted quotations")
        if self.case.crash_at is not None and self.points != [self.case.crash_at]:
            wrong.append(f"crashed at {self.points}, not {self.case.crash_at}")
        if self.first_exit != -9:
            wrong.append(f"first worker ended with {self.first_exit}, not SIGKILL")
        return wrong + self.problems


def auto_request(request_id: str, stack: Stack, chosen: str) -> OrderRequest:
    """OneAtlas PLEIADES ONEPLAN or UP42 Pléiades; the window suits the provider that is to win
    (the UP42 simulator completes within a short window, as in ``fast_up42_request``)."""
    days = 0.5 if chosen == "up42" else 30
    return OrderRequest.model_validate(
        {
            "requestId": request_id,
            "provider": "auto",
            "candidates": [
                {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"}},
                {"provider": "up42", "product": {"dataProductId": UP42_PHR_PRODUCT}},
            ],
            "aoi": {"type": "Polygon", "coordinates": [TOULOUSE]},
            "window": sim_window(stack.sims, days),
            "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
        }
    )


def _recorded(stack: Stack, method: str, path: str) -> bool:
    cores = (stack.sims.oneatlas.core, stack.sims.up42.core)
    return any(
        c.method == method and c.path.startswith(path) and c.fault for core in cores for c in core.calls
    )


async def _kill_first(first: WorkerProcess, case: Case, stack: Stack) -> None:
    if case.crash_at is not None:
        await wait_until(lambda: first.process.poll() is not None, 90, f"crash at {case.crash_at}")
        return
    assert case.kill_when_recorded is not None
    method, path = case.kill_when_recorded
    await wait_until(lambda: _recorded(stack, method, path), 90, f"{method} {path}")
    first.kill()


async def run_case(broker: EmbeddedBroker, directory: Path, case: Case) -> Outcome:
    started = time.monotonic()
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    async with reliability_stack(broker, topics) as (stack, events):
        for simulator, fault in case.faults:
            (stack.sims.oneatlas if simulator == "oneatlas" else stack.sims.up42).inject(fault)
        env: dict[str, Any] = {"TASKING_ROUTING__RATES": case.rates, **case.first_env}
        if case.crash_at:
            env["TASKING_TEST_CRASH_AT"] = case.crash_at
        first = spawn_worker(stack, directory / f"{suffix}-first.log", **env)
        request = auto_request(f"auto-crash-{suffix}", stack, case.chosen)
        rid = request.request_id
        second = None
        try:
            await stack.publish(request)
            await _kill_first(first, case, stack)
            stack.sims.oneatlas.core.clear_faults()
            stack.sims.up42.core.clear_faults()
            second = spawn_worker(
                stack, directory / f"{suffix}-second.log", TASKING_ROUTING__RATES=case.rates
            )
            await events.wait_for(lambda: events.statuses(rid)[-1:] == ["COMPLETED"], timeout=120)
        finally:
            first.kill()
            if second is not None:
                second.kill()
        await asyncio.sleep(0.5)  # a late duplicate would be recorded by now
        reference = request.reference
        return Outcome(
            case,
            events.statuses(rid),
            {
                "oneatlas": stack.sims.oneatlas.paid_order_count(reference),
                "up42": stack.sims.up42.paid_order_count(reference),
            },
            stack.sims.up42.accepted_quotations(reference) if case.chosen == "up42" else 0,
            events.event_problems(),
            crash_points(first),
            first.process.returncode,
            time.monotonic() - started,
        )


async def test_sigkill_at_each_boundary_of_the_chosen_placement_orders_exactly_once(
    broker: EmbeddedBroker, log_dir: Path, sizes: Sizes
) -> None:
    report = await failed_cases(CASES, lambda case: run_case(broker, log_dir, case), sizes.concurrency)
    assert not report, "\n".join(report)
