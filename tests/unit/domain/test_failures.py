"""Provider failures: retries and backoff, reasons, and reconciliation of writes in doubt."""

from __future__ import annotations

import pytest

from worker.domain.flows.common import backoff_seconds
from worker.domain.model import (
    CommandReceived,
    ErrorInfo,
    IntentKind,
    Op,
    OrderNotFound,
    OrderPlaced,
    Phase,
    Polled,
    Settings,
    StepFailed,
    TimerFired,
    TimerKind,
    Validated,
    WriteDone,
)
from worker.domain.ports import PlacedOrder, QuotationDecision, RemotePhase
from worker.events.status import OrderStatus as S

from .builders import (
    Order,
    at,
    calls,
    command,
    must,
    placed,
    quotation,
    request,
    schedules,
    snapshot,
    start,
    to_placed,
    to_quoted,
)

UNAVAILABLE = ErrorInfo(reason_code="PROVIDER_ERROR", message="503 from provider", retriable=True)
UNKNOWN = ErrorInfo(reason_code="PROVIDER_ERROR", message="read timeout", outcome_unknown=True)
SETTINGS = Settings(settle_seconds=60, max_step_retries=3, retry_base_seconds=10, max_place_attempts=2)


def test_retriable_read_is_retried_with_growing_backoff_then_exhausted() -> None:
    order = start(request(), SETTINGS)
    delays = []
    for i in range(3):
        minute = 2 + i
        effects = order.send(StepFailed(op=Op.FEASIBILITY, error=UNAVAILABLE, at=at(minute)))
        delays.append((schedules(effects)["retry"] - at(minute)).total_seconds())
        assert order.s.step_retries == i + 1
        assert [c.op for c in calls(order.send(TimerFired(timer=TimerKind.RETRY, at=at(minute + 0.5))))] == [
            Op.FEASIBILITY
        ]
    assert delays[0] >= 10
    assert delays[1] >= 20
    assert delays[2] >= 40
    assert all(d <= base * 1.2 for d, base in zip(delays, (10, 20, 40), strict=True))
    order.send(StepFailed(op=Op.FEASIBILITY, error=UNAVAILABLE, at=at(9)))
    assert order.last().status is S.FAILED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "RETRIES_EXHAUSTED"


def test_backoff_is_deterministic_capped_and_respects_retry_after() -> None:
    state = start(request()).s
    settings = Settings(retry_base_seconds=5, retry_max_seconds=60)
    assert backoff_seconds(state, 3, settings, None) == backoff_seconds(state, 3, settings, None)
    assert backoff_seconds(state, 30, settings, None) == 60
    assert backoff_seconds(state, 1, settings, 120.0) == 120


def test_a_successful_step_resets_the_retry_count() -> None:
    order = Order(SETTINGS)
    from worker.domain.model import RequestReceived

    order.send(RequestReceived(request=request(), at=at(0)))
    order.send(StepFailed(op=Op.VALIDATE, error=UNAVAILABLE, at=at(1)))
    assert order.s.step_retries == 1
    order.send(Validated(at=at(2)))
    assert order.s.step_retries == 0


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ErrorInfo(reason_code="INVALID_REQUEST", message="bad option", rejected=True), "INVALID_REQUEST"),
        (ErrorInfo(reason_code="PROVIDER_NOT_CONFIGURED", message="no key"), "PROVIDER_NOT_CONFIGURED"),
        (
            ErrorInfo(reason_code="NOT_FEASIBLE", message="no sensor", rejected=True, not_feasible=True),
            "NOT_FEASIBLE",
        ),
        (ErrorInfo(reason_code="PROVIDER_REJECTED", message="E2203", rejected=True), "PROVIDER_REJECTED"),
    ],
)
def test_refusals_before_placement_are_rejected_with_their_code(error: ErrorInfo, code: str) -> None:
    order = start(request())
    order.send(StepFailed(op=Op.FEASIBILITY, error=error, at=at(2)))
    assert order.last().status is S.REJECTED
    assert order.last().reason is not None
    assert must(order.last().reason).code == code
    assert must(order.last().reason).details["operation"] == "feasibility"


def test_non_retriable_protocol_error_fails() -> None:
    order = start(request())
    order.send(
        StepFailed(op=Op.FEASIBILITY, error=ErrorInfo(reason_code="PROVIDER_ERROR", message="?"), at=at(2))
    )
    assert order.last().status is S.FAILED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "PROVIDER_ERROR"


def test_place_order_refused_is_rejected_and_nothing_is_placed() -> None:
    order = to_quoted(request())
    order.send(
        StepFailed(
            op=Op.PLACE_ORDER,
            error=ErrorInfo(reason_code="PROVIDER_REJECTED", message="no", rejected=True),
            at=at(4),
        )
    )
    assert order.last().status is S.REJECTED
    assert order.s.placed is None
    assert order.s.intent is None


def test_stale_failures_are_ignored() -> None:
    order = to_placed(request())
    before = order.s
    assert order.send(StepFailed(op=Op.VALIDATE, error=UNAVAILABLE, at=at(9))) == []
    assert order.send(StepFailed(op=Op.CANCEL, error=UNAVAILABLE, at=at(9))) == []
    assert order.s is before


def _in_doubt() -> Order:
    order = to_quoted(request(), settings=SETTINGS)
    effects = order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
    assert order.s.phase is Phase.RECONCILING
    assert order.s.intent is not None
    assert order.s.intent.outcome_unknown_at == at(4)
    assert schedules(effects) == {"reconcile": at(5)}
    assert [c.op for c in calls(order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(5))))] == [
        Op.FIND_ORDER
    ]
    return order


def test_outcome_unknown_placement_found_proceeds_as_placed() -> None:
    order = _in_doubt()
    order.send(OrderPlaced(placed=placed("SO-7"), found=True, at=at(6)))
    assert order.last().status is S.ORDERED
    assert order.last().provider_refs == {"salesOrderId": "SO-7"}
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 1


def test_outcome_unknown_placement_not_found_after_settle_places_again() -> None:
    order = _in_doubt()
    effects = order.send(OrderNotFound(at=at(5)))
    assert [c.op for c in calls(effects)] == [Op.PLACE_ORDER]
    assert order.s.intent is not None
    assert order.s.intent.attempt == 2
    assert order.s.intent.started_at == at(5)
    assert order.s.phase is Phase.PLACING


def test_not_found_too_early_waits_for_the_settle_time() -> None:
    order = _in_doubt()
    effects = order.send(OrderNotFound(at=at(4.5)))
    assert calls(effects) == []
    assert schedules(effects) == {"reconcile": at(5)}
    assert order.s.intent is not None
    assert order.s.intent.attempt == 1


def test_placement_attempts_are_bounded() -> None:
    order = _in_doubt()
    order.send(OrderNotFound(at=at(5)))
    order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(6)))
    order.send(OrderNotFound(at=at(8)))
    assert order.last().status is S.FAILED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "PROVIDER_ERROR"
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 2


def test_retriable_placement_failure_is_reconciled_not_resent() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    effects = order.send(StepFailed(op=Op.PLACE_ORDER, error=UNAVAILABLE, at=at(4)))
    assert calls(effects) == []
    assert "reconcile" in schedules(effects)
    assert order.s.phase is Phase.RECONCILING


def test_reconciliation_reads_retry_without_limit() -> None:
    order = _in_doubt()
    for i in range(10):
        effects = order.send(StepFailed(op=Op.FIND_ORDER, error=UNAVAILABLE, at=at(6 + i)))
        assert "reconcile" in schedules(effects)
    assert order.s.status is S.QUOTED
    assert order.s.phase is Phase.RECONCILING


def _quotation_in_doubt() -> Order:
    order = to_placed(request(mission="PLEIADESNEO"), PlacedOrder(tracking_key="QUO-1", refs={}))
    order.settings = SETTINGS
    q = quotation()
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(10)))
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.ACCEPT_QUOTATION
    order.send(StepFailed(op=Op.DECIDE_QUOTATION, error=UNKNOWN, target="QUO-1", at=at(11)))
    effects = order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(12)))
    assert [c.op for c in calls(effects)] == [Op.GET_ORDER]
    return order


def test_quotation_decision_in_doubt_that_took_effect_proceeds() -> None:
    order = _quotation_in_doubt()
    q = quotation(decision=QuotationDecision.ACCEPTED)
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(13)))
    assert order.last().status is S.ORDERED
    assert order.s.intent is None
    assert [c.op for c in order.calls].count(Op.DECIDE_QUOTATION) == 1


def test_quotation_decision_in_doubt_without_effect_is_resent_once_settled() -> None:
    order = _quotation_in_doubt()
    q = quotation()
    effects = order.send(
        Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(13))
    )
    assert [(c.op, c.target, c.accept) for c in calls(effects)] == [(Op.DECIDE_QUOTATION, "QUO-1", True)]
    assert order.s.intent is not None
    assert order.s.intent.attempt == 2
    order.send(WriteDone(op=Op.DECIDE_QUOTATION, target="QUO-1", at=at(14)))
    assert order.last().status is S.ORDERED


def test_cancel_in_doubt_is_read_back() -> None:
    order = to_placed(request(), settings=SETTINGS)
    order.send(CommandReceived(command=command("cancel"), at=at(10)))
    order.send(StepFailed(op=Op.CANCEL, error=UNKNOWN, at=at(11)))
    effects = order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(12)))
    assert [c.op for c in calls(effects)] == [Op.GET_ORDER]
    order.send(Polled(snapshot=snapshot(RemotePhase.CANCELLED), at=at(13)))
    assert order.last().status is S.CANCELLED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "CANCELLED"
