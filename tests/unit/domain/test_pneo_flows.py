"""Pléiades Neo flows: placement returns a quotation that is accepted, asked for, or refused."""

from __future__ import annotations

from typing import Any

from worker.domain.model import (
    AttemptsFound,
    CommandReceived,
    FeasibilityAnswered,
    IntentKind,
    Op,
    OrderPlaced,
    Phase,
    Polled,
    Priced,
    TimerFired,
    TimerKind,
    WriteDone,
)
from worker.domain.ports import PlacedOrder, QuotationDecision, RemotePhase
from worker.events.models import Automation, DecisionKind, OrderRequest
from worker.events.status import OrderStatus as S

from .builders import (
    Order,
    at,
    attempt,
    calls,
    command,
    feasibility,
    idle,
    must,
    quotation,
    quote,
    request,
    schedules,
    snapshot,
    start,
    unschedules,
)

NEO_PLACED = PlacedOrder(tracking_key="QUO-1", refs={"quotationId": "QUO-1"})


def neo(programming_type: str = "ONEPLAN", **extra: Any) -> OrderRequest:
    return request(mission="PLEIADESNEO", programming_type=programming_type, **extra)


def placed_neo(req: OrderRequest, amount: float = 1000.0, expires_in: float = 600) -> Order:
    order = start(req)
    order.send(FeasibilityAnswered(result=feasibility(expires_at=at(expires_in)), at=at(2)))
    order.send(Priced(quote=quote(amount), at=at(3)))
    if order.s.phase is Phase.PLACING:
        order.send(OrderPlaced(placed=NEO_PLACED, at=at(4)))
    return order


def ready(order: Order, amount: float = 1000.0, minute: float = 10, valid_until: float | None = None) -> list:  # type: ignore[type-arg]
    q = quotation(amount=amount, valid_until=at(valid_until) if valid_until is not None else None)
    return order.send(
        Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(minute))
    )


def test_placement_stays_quoted_and_a_quotation_within_budget_is_accepted() -> None:
    order = placed_neo(neo(budget={"maxAmount": 2000, "currency": "EUR"}))
    assert order.statuses() == [S.RECEIVED, S.FEASIBLE, S.QUOTED]
    assert order.s.phase is Phase.AWAITING_PROVIDER
    assert order.s.tracking
    order.send(Polled(snapshot=snapshot(RemotePhase.AWAITING_QUOTATION, "QUO-1"), at=at(5)))
    assert len(order.events) == 3
    effects = ready(order)
    decide = calls(effects)
    assert [(c.op, c.target, c.accept) for c in decide] == [(Op.DECIDE_QUOTATION, "QUO-1", True)]
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.ACCEPT_QUOTATION
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="QUO-1", at=at(11)))
    assert order.statuses()[-1] is S.ORDERED
    assert order.last().provider_refs == {"quotationId": "QUO-1"}
    assert idle(order)
    assert order.s.phase is Phase.AWAITING_PROVIDER


def test_quotation_over_budget_asks_with_its_validity_as_deadline_then_approve_accepts() -> None:
    order = placed_neo(neo(budget={"maxAmount": 1500, "currency": "EUR"}))
    effects = ready(order, amount=1800, valid_until=900)
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().decision is not None
    assert must(order.last().decision).kind is DecisionKind.APPROVE_PRICE
    assert must(order.last().decision).deadline == at(900)
    assert order.last().price is not None
    assert must(order.last().price).amount == 1800
    assert order.last().reason is not None
    assert must(order.last().reason).code == "OVER_BUDGET"
    assert schedules(effects) == {"decision_deadline": at(900)}
    assert order.s.phase is Phase.AWAITING_QUOTATION_DECISION
    assert ready(order, amount=1800, valid_until=900, minute=12) == [], "same quotation: nothing new"
    effects = order.send(CommandReceived(command=command("approve"), at=at(20)))
    assert [(c.op, c.accept) for c in calls(effects)] == [(Op.DECIDE_QUOTATION, True)]
    assert "decision_deadline" in unschedules(effects)
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="QUO-1", at=at(21)))
    assert order.last().status is S.ORDERED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "APPROVED"


def test_reject_refuses_the_quotation_at_the_provider_first() -> None:
    order = placed_neo(neo(autoApprove=False, budget={"maxAmount": 5000, "currency": "EUR"}))
    order.send(CommandReceived(command=command("approve", "c-approve"), at=at(5)))
    order.send(OrderPlaced(placed=NEO_PLACED, at=at(6)))
    assert order.statuses()[-2:] == [S.DECISION_REQUIRED, S.QUOTED]
    ready(order, amount=1200)  # above the approved 1000
    assert order.last().status is S.DECISION_REQUIRED
    effects = order.send(CommandReceived(command=command("reject", "c-reject"), at=at(20)))
    assert [(c.op, c.target, c.accept) for c in calls(effects)] == [(Op.DECIDE_QUOTATION, "QUO-1", False)]
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.REFUSE_QUOTATION
    assert order.last().status is S.DECISION_REQUIRED, "nothing ends before the provider knows"
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="QUO-1", at=at(21)))
    assert order.last().status is S.REJECTED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "DECLINED"
    assert must(order.last().reason).details["commandId"] == "c-reject"


def test_a_price_approved_before_placement_covers_an_equal_quotation() -> None:
    order = placed_neo(neo(budget={"maxAmount": 500, "currency": "EUR"}), amount=1000)
    assert order.last().status is S.DECISION_REQUIRED
    assert must(order.last().decision).deadline == at(600), "feasibility expiry"
    order.send(CommandReceived(command=command("approve"), at=at(5)))
    order.send(OrderPlaced(placed=NEO_PLACED, at=at(6)))
    effects = ready(order, amount=1000)
    assert [(c.op, c.accept) for c in calls(effects)] == [(Op.DECIDE_QUOTATION, True)]


def test_quotation_decision_expires_at_its_deadline() -> None:
    order = placed_neo(neo(autoApprove=False))
    order.send(CommandReceived(command=command("approve"), at=at(5)))
    order.send(OrderPlaced(placed=NEO_PLACED, at=at(6)))
    ready(order, amount=1500, valid_until=100)
    early = order.send(TimerFired(timer=TimerKind.DECISION_DEADLINE, at=at(99)))
    assert schedules(early) == {"decision_deadline": at(100)}, "an early timer is set again"
    assert order.last().status is S.DECISION_REQUIRED
    order.send(TimerFired(timer=TimerKind.DECISION_DEADLINE, at=at(100)))
    assert order.last().status is S.EXPIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "DECISION_EXPIRED"


def test_quotation_accepted_elsewhere_is_ordered() -> None:
    order = placed_neo(neo())
    q = quotation(decision=QuotationDecision.ACCEPTED)
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(8)))
    assert order.last().status is S.ORDERED
    assert idle(order)


def test_automatic_neo_order_going_active_directly_is_ordered() -> None:
    order = placed_neo(neo())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, "QUO-1"), at=at(8)))
    assert order.statuses()[-3:] == [S.QUOTED, S.ORDERED, S.IN_PROGRESS]


def test_manual_neo_feasibility_is_ordered_anyway_and_pending_until_quotation() -> None:
    order = start(neo())
    order.send(FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=at(2)))
    assert order.s.phase is Phase.PLACING
    order.send(OrderPlaced(placed=NEO_PLACED, at=at(3)))
    assert order.last().status is S.FEASIBILITY_PENDING
    order.send(Polled(snapshot=snapshot(RemotePhase.AWAITING_QUOTATION, "QUO-1"), at=at(4)))
    assert order.last().status is S.FEASIBILITY_PENDING
    ready(order, amount=700)
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="QUO-1", at=at(11)))
    assert order.statuses() == [S.RECEIVED, S.FEASIBLE, S.FEASIBILITY_PENDING, S.ORDERED]
    assert order.last().price is not None
    assert must(order.last().price).amount == 700


def test_pneo_oneday_uses_attempts_then_a_quotation() -> None:
    order = start(neo("ONEDAY"))
    assert order.calls[-1].op is Op.ATTEMPTS
    order.send(AttemptsFound(attempts=[attempt("a1", deadline=at(300))], at=at(2)))
    order.send(Priced(quote=quote(), at=at(3)))
    order.send(OrderPlaced(placed=NEO_PLACED, at=at(4)))
    assert order.statuses() == [S.RECEIVED, S.FEASIBLE, S.QUOTED]
    ready(order)
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="QUO-1", at=at(11)))
    assert order.last().status is S.ORDERED


def test_quotation_refused_at_the_provider_is_rejected_declined() -> None:
    order = placed_neo(neo())
    q = quotation(decision=QuotationDecision.REJECTED)
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(8)))
    assert order.last().status is S.REJECTED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "DECLINED"
