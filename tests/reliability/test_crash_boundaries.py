"""SIGKILL at each boundary of the paid step, then a restart: exactly one order per request, and
every request converges (CONTRACT §8, ADR 0002).

Each case runs a real ``tasking-worker run`` child process against its own topics and simulators.
The kill lands deterministically:

* through the test crash hook (``TASKING_TEST_CRASH_AT``, ``worker/crashpoints.py``): the
  process SIGKILLs itself at a named point, and its log proves which one;
* through simulator faults plus an external SIGKILL: a slow ``POST`` (killed while the call is in
  flight, before the provider has acted) or a ``lost_response`` (the provider acted, the answer is
  held back; killed before it arrives);
* after an event appears (killed right after ``ORDERED`` was published).

A second worker (no hook) then takes over the group. The case passes when the request reaches
``COMPLETED``, the simulator's call records show exactly one paid order (and, for UP42, exactly one
accepted quotation), and the status stream is contiguous with stable ``ce_id``s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import (
    RecordingCollector,
    Stack,
    WorkerProcess,
    accepted_quotations,
    crash_points,
    failed_cases,
    fast_oneatlas_request,
    fast_up42_request,
    paid_orders,
    reliability_stack,
    spawn_worker,
    wait_until,
)
from reliability_sizes import Sizes

from worker.config import TopicSettings
from worker.events.models import OrderRequest
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault
from worker.simulators.server import RunningSimulators

pytestmark = pytest.mark.integration

Trigger = Callable[[Stack, RecordingCollector, str], bool]

# Longer client timeout and settle period for the in-flight cases, so the external kill lands
# while the call is still waiting (the harness default timeout is 0.8 s).
SLOW_CLIENT = {"TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "5", "TASKING_HTTP_CLIENT__SETTLE_SECONDS": "6"}


def _status_seen(status: str) -> Trigger:
    return lambda stack, events, rid: status in events.statuses(rid)


def _call_recorded(method: str, path: str) -> Trigger:
    """The simulator has run the handler of this call (its answer may still be held back)."""

    def seen(stack: Stack, events: RecordingCollector, rid: str) -> bool:
        cores = (stack.sims.oneatlas.core, stack.sims.up42.core)
        return any(c.method == method and c.path.startswith(path) for core in cores for c in core.calls)

    return seen


@dataclass(frozen=True)
class Case:
    """One boundary: how the first worker dies, for which provider."""

    name: str
    provider: str
    crash_at: str | None = None  # the hook point (the process kills itself there)
    faults: tuple[Fault, ...] = ()  # injected before the request is published
    kill_when: Trigger | None = None  # external SIGKILL once this holds
    first_env: dict[str, str] = field(default_factory=dict)


ORDERS = "/api/v1/orders"
QUOTATION = r"/v2/tasking/quotation/.*"
CASES = [
    # OneAtlas legacy order: the paid call is POST /api/v1/orders.
    Case("before intent persisted", "oneatlas", crash_at="before_intent_persist:place_order"),
    Case("after intent persisted", "oneatlas", crash_at="after_intent_persist:place_order"),
    Case(
        "call in flight (slow POST, provider not reached yet)",
        "oneatlas",
        faults=(Fault("latency", path=ORDERS, method="POST", delay=3.0),),
        kill_when=_status_seen("QUOTED"),
        first_env=SLOW_CLIENT,
    ),
    Case(
        "provider acted, answer not received (lost response)",
        "oneatlas",
        faults=(Fault("lost_response", path=ORDERS, method="POST", delay=30.0),),
        kill_when=_call_recorded("POST", ORDERS),
        first_env=SLOW_CLIENT,
    ),
    Case(
        "after provider answered, before state write", "oneatlas", crash_at="after_call_returned:place_order"
    ),
    Case("before result state write", "oneatlas", crash_at="before_result_persist:place_order"),
    Case(
        "after result state write, before ORDERED published",
        "oneatlas",
        crash_at="after_result_persist:place_order",
    ),
    Case("right after ORDERED published", "oneatlas", kill_when=_status_seen("ORDERED")),
    Case("before offset commit", "oneatlas", crash_at="before_commit"),
    Case("after offset commit", "oneatlas", crash_at="after_commit"),
    # UP42: the order (POST /v2/orders) and the quotation acceptance (credits spent).
    Case("up42 after order intent persisted", "up42", crash_at="after_intent_persist:place_order"),
    Case("up42 after order answered", "up42", crash_at="after_call_returned:place_order"),
    Case(
        "up42 after quotation-acceptance intent persisted",
        "up42",
        crash_at="after_intent_persist:accept_quotation",
    ),
    Case("up42 after quotation acceptance answered", "up42", crash_at="after_call_returned:decide_quotation"),
    Case(
        "up42 quotation accepted, answer lost",
        "up42",
        faults=(Fault("lost_response", path=QUOTATION, method="PATCH", delay=30.0),),
        kill_when=_call_recorded("PATCH", "/v2/tasking/quotation/"),
        first_env=SLOW_CLIENT,
    ),
]


@dataclass
class Outcome:
    case: Case
    statuses: list[str]
    paid: int
    quotations: int
    problems: list[str]
    points: list[str]
    first_exit: int | None
    seconds: float

    def failures(self) -> list[str]:
        wrong = []
        if not self.statuses or self.statuses[-1] != "COMPLETED":
            wrong.append(f"did not complete: {self.statuses}")
        if self.paid != 1:
            wrong.append(f"{self.paid} paid orders")
        if self.case.provider == "up42" and self.quotations != 1:
            wrong.append(f"{self.quotations} accepted quotations")
        if self.case.crash_at is not None and self.points != [self.case.crash_at]:
            wrong.append(f"crashed at {self.points}, not {self.case.crash_at}")
        if self.first_exit != -9:
            wrong.append(f"first worker ended with {self.first_exit}, not SIGKILL")
        return wrong + self.problems


def _request(case: Case, sims: RunningSimulators) -> OrderRequest:
    rid = f"crash-{uuid.uuid4().hex[:10]}"
    return fast_oneatlas_request(rid, sims) if case.provider == "oneatlas" else fast_up42_request(rid, sims)


async def _kill_first(
    first: WorkerProcess, case: Case, stack: Stack, events: RecordingCollector, rid: str
) -> None:
    """Wait for the hook to fire, or for the trigger and then SIGKILL."""
    if case.crash_at is not None:
        await wait_until(lambda: first.process.poll() is not None, 90, f"crash at {case.crash_at}")
        return
    assert case.kill_when is not None
    trigger = case.kill_when
    await wait_until(lambda: trigger(stack, events, rid), 90, f"trigger of {case.name}")
    first.kill()


async def run_case(broker: EmbeddedBroker, tmp_path: Path, case: Case) -> Outcome:
    """One boundary end to end (see the module docstring)."""
    started = time.monotonic()
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    async with reliability_stack(broker, topics) as (stack, events):
        for fault in case.faults:
            stack.sims.oneatlas.inject(fault) if case.provider == "oneatlas" else stack.sims.up42.inject(
                fault
            )
        env = dict(case.first_env)
        if case.crash_at:
            env["TASKING_TEST_CRASH_AT"] = case.crash_at
        first = spawn_worker(stack, tmp_path / f"{suffix}-first.log", **env)
        request = _request(case, stack.sims)
        second = None
        try:
            await stack.publish(request)
            await _kill_first(first, case, stack, events, request.request_id)
            stack.sims.oneatlas.core.clear_faults()
            stack.sims.up42.core.clear_faults()
            second = spawn_worker(stack, tmp_path / f"{suffix}-second.log")
            rid = request.request_id
            await events.wait_for(lambda: events.statuses(rid)[-1:] == ["COMPLETED"], timeout=120)
        finally:
            first.kill()
            if second is not None:
                second.kill()
        await asyncio.sleep(0.5)  # a late duplicate would be recorded by now (nothing is in flight)
        return Outcome(
            case,
            events.statuses(request.request_id),
            paid_orders(stack.sims, request),
            accepted_quotations(stack.sims, request),
            events.event_problems(),
            crash_points(first),
            first.process.returncode,
            time.monotonic() - started,
        )


async def test_sigkill_at_each_paid_step_boundary_orders_exactly_once(
    broker: EmbeddedBroker, log_dir: Path, sizes: Sizes
) -> None:
    report = await failed_cases(CASES, lambda case: run_case(broker, log_dir, case), sizes.concurrency)
    assert not report, "\n".join(report)
