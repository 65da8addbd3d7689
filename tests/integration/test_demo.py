"""``tasking-worker demo``: the whole service end to end, plus the demo's own decision logic.

The end-to-end test runs the real command in a subprocess without a terminal (as CI and
``make demo`` in a pipe do): embedded broker, both simulators over HTTP, the worker, the samples.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.demo.samples import SAMPLES, auto_answer, load_samples, starting_at
from worker.demo.view import Board
from worker.events.models import (
    CommandName,
    Decision,
    DecisionKind,
    DecisionOption,
    OrderRequest,
    OrderStatusEvent,
    Price,
    Provider,
    Reason,
)
from worker.events.status import OrderStatus, stapi_status

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("tasking-worker")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def event(request: OrderRequest, sequence: int, status: OrderStatus, **fields: object) -> OrderStatusEvent:
    return OrderStatusEvent(
        request_id=request.request_id,
        provider=request.provider,
        sequence=sequence,
        status=status,
        previous_status=None,
        stapi_status=stapi_status(status),
        occurred_at=NOW,
        **fields,
    )


def by_id(requests: list[OrderRequest], fragment: str) -> OrderRequest:
    (found,) = [r for r in requests if fragment in r.request_id]
    return found


# --------------------------------------------------------------------------- samples and answers


def test_samples_are_valid_requests_whose_windows_start_now() -> None:
    requests = load_samples(NOW)
    assert len(requests) == len(SAMPLES) == 8
    assert len({r.request_id for r in requests}) == 8
    assert all(r.window.start == NOW for r in requests)
    assert {r.provider for r in requests} == {Provider.ONEATLAS, Provider.UP42, Provider.AUTO}
    assert sum(r.dry_run for r in requests) == 1
    panama = by_id(requests, "panama")
    assert panama.up42_product().data_product_id == "bd102407-1814-4f92-8b5a-7697b7a73f5a"
    australia = by_id(requests, "western-australia")
    lons = [lon for lon, _ in australia.aoi.ring()]
    assert (min(lons), max(lons)) == (122.68, 122.83)


def test_the_provider_choice_sample_compares_oneatlas_and_up42_and_asks_at_the_prompt() -> None:
    auto = by_id(load_samples(NOW), "auto-pleiades")
    assert [c.provider for c in auto.candidates or []] == [Provider.ONEATLAS, Provider.UP42]
    assert auto.auto_approve
    asked = by_id(load_samples(NOW, interactive=True), "auto-pleiades")
    assert not asked.auto_approve, "at the prompt the person chooses the offer"
    options = [DecisionOption(id="up42-2", description="U"), DecisionOption(id="oneatlas-1", description="O")]
    choose = event(
        auto,
        2,
        OrderStatus.DECISION_REQUIRED,
        decision=Decision(kind=DecisionKind.SELECT_OFFER, options=options),
    )
    answer = auto_answer(auto, choose)
    assert answer is not None
    assert (answer.command, answer.option_id) == (CommandName.SELECT_OFFER, "up42-2")


def test_starting_at_keeps_the_window_length() -> None:
    request = by_id(load_samples(NOW), "tristereo")
    later = NOW + timedelta(days=3)
    moved = starting_at(request, later)
    assert moved.window.start == later
    assert moved.window.end - moved.window.start == request.window.end - request.window.start
    assert moved.model_copy(update={"window": request.window}) == request


def test_auto_answers_choose_the_first_option_and_decline_over_budget() -> None:
    requests = load_samples(NOW)
    panama = by_id(requests, "panama")
    options = [DecisionOption(id="opt-a", description="A"), DecisionOption(id="opt-b", description="B")]
    choose = event(
        panama,
        4,
        OrderStatus.DECISION_REQUIRED,
        decision=Decision(kind=DecisionKind.SELECT_FEASIBILITY_OPTION, options=options),
    )
    answer = auto_answer(panama, choose)
    assert answer is not None
    assert (answer.command, answer.option_id) == (CommandName.SELECT_FEASIBILITY_OPTION, "opt-a")

    over = by_id(requests, "over-budget")
    assert over.budget is not None
    price = event(
        over,
        4,
        OrderStatus.DECISION_REQUIRED,
        price=Price(amount=3450, currency="EUR"),
        decision=Decision(kind=DecisionKind.APPROVE_PRICE),
    )
    rejected = auto_answer(over, price)
    assert rejected is not None
    assert rejected.command is CommandName.REJECT

    oneplan = by_id(requests, "oneplan-toulouse")
    approved = auto_answer(oneplan, price.model_copy(update={"request_id": oneplan.request_id}))
    assert approved is not None
    assert approved.command is CommandName.APPROVE
    # The worker's own OVER_BUDGET reason is enough, whatever the request says.
    flagged = price.model_copy(update={"reason": Reason(code="OVER_BUDGET", message="too much")})
    flagged_answer = auto_answer(oneplan, flagged)
    assert flagged_answer is not None
    assert flagged_answer.command is CommandName.REJECT
    assert auto_answer(oneplan, event(oneplan, 2, OrderStatus.QUOTED)) is None


def test_board_holds_the_time_lapse_until_every_open_order_is_with_its_provider() -> None:
    requests = load_samples(NOW)
    board = Board(requests, SAMPLES)
    assert not board.with_providers()  # nothing seen yet
    for request in requests:
        if request.dry_run:
            board.apply_status(event(request, 3, OrderStatus.QUOTED))
        else:
            board.apply_status(event(request, 4, OrderStatus.ORDERED))
    assert board.with_providers()
    panama = by_id(requests, "panama")
    board.apply_status(
        event(
            panama,
            5,
            OrderStatus.DECISION_REQUIRED,
            decision=Decision(kind=DecisionKind.SELECT_FEASIBILITY_OPTION),
        )
    )
    assert not board.with_providers()
    assert board.waiting_on() == [f"{panama.request_id} (DECISION_REQUIRED)"]
    # Placed at the provider (an order id is known) while the quotation is prepared.
    board.apply_status(event(panama, 6, OrderStatus.FEASIBLE, provider_refs={"orderId": "o-1"}))
    assert board.with_providers()
    # A redelivered older event changes nothing.
    assert board.apply_status(event(panama, 5, OrderStatus.DECISION_REQUIRED)) is None
    assert board.views[panama.request_id].status is OrderStatus.FEASIBLE


def test_board_problems_name_every_order_off_its_expected_status() -> None:
    requests = load_samples(NOW)
    board = Board(requests, SAMPLES)
    for request, sample in zip(requests, SAMPLES, strict=True):
        board.apply_status(event(request, 9, sample.expected))
    assert board.all_done()
    assert board.problems() == []
    over = by_id(requests, "over-budget")
    board.apply_status(event(over, 10, OrderStatus.COMPLETED))
    assert board.problems() == [f"{over.request_id}: expected REJECTED, got COMPLETED"]


# --------------------------------------------------------------------------- end to end


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_demo_runs_every_sample_to_its_expected_status() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKING_")}
    result = subprocess.run(
        [str(CLI), "demo", "--auto-approve", "--plain", "--timeout", "110"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=140,
        cwd=ROOT,
        env=env,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, output[-6000:] + result.stderr[-3000:]
    assert "every order reached its expected status" in output
    # The last step: one delivered product downloaded and verified.
    assert re.search(r"[1-9]\d* downloaded, 0 already complete, 0 failed", output), output[-3000:]
    # Where the STAC collection documents are, and they are there.
    where = re.search(r"STAC collection documents of the delivered items: (\S+)", output)
    assert where is not None, output[:3000]
    assert (Path(where.group(1)) / "oneatlas-pleiades.json").is_file()
    requests = load_samples(NOW)
    summary = output[output.index("tasking-worker demo: summary") :]
    rows = {line.split("│")[1].strip(): line for line in summary.splitlines() if line.count("│") > 3}
    for request, sample in zip(requests, SAMPLES, strict=True):
        cells = [c.strip() for c in rows[request.request_id].split("│")]
        assert cells[3] == sample.expected.value, rows[request.request_id]  # final status
        assert cells[-2] == "yes"
        if request.provider.value == "up42":
            delivered = int(cells[-3].split()[0])
            assert delivered >= 1, rows[request.request_id]  # the delivered column
            assert f"{request.request_id} delivered " in output  # each product as a progress line
    # Every status event was printed as a progress line, and the demo answered the decisions.
    assert "DECISION_REQUIRED → REJECTED" in output
    assert "select-feasibility-option" in output
    # The provider-choice sample: both offers shown, the cheaper (UP42 at these rates) ordered.
    assert "demo-auto-pleiades-toulouse #2 RECEIVED → QUOTED  provider auto  offers up42-2 OFFERED" in output
    assert "oneatlas-1 OFFERED" in output
    auto_row = [c.strip() for c in rows["demo-auto-pleiades-toulouse"].split("│")]
    assert auto_row[2] == "auto → up42", "the summary names the provider the offer was chosen from"
