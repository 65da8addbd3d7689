"""UP42: estimate, order created (no credits yet), feasibility study, quotation, activation."""

from __future__ import annotations

from typing import Any

from worker.domain.model import (
    CommandReceived,
    DeliverySettled,
    ErrorInfo,
    IntentKind,
    Op,
    OrderPlaced,
    Phase,
    Polled,
    Priced,
    StepFailed,
    WriteDone,
)
from worker.domain.ports import PlacedOrder, RemotePhase, StudyDecision
from worker.events.models import Automation, DecisionKind, OrderRequest
from worker.events.status import OrderStatus as S
from worker.events.status import StapiStatus

from .builders import (
    Order,
    at,
    calls,
    command,
    counts,
    deliver,
    must,
    quotation,
    quote,
    request,
    schedules,
    snapshot,
    start,
    study,
)

UP42_PLACED = PlacedOrder(tracking_key="ord-1", refs={"orderId": "ord-1"})


def up42(**extra: Any) -> OrderRequest:
    return request(provider="up42", **extra)


def created(req: OrderRequest | None = None, estimate: float = 300.0) -> Order:
    order = start(req or up42())
    assert order.calls[-1].op is Op.PRICE, "UP42 prices right after validation"
    order.send(Priced(quote=quote(estimate, "CREDITS", indicative=True), at=at(2)))
    if order.s.phase is Phase.PLACING:
        order.send(OrderPlaced(placed=UP42_PLACED, at=at(3)))
    return order


def poll(order: Order, phase: RemotePhase, minute: float, **extra: object) -> list:  # type: ignore[type-arg]
    return order.send(Polled(snapshot=snapshot(phase, "ord-1", **extra), at=at(minute)))


def test_automatic_study_then_quotation_accepted_is_ordered_and_tracked() -> None:
    order = created()
    assert order.statuses() == [S.RECEIVED, S.QUOTED, S.FEASIBILITY_PENDING]
    assert order.last().provider_refs == {"orderId": "ord-1"}
    poll(
        order,
        RemotePhase.AWAITING_QUOTATION,
        5,
        study=study(automation=Automation.AUTOMATIC, decision=StudyDecision.ACCEPTED, options=()),
    )
    assert order.last().status is S.FEASIBLE
    assert order.last().feasibility is not None
    assert must(order.last().feasibility).automation is Automation.AUTOMATIC
    effects = poll(order, RemotePhase.QUOTATION_READY, 6, quotation=quotation("q-9", 320, "CREDITS"))
    assert [(c.op, c.target, c.accept) for c in calls(effects)] == [(Op.DECIDE_QUOTATION, "q-9", True)]
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="q-9", at=at(7)))
    poll(order, RemotePhase.ACQUIRING, 8)
    poll(order, RemotePhase.COMPLETED, 9, counts=counts(validated=2))
    assert order.last().status is S.IN_PROGRESS
    deliver(order, "item-1", 9.5)
    assert order.last().status is S.IN_PROGRESS, "UP42 may still be extracting another asset"
    order.send(DeliverySettled(tracking_key="ord-1", item_ids=["item-1"], at=at(9.6)))
    assert order.transitions() == [
        S.RECEIVED,
        S.QUOTED,
        S.FEASIBILITY_PENDING,
        S.FEASIBLE,
        S.ORDERED,
        S.IN_PROGRESS,
        S.COMPLETED,
    ]
    assert order.events[4].price is not None
    assert order.events[4].price.amount == 320


def test_manual_study_asks_for_an_option_and_the_choice_is_sent() -> None:
    order = created()
    effects = poll(order, RemotePhase.AWAITING_OPTION, 5, study=study(deadline=at(500)))
    decision = order.last().decision
    assert order.last().status is S.DECISION_REQUIRED
    assert decision is not None
    assert decision.kind is DecisionKind.SELECT_FEASIBILITY_OPTION
    assert [o.id for o in decision.options] == ["opt-1", "opt-2"]
    assert decision.deadline == at(500)
    assert schedules(effects) == {"decision_deadline": at(500)}
    assert poll(order, RemotePhase.AWAITING_OPTION, 6, study=study(deadline=at(500))) == []
    effects = order.send(
        CommandReceived(command=command("select-feasibility-option", optionId="opt-2"), at=at(7))
    )
    assert [(c.op, c.target) for c in calls(effects)] == [(Op.CHOOSE_OPTION, "opt-2")]
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.CHOOSE_OPTION
    order.send(WriteDone(op=Op.CHOOSE_OPTION, target="opt-2", at=at(8)))
    assert order.last().status is S.FEASIBLE
    assert order.last().reason is not None
    assert must(order.last().reason).code == "OPTION_SELECTED"
    assert order.s.study is not None
    assert order.s.study.chosen_option_id == "opt-2"
    assert order.s.phase is Phase.AWAITING_PROVIDER


def test_unknown_option_is_answered_command_rejected() -> None:
    order = created()
    poll(order, RemotePhase.AWAITING_OPTION, 5, study=study())
    n = len(order.events)
    effects = order.send(
        CommandReceived(command=command("select-feasibility-option", optionId="nope"), at=at(6))
    )
    assert effects == []
    assert len(order.events) == n + 1
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().previous_status is S.DECISION_REQUIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "COMMAND_REJECTED"
    assert order.last().decision is not None, "the decision still waits"


def test_quotation_over_budget_asks_and_reject_refuses_it() -> None:
    order = created(up42(budget={"maxAmount": 400, "currency": "CREDITS"}))
    poll(order, RemotePhase.QUOTATION_READY, 5, quotation=quotation("q-1", 450, "CREDITS"))
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "OVER_BUDGET"
    effects = order.send(CommandReceived(command=command("reject"), at=at(6)))
    assert [(c.op, c.accept) for c in calls(effects)] == [(Op.DECIDE_QUOTATION, False)]
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="q-1", at=at(7)))
    assert order.last().status is S.REJECTED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "DECLINED"


def test_auto_approve_false_asks_for_the_quotation_even_within_budget() -> None:
    order = created(up42(autoApprove=False))
    assert order.s.phase is Phase.AWAITING_PROVIDER, "the estimate never blocks without a budget"
    poll(order, RemotePhase.QUOTATION_READY, 5, quotation=quotation("q-1", 100, "CREDITS"))
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().reason is None
    order.send(CommandReceived(command=command("approve"), at=at(6)))
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="q-1", at=at(7)))
    assert order.last().status is S.ORDERED


def test_estimate_above_budget_asks_before_creating_the_order() -> None:
    order = created(up42(budget={"maxAmount": 100, "currency": "CREDITS"}), estimate=300)
    assert order.statuses() == [S.RECEIVED, S.QUOTED, S.DECISION_REQUIRED]
    assert order.s.placed is None
    assert order.s.phase is Phase.AWAITING_APPROVAL
    order.send(CommandReceived(command=command("approve"), at=at(4)))
    order.send(OrderPlaced(placed=UP42_PLACED, at=at(5)))
    assert order.last().status is S.FEASIBILITY_PENDING
    effects = poll(order, RemotePhase.QUOTATION_READY, 6, quotation=quotation("q-1", 300, "CREDITS"))
    assert [c.op for c in calls(effects)] == [Op.DECIDE_QUOTATION], "the approved estimate covers it"


def test_provider_cancellation_is_cancelled_not_user_cancelled() -> None:
    order = created()
    poll(order, RemotePhase.CANCELLED, 5)
    assert order.last().status is S.CANCELLED
    assert order.last().stapi_status is StapiStatus.CANCELLED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "PROVIDER_CANCELLED"


def test_provider_failure_and_rejection_end_the_order() -> None:
    failed = created()
    poll(failed, RemotePhase.FAILED, 5)
    assert failed.last().status is S.FAILED
    assert failed.last().reason is not None
    assert must(failed.last().reason).code == "PROVIDER_ERROR"
    rejected = created()
    poll(rejected, RemotePhase.REJECTED, 5)
    assert rejected.last().status is S.REJECTED
    assert rejected.last().reason is not None
    assert must(rejected.last().reason).code == "PROVIDER_REJECTED"


def test_option_choice_refused_by_provider_fails_the_order() -> None:
    order = created()
    poll(order, RemotePhase.AWAITING_OPTION, 5, study=study())
    order.send(CommandReceived(command=command("select-feasibility-option", optionId="opt-1"), at=at(6)))
    error = ErrorInfo(reason_code="PROVIDER_REJECTED", message="study already decided", rejected=True)
    order.send(StepFailed(op=Op.CHOOSE_OPTION, error=error, target="opt-1", at=at(7)))
    assert order.last().status is S.FAILED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "PROVIDER_REJECTED"


def test_option_chosen_elsewhere_leaves_the_decision() -> None:
    order = created()
    poll(order, RemotePhase.AWAITING_OPTION, 5, study=study())
    effects = poll(order, RemotePhase.AWAITING_QUOTATION, 6, study=study(decision=StudyDecision.ACCEPTED))
    assert order.last().status is S.FEASIBLE
    assert order.s.phase is Phase.AWAITING_PROVIDER
    assert any(e.kind == "unschedule" and e.timer.value == "decision_deadline" for e in effects)
