"""Commands: idempotency, misfits, and every way of cancelling."""

from __future__ import annotations

from worker.domain.decide import decide
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
    WriteDone,
)
from worker.domain.ports import RemotePhase
from worker.events.status import OrderStatus as S
from worker.events.status import StapiStatus

from .builders import (
    at,
    calls,
    command,
    must,
    placed,
    request,
    schedules,
    snapshot,
    start,
    to_placed,
    to_quoted,
)


def test_command_for_an_unknown_request_returns_none() -> None:
    assert decide(None, CommandReceived(command=command("approve"), at=at(0))) == (None, [])


def test_same_command_id_acts_once() -> None:
    order = to_quoted(request(autoApprove=False))
    first = order.send(CommandReceived(command=command("approve", "c-1"), at=at(5)))
    before = order.s
    again = order.send(CommandReceived(command=command("approve", "c-1"), at=at(6)))
    assert [c.op for c in calls(first)] == [Op.PLACE_ORDER]
    assert again == []
    assert order.s is before


def test_commands_seen_is_bounded() -> None:
    order = to_placed(request())
    settings = Settings(commands_remembered=3)
    order.settings = settings
    for i in range(5):
        order.send(CommandReceived(command=command("approve", f"c-{i}"), at=at(10 + i)))
    assert order.s.commands_seen == ["c-2", "c-3", "c-4"]


def test_approve_when_nothing_waits_is_rejected_with_details() -> None:
    order = to_placed(request())
    n = len(order.events)
    effects = order.send(CommandReceived(command=command("approve", issuedBy="bob"), at=at(10)))
    assert effects == []
    assert len(order.events) == n + 1
    event = order.last()
    assert event.status is S.ORDERED
    assert event.previous_status is S.ORDERED
    assert event.sequence == n + 1
    assert event.reason is not None
    assert event.reason.code == "COMMAND_REJECTED"
    assert event.reason.details == {"commandId": "cmd-1", "command": "approve", "issuedBy": "bob"}
    assert order.s.status_since == order.events[n - 1].occurred_at, "a repeat is not a transition"


def test_reject_select_and_acquisition_misfits() -> None:
    order = to_placed(request())
    order.send(CommandReceived(command=command("reject", "c-1"), at=at(10)))
    order.send(CommandReceived(command=command("select-feasibility-option", "c-2", optionId="x"), at=at(11)))
    order.send(CommandReceived(command=command("accept-acquisition", "c-3", acquisitionId="nope"), at=at(12)))
    assert [e.reason.code for e in order.events[-3:] if e.reason] == ["COMMAND_REJECTED"] * 3


def test_command_on_a_finished_order_repeats_the_terminal_status() -> None:
    order = to_quoted(request(autoApprove=False))
    order.send(CommandReceived(command=command("reject", "c-1"), at=at(5)))
    effects = order.send(CommandReceived(command=command("cancel", "c-2"), at=at(6)))
    assert effects == []
    assert order.statuses()[-2:] == [S.REJECTED, S.REJECTED]
    assert order.last().reason is not None
    assert must(order.last().reason).code == "COMMAND_REJECTED"


def test_cancel_before_placement_cancels_without_a_provider_call() -> None:
    order = start(request())
    effects = order.send(CommandReceived(command=command("cancel", reason="changed plans"), at=at(2)))
    assert calls(effects) == []
    assert order.last().status is S.CANCELLED
    assert order.last().stapi_status is StapiStatus.USER_CANCELLED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "CANCELLED"
    assert must(order.last().reason).message == "changed plans"
    assert order.s.terminal


def test_cancel_after_placement_cancels_at_the_provider() -> None:
    order = to_placed(request())
    effects = order.send(CommandReceived(command=command("cancel"), at=at(10)))
    assert [c.op for c in calls(effects)] == [Op.CANCEL]
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.CANCEL
    assert order.s.phase is Phase.CANCELLING
    order.send(WriteDone(op=Op.CANCEL, at=at(11)))
    assert order.last().status is S.CANCELLED
    assert order.last().stapi_status is StapiStatus.USER_CANCELLED
    assert order.last().reason is not None
    assert must(order.last().reason).details["commandId"] == "cmd-1"


def test_cancel_refused_by_the_provider_goes_on_tracking() -> None:
    order = to_placed(request())
    order.send(CommandReceived(command=command("cancel"), at=at(10)))
    error = ErrorInfo(
        reason_code="PROVIDER_REJECTED", message="too late to cancel", rejected=True, provider_code="E42"
    )
    order.send(StepFailed(op=Op.CANCEL, error=error, at=at(11)))
    assert order.last().status is S.ORDERED
    assert order.last().previous_status is S.ORDERED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "COMMAND_REJECTED"
    assert must(order.last().reason).message == "too late to cancel"
    assert must(order.last().reason).details["providerCode"] == "E42"
    assert order.s.phase is Phase.AWAITING_PROVIDER
    assert order.s.intent is None
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING), at=at(12)))
    assert order.last().status is S.IN_PROGRESS


def test_cancel_refused_during_a_decision_returns_to_the_decision_and_its_deadline() -> None:
    from worker.domain.model import FeasibilityAnswered, Priced

    from .builders import feasibility, quotation, quote

    order = start(request(mission="PLEIADESNEO", autoApprove=False))
    order.send(FeasibilityAnswered(result=feasibility(), at=at(2)))
    order.send(Priced(quote=quote(), at=at(3)))
    order.send(CommandReceived(command=command("approve", "c-a"), at=at(4)))
    order.send(OrderPlaced(placed=placed("QUO-1"), at=at(5)))
    q = quotation(amount=2000, valid_until=at(700))
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(6)))
    order.send(CommandReceived(command=command("cancel", "c-c"), at=at(7)))
    error = ErrorInfo(reason_code="PROVIDER_REJECTED", message="no", rejected=True)
    effects = order.send(StepFailed(op=Op.CANCEL, error=error, at=at(8)))
    assert order.s.phase is Phase.AWAITING_QUOTATION_DECISION
    assert schedules(effects)["decision_deadline"] == at(700)
    assert order.last().decision is not None, "the repeat still shows the pending decision"


def test_cancel_with_a_placement_in_flight_waits_for_its_outcome() -> None:
    order = to_quoted(request())
    assert order.s.phase is Phase.PLACING
    effects = order.send(CommandReceived(command=command("cancel"), at=at(4)))
    assert effects == []
    assert order.s.cancel_requested_by == "cmd-1"
    assert order.s.intent is not None
    assert order.s.intent.kind is IntentKind.PLACE_ORDER
    effects = order.send(OrderPlaced(placed=placed(), at=at(5)))
    assert order.last().status is S.ORDERED, "the order exists: its ids are published"
    assert [c.op for c in calls(effects)] == [Op.CANCEL]
    order.send(WriteDone(op=Op.CANCEL, at=at(6)))
    assert order.last().status is S.CANCELLED
    assert order.last().stapi_status is StapiStatus.USER_CANCELLED


def test_second_cancel_while_one_waits_is_rejected() -> None:
    order = to_quoted(request())
    order.send(CommandReceived(command=command("cancel", "c-1"), at=at(4)))
    order.send(CommandReceived(command=command("cancel", "c-2"), at=at(5)))
    assert order.last().reason is not None
    assert must(order.last().reason).code == "COMMAND_REJECTED"
    assert order.s.cancel_requested_by == "c-1"


def test_cancel_during_reconciliation_ends_cancelled_when_nothing_was_placed() -> None:
    order = to_quoted(request())
    unknown = ErrorInfo(reason_code="PROVIDER_ERROR", message="timeout", outcome_unknown=True)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=unknown, at=at(4)))
    order.send(CommandReceived(command=command("cancel"), at=at(5)))
    order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(5)))
    early = order.send(OrderNotFound(at=at(4.5)))
    assert order.last().status is not S.CANCELLED
    assert schedules(early)
    order.send(OrderNotFound(at=at(10)))
    assert order.last().status is S.CANCELLED
    assert order.last().stapi_status is StapiStatus.USER_CANCELLED
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 1
