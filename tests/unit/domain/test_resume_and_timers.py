"""``Resumed`` in every phase, decision deadlines and the window end."""

from __future__ import annotations

import pytest

from worker.domain.model import (
    CommandReceived,
    ErrorInfo,
    FeasibilityAnswered,
    Op,
    OrderNotFound,
    OrderPlaced,
    Phase,
    Polled,
    RequestReceived,
    Resumed,
    StepFailed,
    TimerFired,
    TimerKind,
)
from worker.domain.ports import RemotePhase
from worker.events.models import AcquisitionStatus
from worker.events.status import OrderStatus as S

from .builders import (
    WINDOW_END,
    Order,
    acquisition,
    at,
    calls,
    command,
    feasibility,
    idle,
    must,
    placed,
    request,
    schedules,
    snapshot,
    start,
    study,
    to_placed,
    to_quoted,
)


@pytest.mark.parametrize(
    ("minute_events", "phase", "op"),
    [
        (0, Phase.VALIDATING, Op.VALIDATE),
        (1, Phase.FEASIBILITY, Op.FEASIBILITY),
        (2, Phase.PRICING, Op.PRICE),
    ],
)
def test_resume_reissues_the_current_read(minute_events: int, phase: Phase, op: Op) -> None:
    order = Order()
    order.send(RequestReceived(request=request(), at=at(0)))
    if minute_events >= 1:
        from worker.domain.model import Validated

        order.send(Validated(at=at(1)))
    if minute_events >= 2:
        order.send(FeasibilityAnswered(result=feasibility(), at=at(2)))
    assert order.s.phase is phase
    effects = order.send(Resumed(at=at(30)))
    assert [c.op for c in calls(effects)] == [op]
    assert schedules(effects) == {"window_end": WINDOW_END}


def test_resume_while_placing_looks_for_the_order_and_never_places() -> None:
    order = to_quoted(request())
    assert order.s.phase is Phase.PLACING
    effects = order.send(Resumed(at=at(4)))
    assert [c.op for c in calls(effects)] == [Op.FIND_ORDER]
    assert order.s.intent is not None
    assert order.s.intent.outcome_unknown_at == at(4)
    # Found nothing right away: wait for the settle period instead of placing.
    early = order.send(OrderNotFound(at=at(4.2)))
    assert calls(early) == []
    assert "reconcile" in schedules(early)
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 1


def test_resume_while_reconciling_looks_for_the_order() -> None:
    order = to_quoted(request())
    unknown = ErrorInfo(reason_code="PROVIDER_ERROR", message="timeout", outcome_unknown=True)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=unknown, at=at(4)))
    effects = order.send(Resumed(at=at(5)))
    assert [c.op for c in calls(effects)] == [Op.FIND_ORDER]


def test_resume_while_deciding_reads_back() -> None:
    order = to_placed(request())
    order.send(CommandReceived(command=command("cancel"), at=at(10)))
    effects = order.send(Resumed(at=at(11)))
    assert [c.op for c in calls(effects)] == [Op.GET_ORDER]


def test_resume_while_awaiting_a_decision_rebuilds_its_deadline_and_calls_nothing() -> None:
    order = start(request(mission="PLEIADESNEO", autoApprove=False))
    order.send(FeasibilityAnswered(result=feasibility(expires_at=at(500)), at=at(2)))
    from worker.domain.model import Priced

    from .builders import quote

    order.send(Priced(quote=quote(), at=at(3)))
    assert order.s.phase is Phase.AWAITING_APPROVAL
    effects = order.send(Resumed(at=at(4)))
    assert calls(effects) == []
    assert schedules(effects) == {"window_end": WINDOW_END, "decision_deadline": at(500)}


def test_resume_of_a_tracked_order_calls_nothing() -> None:
    order = to_placed(request())
    effects = order.send(Resumed(at=at(20)))
    assert calls(effects) == []
    assert schedules(effects) == {}


def test_resume_with_an_acquisition_decision_in_flight_lists_acquisitions_first() -> None:
    order = to_placed(request(acquisitionPolicy={"autoAccept": {"maxCloudCover": 20}}))
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="1"), at=at(5)))
    from worker.domain.model import AcquisitionsListed

    order.send(AcquisitionsListed(acquisitions=[acquisition("seg-1")], at=at(6)))
    assert order.s.intent is not None
    effects = order.send(Resumed(at=at(7)))
    assert [c.op for c in calls(effects)] == [Op.LIST_ACQUISITIONS]
    order.send(AcquisitionsListed(acquisitions=[acquisition("seg-1", AcquisitionStatus.VALIDATED)], at=at(8)))
    assert idle(order)
    assert [c.op for c in order.calls].count(Op.DECIDE_ACQUISITION) == 1
    assert order.s.acquisitions["seg-1"].decision_sent


def test_resume_of_a_finished_order_does_nothing() -> None:
    order = to_quoted(request(dryRun=True))
    before = order.s
    assert order.send(Resumed(at=at(9))) == []
    assert order.s is before


def test_window_end_before_ordering_expires() -> None:
    order = start(request())
    order.send(TimerFired(timer=TimerKind.WINDOW_END, at=WINDOW_END))
    assert order.last().status is S.EXPIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "WINDOW_EXPIRED"


def test_window_end_while_placing_waits_for_the_outcome() -> None:
    order = to_quoted(request())
    effects = order.send(TimerFired(timer=TimerKind.WINDOW_END, at=WINDOW_END))
    assert "window_end" in schedules(effects)
    assert order.s.status is S.QUOTED


def test_window_end_after_ordering_keeps_tracking() -> None:
    order = to_placed(request())
    assert order.send(TimerFired(timer=TimerKind.WINDOW_END, at=WINDOW_END)) == []
    assert order.s.status is S.ORDERED


def test_early_window_timer_is_set_again() -> None:
    order = start(request())
    effects = order.send(TimerFired(timer=TimerKind.WINDOW_END, at=at(10)))
    assert schedules(effects) == {"window_end": WINDOW_END}
    assert order.s.status is S.RECEIVED


def test_request_with_a_past_window_expires_at_once() -> None:
    order = Order()
    order.send(RequestReceived(request=request(), at=WINDOW_END))
    assert order.statuses() == [S.RECEIVED, S.EXPIRED]


def test_completed_after_the_window_with_nothing_validated_is_expired() -> None:
    order = to_placed(request())
    from .builders import counts

    order.send(Polled(snapshot=snapshot(RemotePhase.COMPLETED, counts=counts(refused=2)), at=WINDOW_END))
    assert order.last().status is S.EXPIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "WINDOW_EXPIRED"


def test_option_decision_expires() -> None:
    order = start(request(provider="up42"))
    from worker.domain.model import Priced

    from .builders import quote

    order.send(Priced(quote=quote(10, "CREDITS"), at=at(2)))
    order.send(OrderPlaced(placed=placed("ord-1"), at=at(3)))
    order.send(
        Polled(
            snapshot=snapshot(RemotePhase.AWAITING_OPTION, "ord-1", study=study(deadline=at(50))), at=at(4)
        )
    )
    order.send(TimerFired(timer=TimerKind.DECISION_DEADLINE, at=at(50)))
    assert order.last().status is S.EXPIRED
    assert order.last().reason is not None
    assert must(order.last().reason).code == "DECISION_EXPIRED"


def test_stale_deadline_timer_is_ignored() -> None:
    order = to_placed(request())
    before = order.s
    assert order.send(TimerFired(timer=TimerKind.DECISION_DEADLINE, at=at(99))) == []
    assert order.send(TimerFired(timer=TimerKind.RETRY, at=at(99))) == []
    assert order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(99))) == []
    assert order.s is before


def _restart_then_not_found(order: Order, minute: float) -> list[Op]:
    order.send(Resumed(at=at(minute)))
    return [c.op for c in calls(order.send(OrderNotFound(at=at(minute + 1))))]


def test_restarts_during_placement_do_not_use_up_attempts() -> None:
    order = to_quoted(request())
    for n in range(6):  # more restarts than max_place_attempts
        assert _restart_then_not_found(order, 10 + 10 * n) == [Op.PLACE_ORDER]
        assert order.s.intent is not None
        assert order.s.intent.attempt == 1
    assert order.s.status is S.QUOTED


def test_a_write_interrupted_too_often_gives_up_without_placing_again() -> None:
    order = to_quoted(request())
    limit = 10  # Settings().max_interruptions
    for n in range(limit):
        _restart_then_not_found(order, 10 + 10 * n)
    placed_before = [c.op for c in order.calls].count(Op.PLACE_ORDER)
    assert _restart_then_not_found(order, 500) == []
    assert order.s.status is S.FAILED
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == placed_before


def test_an_ambiguous_answer_after_a_restart_still_counts_as_an_attempt() -> None:
    order = to_quoted(request())
    _restart_then_not_found(order, 10)
    unknown = ErrorInfo(reason_code="PROVIDER_ERROR", message="timeout", outcome_unknown=True)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=unknown, at=at(12)))
    assert [c.op for c in calls(order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(14))))] == [
        Op.FIND_ORDER
    ]
    order.send(OrderNotFound(at=at(14.1)))
    assert order.s.intent is not None
    assert order.s.intent.attempt == 2
