"""Timers (retry, reconcile, decision deadline, window end) and ``Resumed`` after a restart.

Timers are derived from the state: ``Resumed`` returns the ``Schedule`` effects again and
re-issues the step the order was in; a write in flight is never re-sent on resume, it is read
back first (``FIND_ORDER`` for a placement, ``GET_ORDER`` for a decision or a cancel,
``LIST_ACQUISITIONS`` for an acquisition decision).
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows import deliveries
from worker.domain.flows.common import DECISION_PHASES, S, Step, after, end, nothing, reason, update
from worker.domain.flows.intents import timers_for
from worker.domain.model import (
    CallProvider,
    Effect,
    IntentKind,
    Op,
    OrderState,
    Phase,
    Resumed,
    Schedule,
    Settings,
    TimerFired,
    TimerKind,
)

_READS = {
    Phase.VALIDATING: Op.VALIDATE,
    Phase.FEASIBILITY: Op.FEASIBILITY,
    Phase.ATTEMPTS: Op.ATTEMPTS,
    Phase.PRICING: Op.PRICE,
}
_READ_BACKS = {
    Phase.PLACING: Op.FIND_ORDER,
    Phase.RECONCILING: Op.FIND_ORDER,
    Phase.CHOOSING_OPTION: Op.GET_ORDER,
    Phase.DECIDING_QUOTATION: Op.GET_ORDER,
    Phase.CANCELLING: Op.GET_ORDER,
}
# Before anything can be engaged without us, the end of the window ends the request.
_EXPIRES_AT_WINDOW_END = frozenset(_READS) | DECISION_PHASES | {Phase.OFFERS}


def on_timer(state: OrderState, event: TimerFired, settings: Settings) -> Step:
    match event.timer:
        case TimerKind.RETRY:
            op = _READS.get(state.phase)
            return (state, [CallProvider(op=op)]) if op else nothing(state)
        case TimerKind.RECONCILE:
            call = read_back(state)
            return (state, [call]) if call else nothing(state)
        case TimerKind.DECISION_DEADLINE:
            return _deadline(state, event.at)
        case TimerKind.WINDOW_END:
            return _window_end(state, event.at, settings)
        case TimerKind.DELIVERY_CHECK:
            return deliveries.on_check(state, event, settings)


def read_back(state: OrderState) -> CallProvider | None:
    """The read that tells what became of the write in flight, if any."""
    intent = state.intent
    if intent is None:
        return None
    if intent.kind is IntentKind.DECIDE_ACQUISITION:
        return CallProvider(op=Op.LIST_ACQUISITIONS)
    op = _READ_BACKS.get(state.phase)
    return CallProvider(op=op) if op else None


def _deadline(state: OrderState, at: datetime) -> Step:
    """A customer decision still pending at its deadline: EXPIRED ``DECISION_EXPIRED``."""
    decision = state.decision
    waiting = state.phase in DECISION_PHASES and state.status is S.DECISION_REQUIRED
    if not waiting or decision is None or decision.deadline is None:
        return nothing(state)
    if at < decision.deadline:
        return state, [Schedule(timer=TimerKind.DECISION_DEADLINE, at=decision.deadline)]
    why = reason(
        "DECISION_EXPIRED",
        f"no {decision.kind.value} decision before its deadline",
        deadline=decision.deadline.isoformat(),
        decision=decision.kind.value,
    )
    return end(state, S.EXPIRED, at, why)


def _window_end(state: OrderState, at: datetime, settings: Settings) -> Step:
    """Before ORDERED, the end of the window ends the request (EXPIRED ``WINDOW_EXPIRED``) unless
    a write is in flight (looked at again once it has settled) or the order is placed and the
    provider goes on without us (tracked until its final status)."""
    end_of_window = state.request.window.end
    if state.status in (S.ORDERED, S.IN_PROGRESS):
        return nothing(state)
    if at < end_of_window:
        return state, [Schedule(timer=TimerKind.WINDOW_END, at=end_of_window)]
    if state.intent is not None:
        return state, [Schedule(timer=TimerKind.WINDOW_END, at=after(at, settings.settle_seconds))]
    if state.phase not in _EXPIRES_AT_WINDOW_END:
        return nothing(state)
    why = reason(
        "WINDOW_EXPIRED",
        "the acquisition window ended before the order was placed",
        windowEnd=end_of_window.isoformat(),
    )
    return end(state, S.EXPIRED, at, why)


def on_resumed(state: OrderState, event: Resumed) -> Step:
    """Rebuild the timers and resume the step; a write in flight is read back, never re-sent."""
    effects: list[Effect] = timers_for(state)
    if state.intent is not None and state.intent.outcome_unknown_at is None:
        # The previous owner's write ended with it: treat its outcome as unknown from now. Whether
        # it was sent at all is unknown too, so a re-send after the read-back is not an attempt.
        interrupted = state.intent.model_copy(
            update={
                "outcome_unknown_at": event.at,
                "from_resume": True,
                "interrupted": state.intent.interrupted + 1,
            }
        )
        state = update(state, intent=interrupted)
    call = read_back(state) if state.intent is not None else None
    op = _READS.get(state.phase)
    if call is None and op is not None:
        call = CallProvider(op=op)
    if call is None and state.phase in (Phase.PLACING, Phase.RECONCILING):
        call = CallProvider(op=Op.FIND_ORDER)
    calls = [call] if call else []
    if (
        state.listing_due
        and state.placed is not None
        and not any(c.op is Op.LIST_ACQUISITIONS for c in calls)
    ):
        # The previous owner's acquisition listing ended with it: completion waits for one.
        calls.append(CallProvider(op=Op.LIST_ACQUISITIONS))
    return state, effects + calls
