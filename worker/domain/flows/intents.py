"""Starting writes, and the timers derived from a state.

A paid or irreversible write (place an order, decide a quotation, choose a study option, decide an
acquisition) and a cancel always start here: the state returned together with the
``CallProvider`` effect already carries the :class:`Intent`, and the shell persists that state
before it performs the effect. That is how "the intent is durable before the paid call" holds.
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows.common import DECISION_PHASES, Step, update
from worker.domain.identity import request_identity
from worker.domain.model import (
    CallProvider,
    Effect,
    Intent,
    IntentKind,
    Op,
    OrderState,
    Phase,
    Schedule,
    TimerKind,
    Unschedule,
)
from worker.events.models import DecidedBy, DecisionKind
from worker.events.status import OrderStatus

_OP_OF_INTENT = {
    IntentKind.PLACE_ORDER: Op.PLACE_ORDER,
    IntentKind.ACCEPT_QUOTATION: Op.DECIDE_QUOTATION,
    IntentKind.REFUSE_QUOTATION: Op.DECIDE_QUOTATION,
    IntentKind.CHOOSE_OPTION: Op.CHOOSE_OPTION,
    IntentKind.DECIDE_ACQUISITION: Op.DECIDE_ACQUISITION,
    IntentKind.CANCEL: Op.CANCEL,
}
# The phase a write runs in (an acquisition decision keeps the tracking phase).
_PHASE_OF_INTENT = {
    IntentKind.PLACE_ORDER: Phase.PLACING,
    IntentKind.ACCEPT_QUOTATION: Phase.DECIDING_QUOTATION,
    IntentKind.REFUSE_QUOTATION: Phase.DECIDING_QUOTATION,
    IntentKind.CHOOSE_OPTION: Phase.CHOOSING_OPTION,
    IntentKind.CANCEL: Phase.CANCELLING,
}


def op_of(intent: Intent) -> Op:
    return _OP_OF_INTENT[intent.kind]


def call_for(intent: Intent) -> CallProvider:
    """The provider call that performs ``intent``."""
    return CallProvider(op=op_of(intent), target=intent.target, accept=intent.accept)


def start(state: OrderState, intent: Intent) -> Step:
    """Record ``intent`` (in the returned state) and ask for its call.

    Raises:
        ValueError: another write is already in flight (one write at a time per order).
    """
    if state.intent is not None:
        raise ValueError(f"a {state.intent.kind} write is already in flight")
    phase = _PHASE_OF_INTENT.get(intent.kind, state.phase)
    effects: list[Effect] = [call_for(intent)]
    if state.phase in DECISION_PHASES:
        effects.insert(0, Unschedule(timer=TimerKind.DECISION_DEADLINE))
    return update(state, intent=intent, phase=phase, step_retries=0), effects


def start_placing(state: OrderState, at: datetime, attempt: int = 1) -> Step:
    """Intent PLACE_ORDER (with the request's identity fingerprint), then the paid call."""
    identity = request_identity(state.request)
    return start(
        state, Intent(kind=IntentKind.PLACE_ORDER, started_at=at, attempt=attempt, identity=identity)
    )


def start_quotation_decision(state: OrderState, at: datetime, *, accept: bool) -> Step:
    """Intent ACCEPT_QUOTATION (spends money) or REFUSE_QUOTATION on ``state.quotation``."""
    if state.quotation is None:
        raise ValueError("no quotation to decide")
    kind = IntentKind.ACCEPT_QUOTATION if accept else IntentKind.REFUSE_QUOTATION
    return start(state, Intent(kind=kind, started_at=at, target=state.quotation.id, accept=accept))


def start_option_choice(state: OrderState, at: datetime, option_id: str) -> Step:
    return start(state, Intent(kind=IntentKind.CHOOSE_OPTION, started_at=at, target=option_id))


def start_acquisition_decision(
    state: OrderState, at: datetime, acquisition_id: str, *, accept: bool, decided_by: DecidedBy
) -> Step:
    intent = Intent(
        kind=IntentKind.DECIDE_ACQUISITION,
        started_at=at,
        target=acquisition_id,
        accept=accept,
        decided_by=decided_by,
    )
    return start(state, intent)


def start_cancel(state: OrderState, at: datetime) -> Step:
    """Intent CANCEL, then the provider call (the order exists at the provider)."""
    return start(state, Intent(kind=IntentKind.CANCEL, started_at=at))


def resting_phase(state: OrderState) -> Phase:
    """The tracking phase of a placed order with no write in flight (where a refused cancel or a
    settled write returns to)."""
    decision = state.decision if state.status is OrderStatus.DECISION_REQUIRED else None
    if decision is None:
        return Phase.AWAITING_PROVIDER
    if decision.kind is DecisionKind.SELECT_FEASIBILITY_OPTION:
        return Phase.AWAITING_OPTION
    return Phase.AWAITING_QUOTATION_DECISION


def timers_for(state: OrderState) -> list[Effect]:
    """The timers a state implies (rebuilt on ``Resumed``): the window end while nothing is
    ordered yet, the deadline of a pending customer decision, and the delivery check of an order
    waiting for its products."""
    if state.phase is Phase.DONE:
        return []
    effects: list[Effect] = []
    if state.status not in (OrderStatus.ORDERED, OrderStatus.IN_PROGRESS):
        effects.append(Schedule(timer=TimerKind.WINDOW_END, at=state.request.window.end))
    deadline = state.decision.deadline if state.decision else None
    waiting = state.phase in DECISION_PHASES and state.status is OrderStatus.DECISION_REQUIRED
    if waiting and deadline is not None:
        effects.append(Schedule(timer=TimerKind.DECISION_DEADLINE, at=deadline))
    if state.phase is Phase.AWAITING_DELIVERY and state.finished is not None:
        # Fires at once: the check itself schedules the next moment (grace end or timeout).
        effects.append(Schedule(timer=TimerKind.DELIVERY_CHECK, at=state.finished.at))
    return effects
