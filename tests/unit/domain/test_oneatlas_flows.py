"""OneAtlas SPOT/PLEIADES flows: ONEPLAN/ONESERIES (feasibility) and ONEDAY/ONENOW (attempts)."""

from __future__ import annotations

import pytest

from worker.domain.model import (
    AttemptsFound,
    CommandReceived,
    FeasibilityAnswered,
    IntentKind,
    OrderPlaced,
    Phase,
    Polled,
    Priced,
    RequestReceived,
    TimerFired,
    TimerKind,
    Validated,
)
from worker.domain.ports import RemotePhase
from worker.events.models import Automation, DecisionKind
from worker.events.status import OrderStatus as S
from worker.events.status import StapiStatus

from .builders import (
    Order,
    at,
    attempt,
    command,
    deliver,
    feasibility,
    must,
    ops,
    placed,
    quote,
    request,
    schedules,
    snapshot,
    start,
    to_placed,
    to_quoted,
)


def test_request_received_starts_with_received_validation_and_window_timer() -> None:
    order = Order()
    effects = order.send(RequestReceived(request=request(), at=at(0)))
    assert order.statuses() == [S.RECEIVED]
    assert order.last().sequence == 1
    assert order.last().previous_status is None
    assert order.last().stapi_status is StapiStatus.RECEIVED
    assert ops(effects) == ["validate"]
    assert schedules(effects) == {"window_end": order.s.request.window.end}
    assert order.s.phase is Phase.VALIDATING


@pytest.mark.parametrize("programming_type", ["ONEPLAN", "ONESERIES"])
def test_oneplan_automatic_auto_approved_is_ordered_then_tracked_to_completion(programming_type: str) -> None:
    order = start(request(programming_type=programming_type))
    assert ops(order.send(FeasibilityAnswered(result=feasibility(), at=at(2)))) == ["price"]
    effects = order.send(Priced(quote=quote(1000), at=at(3)))
    assert ops(effects) == ["place_order"]
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.PLACE_ORDER
    assert order.s.phase is Phase.PLACING
    order.send(OrderPlaced(placed=placed("SO-9"), at=at(4)))
    order.send(Polled(snapshot=snapshot(RemotePhase.ACTIVE, "SO-9"), at=at(5)))
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, "SO-9"), at=at(6)))
    order.send(Polled(snapshot=snapshot(RemotePhase.COMPLETED, "SO-9", counts=_validated(1)), at=at(7)))
    assert order.statuses()[-1] is S.IN_PROGRESS, "the provider finished: its product is still to come"
    assert order.s.phase is Phase.AWAITING_DELIVERY
    deliver(order, "item-1", 8)
    order.send(TimerFired(timer=TimerKind.DELIVERY_CHECK, at=at(8 + 10)))  # the grace period ended
    assert order.transitions() == [S.RECEIVED, S.FEASIBLE, S.QUOTED, S.ORDERED, S.IN_PROGRESS, S.COMPLETED]
    assert [e.sequence for e in order.events] == list(range(1, len(order.events) + 1))
    assert order.last().progress is not None
    assert order.last().progress.deliveries == 1
    assert order.events[3].provider_refs == {"salesOrderId": "SO-9"}
    assert order.events[1].feasibility is not None
    assert order.events[1].feasibility.automation is Automation.AUTOMATIC
    assert order.events[2].price is not None
    assert order.events[2].price.amount == 1000
    assert order.s.terminal
    assert order.s.intent is None


def _validated(n: int):  # type: ignore[no-untyped-def]
    from .builders import counts

    return counts(validated=n)


def test_price_over_budget_requires_approval_then_approve_orders_with_audit() -> None:
    order = to_quoted(request(budget={"maxAmount": 500, "currency": "EUR"}), amount=1000)
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "OVER_BUDGET"
    decision = order.last().decision
    assert decision is not None
    assert decision.kind is DecisionKind.APPROVE_PRICE
    assert [o.id for o in decision.options] == ["approve", "reject"]
    assert order.s.phase is Phase.AWAITING_APPROVAL
    cmd = command("approve", reason="ok by finance", issuedBy="alice")
    effects = order.send(CommandReceived(command=cmd, at=at(10)))
    assert ops(effects) == ["place_order"]
    assert order.s.approved_amount == 1000
    order.send(OrderPlaced(placed=placed(), at=at(11)))
    assert order.last().status is S.ORDERED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "APPROVED"
    assert must(order.last().reason).message == "ok by finance"
    assert must(order.last().reason).details == {
        "commandId": "cmd-1",
        "command": "approve",
        "issuedBy": "alice",
    }
    assert order.last().decision is None


def test_auto_approve_false_asks_with_no_reason_and_reject_declines() -> None:
    order = to_quoted(request(autoApprove=False))
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().reason is None
    effects = order.send(CommandReceived(command=command("reject"), at=at(10)))
    assert order.last().status is S.REJECTED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "DECLINED"
    assert order.s.terminal
    assert order.s.placed is None
    assert "place_order" not in [c.op.value for c in order.calls]
    assert {"retry", "reconcile", "decision_deadline", "window_end"} <= {
        e.timer.value for e in effects if e.kind == "unschedule"
    }


def test_currency_mismatch_is_not_within_budget() -> None:
    order = to_quoted(request(budget={"maxAmount": 5000, "currency": "USD"}), amount=10)
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "OVER_BUDGET"


def test_dry_run_stops_at_quoted_and_orders_nothing() -> None:
    order = to_quoted(request(dryRun=True))
    assert order.statuses() == [S.RECEIVED, S.FEASIBLE, S.QUOTED]
    assert order.s.terminal
    assert order.s.phase is Phase.DONE
    assert [c.op.value for c in order.calls] == ["validate", "feasibility", "price"]


def test_not_available_feasibility_is_rejected_not_feasible() -> None:
    order = start(request())
    order.send(FeasibilityAnswered(result=feasibility(available=False), at=at(2)))
    assert order.statuses() == [S.RECEIVED, S.REJECTED]
    assert order.last().reason is not None
    assert must(order.last().reason).code == "NOT_FEASIBLE"


def test_manual_feasibility_auto_approved_without_budget_is_placed_and_pending() -> None:
    order = start(request())
    effects = order.send(FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=at(2)))
    assert ops(effects) == ["place_order"], "no price exists before a manual study"
    order.send(OrderPlaced(placed=placed(), at=at(3)))
    assert order.last().status is S.FEASIBILITY_PENDING
    assert order.last().stapi_status is StapiStatus.HELD
    order.send(Polled(snapshot=snapshot(RemotePhase.FEASIBILITY_STUDY), at=at(4)))
    assert order.last().status is S.FEASIBILITY_PENDING
    assert len(order.events) == 3
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING), at=at(5)))
    assert order.statuses()[-3:] == [S.FEASIBILITY_PENDING, S.ORDERED, S.IN_PROGRESS]


def test_stereo_is_a_manual_study_and_a_budget_asks_to_confirm_first() -> None:
    req = request(constraints={"acquisitionMode": "STEREO"}, budget={"maxAmount": 9000, "currency": "EUR"})
    order = start(req)
    order.send(FeasibilityAnswered(result=feasibility(Automation.AUTOMATIC), at=at(2)))
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().decision is not None
    assert must(order.last().decision).kind is DecisionKind.CONFIRM_ORDER
    assert order.last().reason is not None
    assert must(order.last().reason).code == "MANUAL_FEASIBILITY"
    order.send(CommandReceived(command=command("approve"), at=at(3)))
    assert order.s.approved_amount is None, "a confirmation approves no amount"
    order.send(OrderPlaced(placed=placed(), at=at(4)))
    assert order.statuses()[-2:] == [S.DECISION_REQUIRED, S.FEASIBILITY_PENDING]
    assert order.last().reason is not None
    assert must(order.last().reason).code == "APPROVED"


def test_manual_dry_run_ends_quoted_without_price() -> None:
    order = start(request(dryRun=True))
    order.send(FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=at(2)))
    assert order.statuses() == [S.RECEIVED, S.FEASIBLE, S.QUOTED]
    assert order.last().price is None
    assert order.last().reason is not None
    assert must(order.last().reason).code == "MANUAL_FEASIBILITY"
    assert order.s.terminal


@pytest.mark.parametrize("programming_type", ["ONEDAY", "ONENOW"])
def test_attempts_choose_first_fitting_attempt(programming_type: str) -> None:
    req = request(programming_type=programming_type, constraints={"maxIncidenceAngle": 20}, autoApprove=False)
    order = start(req)
    assert order.calls[-1].op.value == "attempts"
    found = [
        attempt("late", deadline=at(1)),  # its order deadline is already past
        attempt("steep", incidence=35),
        attempt("good", incidence=15, deadline=at(600)),
        attempt("later", incidence=5),
    ]
    effects = order.send(AttemptsFound(attempts=found, at=at(2)))
    assert ops(effects) == ["price"]
    assert order.s.chosen_attempt is not None
    assert order.s.chosen_attempt.id == "good"
    feas = order.last().feasibility
    assert order.last().status is S.FEASIBLE
    assert feas is not None
    assert [a.id for a in feas.attempts if a.chosen] == ["good"]
    assert feas.automation is Automation.AUTOMATIC
    assert feas.programming_type == programming_type
    effects = order.send(Priced(quote=quote(), at=at(3)))
    assert order.last().decision is not None
    assert must(order.last().decision).deadline == at(600)
    assert schedules(effects)["decision_deadline"] == at(600)


def test_no_fitting_attempt_is_rejected_not_feasible() -> None:
    order = start(request(programming_type="ONEDAY", constraints={"maxIncidenceAngle": 20}))
    order.send(
        AttemptsFound(attempts=[attempt("steep", incidence=40), attempt("late", deadline=at(2))], at=at(2))
    )
    assert order.statuses() == [S.RECEIVED, S.REJECTED]
    assert order.last().reason is not None
    assert must(order.last().reason).code == "NOT_FEASIBLE"
    assert must(order.last().reason).details["attempts"] == 2


def test_duplicate_request_changes_nothing() -> None:
    order = to_placed(request())
    before = order.s
    effects = order.send(RequestReceived(request=request(), at=at(50)))
    assert effects == []
    assert order.s == before
    assert len(order.events) == 4


def test_late_answers_of_a_past_phase_are_ignored() -> None:
    order = to_placed(request())
    before = order.s
    for event in (
        Validated(at=at(9)),
        FeasibilityAnswered(result=feasibility(), at=at(9)),
        Priced(quote=quote(), at=at(9)),
        OrderPlaced(placed=placed("other"), at=at(9)),
    ):
        assert order.send(event) == []
    assert order.s == before


def test_snapshot_after_in_progress_never_goes_backwards() -> None:
    order = to_placed(request())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING), at=at(5)))
    n = len(order.events)
    order.send(Polled(snapshot=snapshot(RemotePhase.ACTIVE), at=at(6)))
    order.send(Polled(snapshot=snapshot(RemotePhase.FEASIBILITY_STUDY), at=at(7)))
    assert len(order.events) == n
    assert order.s.status is S.IN_PROGRESS


def test_provider_refs_from_snapshots_are_kept() -> None:
    order = to_placed(request())
    snap = snapshot(RemotePhase.ACTIVE).model_copy(update={"refs": {"taskingId": "ICR-1"}})
    order.send(Polled(snapshot=snap, at=at(5)))
    assert order.s.placed is not None
    assert order.s.placed.refs["taskingId"] == "ICR-1"
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING), at=at(6)))
    assert order.last().provider_refs == {"salesOrderId": "SO-1", "taskingId": "ICR-1"}
