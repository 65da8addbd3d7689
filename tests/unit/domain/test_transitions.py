"""The one transition helper: legal moves only, contiguous sequences, repeats that are no move."""

from __future__ import annotations

import pytest

from worker.domain.decide import decide
from worker.domain.flows.common import repeat, transition, update
from worker.domain.model import OrderState, OutboxStatus, Phase, Priced
from worker.errors import IllegalTransition
from worker.events.models import AcquisitionCounts, Progress, Reason
from worker.events.status import OrderStatus as S

from .builders import at, quote, request, to_placed


def _received() -> OrderState:
    return transition(OrderState(request=request(), received_at=at(0)), S.RECEIVED, at(0))


def test_transition_numbers_events_and_links_the_previous_status() -> None:
    state = transition(_received(), S.FEASIBLE, at(1))
    assert state.sequence == 2
    assert state.status is S.FEASIBLE
    assert state.status_since == at(1)
    assert [item.event.sequence for item in state.outbox if isinstance(item, OutboxStatus)] == [1, 2]
    assert state.last_event is not None
    assert state.last_event.previous_status is S.RECEIVED


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.COMPLETED, S.FEASIBLE),
        (S.IN_PROGRESS, S.ORDERED),
        (S.RECEIVED, S.IN_PROGRESS),
        (S.QUOTED, S.FEASIBLE),
    ],
)
def test_illegal_transitions_raise(current: S, target: S) -> None:
    state = update(_received(), status=current)
    with pytest.raises(IllegalTransition) as raised:
        transition(state, target, at(1))
    assert raised.value.current == current.value
    assert raised.value.target == target.value


def test_decide_raises_on_a_transition_the_contract_forbids() -> None:
    """An inconsistent state (COMPLETED but still pricing) is a bug: it must surface, not pass."""
    state = update(_received(), status=S.COMPLETED, phase=Phase.PRICING, outbox=[])
    with pytest.raises(IllegalTransition):
        decide(state, Priced(quote=quote(), at=at(2)))


def test_repeat_keeps_status_and_since_and_needs_a_status() -> None:
    why = Reason(code="COMMAND_REJECTED", message="nothing waits for approval", details={})
    state = repeat(_received(), at(5), why)
    assert state.status is S.RECEIVED
    assert state.sequence == 2
    assert state.status_since == at(0)
    with pytest.raises(IllegalTransition):
        repeat(OrderState(request=request(), received_at=at(0)), at(1), None)


def test_a_repeat_that_says_nothing_new_is_not_published() -> None:
    received = _received()
    assert repeat(received, at(5), None).sequence == 1, "same status, nothing changed"
    empty = Progress(acquisitions=AcquisitionCounts(), coverage_pct=None, deliveries=0)
    assert repeat(received.model_copy(update={"progress": empty}), at(5), None).sequence == 1, (
        "all-zero progress says no more than none"
    )
    moved = Progress(acquisitions=AcquisitionCounts(validated=1), coverage_pct=None, deliveries=0)
    shown = repeat(received.model_copy(update={"progress": moved}), at(5), None)
    assert shown.sequence == 2, "the progress shows what changed"
    why = Reason(code="TRACKING_ERROR", message="failing", details={"failures": 5})
    once = repeat(shown, at(6), why)
    assert once.sequence == 3
    assert repeat(once, at(7), why).sequence == 3, "the same reason again says nothing new"


def test_state_json_round_trip_keeps_everything() -> None:
    state = to_placed(request()).s
    assert OrderState.model_validate_json(state.model_dump_json()) == state
