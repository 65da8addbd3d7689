"""Progress repeats, acquisition events and their ``n``, the policy, acquisition commands."""

from __future__ import annotations

from typing import Any

from worker.domain.model import (
    AcquisitionsListed,
    CommandReceived,
    ErrorInfo,
    Op,
    Polled,
    StepFailed,
    TimerFired,
    TimerKind,
    WriteDone,
)
from worker.domain.ports import RemotePhase
from worker.events.models import AcquisitionStatus as A
from worker.events.models import DecidedBy
from worker.events.status import OrderStatus as S

from .builders import (
    Order,
    acquisition,
    at,
    calls,
    command,
    counts,
    deliver,
    must,
    request,
    snapshot,
    to_placed,
)

AUTO = {"autoAccept": {"maxCloudCover": 20, "maxIncidenceAngle": 25}}


def tracked(policy: dict[str, Any] | None = None) -> Order:
    extra: dict[str, Any] = {"acquisitionPolicy": policy} if policy is not None else {}
    order = to_placed(request(**extra))
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    return order


def test_progress_is_repeated_only_when_it_changes() -> None:
    order = to_placed(request())
    order.send(
        Polled(snapshot=snapshot(RemotePhase.ACTIVE, counts=counts(proposed=1), coverage_pct=10), at=at(5))
    )
    assert order.last().status is S.ORDERED
    assert order.last().previous_status is S.ORDERED
    assert order.last().progress is not None
    assert must(order.last().progress).coverage_pct == 10
    n = len(order.events)
    order.send(
        Polled(snapshot=snapshot(RemotePhase.ACTIVE, counts=counts(proposed=1), coverage_pct=10), at=at(6))
    )
    assert len(order.events) == n
    order.send(
        Polled(snapshot=snapshot(RemotePhase.ACQUIRING, counts=counts(proposed=1), coverage_pct=30), at=at(7))
    )
    assert len(order.events) == n + 1, "the transition carries the new progress: no extra repeat"
    assert order.last().status is S.IN_PROGRESS
    assert order.last().progress is not None
    assert must(order.last().progress).coverage_pct == 30


def test_marker_change_lists_acquisitions_once() -> None:
    order = tracked()
    assert order.calls[-1].op is Op.LIST_ACQUISITIONS
    before = len(order.calls)
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(6)))
    assert len(order.calls) == before
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m1"), at=at(7)))
    assert order.calls[-1].op is Op.LIST_ACQUISITIONS
    assert order.s.change_marker == "m1"


def test_acquisition_events_only_on_change_with_contiguous_n() -> None:
    order = tracked()
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1"), acquisition("s2")], at=at(6)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1"), acquisition("s2")], at=at(7)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED), acquisition("s2")], at=at(8)))
    seen = [(e.acquisition_id, e.status, n, e.decided_by) for e, n in order.acquisition_events]
    assert seen == [
        ("s1", A.PROPOSED, 1, DecidedBy.PROVIDER),
        ("s2", A.PROPOSED, 1, DecidedBy.PROVIDER),
        ("s1", A.VALIDATED, 2, DecidedBy.PROVIDER),
    ]
    first = order.acquisition_events[0][0]
    assert first.cloud_cover == 5.0
    assert first.provider_refs["segmentId"] == "s1"
    assert first.provider_refs["salesOrderId"] == "SO-1"
    assert order.last().progress is not None
    assert must(order.last().progress).acquisitions.validated == 1
    assert must(order.last().progress).acquisitions.proposed == 1


def test_policy_accepts_within_limits_one_decision_at_a_time() -> None:
    order = tracked(AUTO)
    effects = order.send(
        AcquisitionsListed(acquisitions=[acquisition("s1"), acquisition("s2", cloud=10)], at=at(6))
    )
    assert [(c.op, c.target, c.accept) for c in calls(effects)] == [(Op.DECIDE_ACQUISITION, "s1", True)]
    effects = order.send(WriteDone(op=Op.DECIDE_ACQUISITION, target="s1", at=at(7)))
    assert [(c.target, c.accept) for c in calls(effects)] == [("s2", True)]
    event, n = order.acquisition_events[-1]
    assert (event.acquisition_id, event.status, event.decided_by, n) == (
        "s1",
        A.ACCEPTED,
        DecidedBy.POLICY,
        2,
    )
    assert order.last().progress is not None
    assert must(order.last().progress).acquisitions.validated == 1
    order.send(WriteDone(op=Op.DECIDE_ACQUISITION, target="s2", at=at(8)))
    # The provider catches up: the same decision is never sent again, VALIDATED is still ours.
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED), acquisition("s2")], at=at(9)))
    assert [c.op for c in order.calls].count(Op.DECIDE_ACQUISITION) == 2
    last, n = order.acquisition_events[-1]
    assert (last.acquisition_id, last.status, last.decided_by, n) == ("s1", A.VALIDATED, DecidedBy.POLICY, 3)


def test_policy_refuses_outside_limits_only_with_auto_refuse() -> None:
    waiting = tracked(AUTO)
    effects = waiting.send(AcquisitionsListed(acquisitions=[acquisition("s1", cloud=80)], at=at(6)))
    assert calls(effects) == []
    refusing = tracked({**AUTO, "autoRefuse": True})
    effects = refusing.send(AcquisitionsListed(acquisitions=[acquisition("s1", cloud=80)], at=at(6)))
    assert [(c.target, c.accept) for c in calls(effects)] == [("s1", False)]
    refusing.send(WriteDone(op=Op.DECIDE_ACQUISITION, target="s1", at=at(7)))
    event, _ = refusing.acquisition_events[-1]
    assert event.status is A.REFUSED
    assert event.decided_by is DecidedBy.POLICY


def test_no_policy_or_unknown_values_never_decide() -> None:
    order = tracked()
    assert calls(order.send(AcquisitionsListed(acquisitions=[acquisition("s1")], at=at(6)))) == []
    unknown = tracked({**AUTO, "autoRefuse": True})
    effects = unknown.send(AcquisitionsListed(acquisitions=[acquisition("s1", cloud=None)], at=at(6)))
    assert calls(effects) == []


def test_acquisition_commands_decide_and_misfits_are_answered() -> None:
    order = tracked()
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1"), acquisition("s2")], at=at(6)))
    effects = order.send(
        CommandReceived(command=command("refuse-acquisition", "c1", acquisitionId="s1"), at=at(7))
    )
    assert [(c.target, c.accept) for c in calls(effects)] == [("s1", False)]
    # s2 waits for its turn (one decision in flight per order).
    assert (
        calls(
            order.send(
                CommandReceived(command=command("accept-acquisition", "c2", acquisitionId="s2"), at=at(8))
            )
        )
        == []
    )
    effects = order.send(WriteDone(op=Op.DECIDE_ACQUISITION, target="s1", at=at(9)))
    assert [(c.target, c.accept) for c in calls(effects)] == [("s2", True)]
    assert order.acquisition_events[-1][0].decided_by is DecidedBy.COMMAND
    order.send(CommandReceived(command=command("accept-acquisition", "c3", acquisitionId="s1"), at=at(10)))
    assert order.last().reason is not None
    assert must(order.last().reason).code == "COMMAND_REJECTED"


def test_decision_refused_by_provider_is_recorded_and_never_resent() -> None:
    order = tracked(AUTO)
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1")], at=at(6)))
    error = ErrorInfo(reason_code="PROVIDER_REJECTED", message="already decided", rejected=True)
    order.send(StepFailed(op=Op.DECIDE_ACQUISITION, error=error, target="s1", at=at(7)))
    assert order.s.intent is None
    assert order.s.acquisitions["s1"].decision_sent
    assert order.s.status is S.IN_PROGRESS
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(8)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1")], at=at(9)))
    assert [c.op for c in order.calls].count(Op.DECIDE_ACQUISITION) == 1


def test_decision_in_doubt_is_resent_only_after_a_listing_shows_it_missing() -> None:
    order = tracked(AUTO)
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1")], at=at(6)))
    unknown = ErrorInfo(reason_code="PROVIDER_ERROR", message="timeout", outcome_unknown=True)
    order.send(StepFailed(op=Op.DECIDE_ACQUISITION, error=unknown, target="s1", at=at(7)))
    effects = order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(8)))
    assert [c.op for c in calls(effects)] == [Op.LIST_ACQUISITIONS]
    effects = order.send(AcquisitionsListed(acquisitions=[acquisition("s1")], at=at(8)))
    assert [(c.op, c.target) for c in calls(effects)] == [(Op.DECIDE_ACQUISITION, "s1")]
    assert order.s.intent is not None
    assert order.s.intent.attempt == 2


def test_listing_after_completion_still_publishes_acquisitions() -> None:
    order = tracked()
    effects = order.send(
        Polled(
            snapshot=snapshot(RemotePhase.COMPLETED, change_marker="m9", counts=counts(validated=1)), at=at(9)
        )
    )
    deliver(order, "item-1", 9)
    assert not order.s.terminal, "the final listing has not answered"
    order.send(AcquisitionsListed(acquisitions=[], at=at(9.5)))
    assert order.s.terminal
    assert [c.op for c in calls(effects)] == [Op.LIST_ACQUISITIONS]
    n = len(order.events)
    order.send(AcquisitionsListed(acquisitions=[acquisition("s9", A.DELIVERED)], at=at(10)))
    assert order.acquisition_events[-1][0].acquisition_id == "s9"
    assert len(order.events) == n
