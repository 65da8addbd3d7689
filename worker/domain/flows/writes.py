"""Outcomes of the writes on a placed order: quotation decisions, study option choices and
cancels, whether the provider answered (``WriteDone``/``StepFailed``) or a read-back
(``GET_ORDER`` → ``Polled``) tells what happened to a write whose outcome was unknown.
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows import acquisitions, tracking
from worker.domain.flows.common import (
    ACTIVE_STATUSES,
    S,
    Step,
    end,
    nothing,
    reason,
    repeat,
    transition,
    update,
)
from worker.domain.flows.intents import resting_phase, timers_for
from worker.domain.flows.reconcile import no_effect
from worker.domain.model import (
    ErrorInfo,
    IntentKind,
    Op,
    OrderState,
    Phase,
    Polled,
    Settings,
    WriteDone,
)
from worker.domain.ports import OrderSnapshot, QuotationDecision, RemotePhase, StudyDecision
from worker.events.models import Reason

READBACK_PHASES = frozenset({Phase.CHOOSING_OPTION, Phase.DECIDING_QUOTATION, Phase.CANCELLING})
_SETTLED_REMOTE = frozenset({RemotePhase.ACTIVE, RemotePhase.ACQUIRING, RemotePhase.COMPLETED})
_AFTER_STUDY = frozenset({RemotePhase.AWAITING_QUOTATION, RemotePhase.QUOTATION_READY}) | _SETTLED_REMOTE
_ENDED_REMOTE = frozenset(
    {RemotePhase.COMPLETED, RemotePhase.CANCELLED, RemotePhase.FAILED, RemotePhase.REJECTED}
)
_PHASE_OF_OP = {
    Op.DECIDE_QUOTATION: Phase.DECIDING_QUOTATION,
    Op.CHOOSE_OPTION: Phase.CHOOSING_OPTION,
    Op.CANCEL: Phase.CANCELLING,
}


# --------------------------------------------------------------------------- answers


def on_write_done(state: OrderState, event: WriteDone) -> Step:
    """The provider confirmed a write; stale confirmations (other phase or target) are ignored."""
    if event.op is Op.DECIDE_ACQUISITION:
        return acquisitions.on_decided(state, event)
    intent = state.intent
    if intent is None or state.phase is not _PHASE_OF_OP.get(event.op):
        return nothing(state)
    if event.target is not None and event.target != intent.target:
        return nothing(state)
    if event.op is Op.CANCEL:
        return cancelled(state, event.at)
    if event.op is Op.CHOOSE_OPTION:
        return option_chosen(state, event.at)
    return quotation_decided(state, event.at, accepted=bool(intent.accept))


def quotation_decided(state: OrderState, at: datetime, *, accepted: bool) -> Step:
    """Accepted: ORDERED (the order is activated). Refused: REJECTED ``DECLINED``."""
    quotation = state.quotation
    decision = QuotationDecision.ACCEPTED if accepted else QuotationDecision.REJECTED
    if quotation is not None:
        state = update(state, quotation=quotation.model_copy(update={"decision": decision}))
    state = update(state, intent=None)
    if not accepted:
        why = state.audit or reason("DECLINED", "the quotation was refused")
        return end(update(state, audit=None), S.REJECTED, at, why)
    if state.status not in ACTIVE_STATUSES:
        state = transition(state, S.ORDERED, at)
    return acquisitions.proceed(update(state, phase=Phase.AWAITING_PROVIDER), at)


def option_chosen(state: OrderState, at: datetime) -> Step:
    """The study option is accepted at the provider: FEASIBLE."""
    intent = state.intent
    assert intent is not None
    if state.study is not None:
        study = state.study.model_copy(
            update={"decision": StudyDecision.ACCEPTED, "chosen_option_id": intent.target}
        )
        state = update(state, study=study)
    state = update(transition(update(state, intent=None), S.FEASIBLE, at), phase=Phase.AWAITING_PROVIDER)
    return acquisitions.proceed(state, at)


def cancelled(state: OrderState, at: datetime) -> Step:
    """The provider cancelled the order at the customer's request: CANCELLED (``user_cancelled``)."""
    why = state.cancel_audit or reason("CANCELLED", "cancelled on request")
    return end(update(state, audit=None), S.CANCELLED, at, why, by_user=True)


def cancel_refused(state: OrderState, at: datetime, error: ErrorInfo | None) -> Step:
    """The provider refused the cancel: COMMAND_REJECTED with its reason; the order goes on."""
    message = error.message if error else "the provider did not confirm the cancellation"
    details = dict(state.cancel_audit.details) if state.cancel_audit else {}
    if error is not None and error.provider_code:
        details["providerCode"] = error.provider_code
    state = update(state, intent=None, cancel_requested_by=None, cancel_audit=None)
    state = update(state, phase=resting_phase(state))
    state = repeat(state, at, Reason(code="COMMAND_REJECTED", message=message, details=details))
    return acquisitions.proceed(state, at, timers_for(state))


def give_up(state: OrderState, at: datetime) -> Step:
    """A write never confirmed after ``max_place_attempts`` sends (see ``reconcile.resend``)."""
    intent = state.intent
    assert intent is not None
    if intent.kind is IntentKind.CANCEL:
        return cancel_refused(state, at, None)
    if intent.kind is IntentKind.DECIDE_ACQUISITION:
        return acquisitions.give_up(state, at)
    if intent.kind is IntentKind.REFUSE_QUOTATION:
        why = state.audit or reason("DECLINED", "the quotation was declined")
        why = why.model_copy(update={"details": {**why.details, "providerConfirmed": False}})
        return end(update(state, audit=None), S.REJECTED, at, why)
    why = reason(
        "PROVIDER_ERROR",
        f"the provider never confirmed the {intent.kind.value} write",
        attempts=intent.attempt,
    )
    return end(state, S.FAILED, at, why)


# --------------------------------------------------------------------------- read-backs


def on_readback(state: OrderState, event: Polled, settings: Settings) -> Step:
    """``GET_ORDER`` while a write is in doubt: proceed if it took effect, else re-send it."""
    snapshot, at = event.snapshot, event.at
    if state.placed is None or state.intent is None:
        return nothing(state)
    if state.phase is Phase.CANCELLING:
        return _cancel_readback(state, snapshot, at, settings)
    if _took_effect(state, snapshot):
        return _settled(state, snapshot, at, settings)
    if snapshot.phase in _ENDED_REMOTE:
        return tracking.track(
            update(state, intent=None, phase=Phase.AWAITING_PROVIDER), snapshot, at, settings
        )
    return no_effect(state, at, settings, give_up, f"read: order is {snapshot.provider_status}, no effect")


def _took_effect(state: OrderState, snapshot: OrderSnapshot) -> bool:
    intent = state.intent
    assert intent is not None
    if intent.kind is IntentKind.CHOOSE_OPTION:
        study = snapshot.study
        decided = study is not None and study.decision is StudyDecision.ACCEPTED
        return decided or snapshot.phase in _AFTER_STUDY
    quotation = snapshot.quotation
    if quotation is not None and quotation.id == intent.target:
        return quotation.decision is not QuotationDecision.NOT_DECIDED
    return snapshot.phase in _SETTLED_REMOTE or snapshot.phase is RemotePhase.REJECTED


def _settled(state: OrderState, snapshot: OrderSnapshot, at: datetime, settings: Settings) -> Step:
    """The write took effect: finish it as if confirmed, then apply the rest of the snapshot."""
    intent = state.intent
    assert intent is not None
    if intent.kind is IntentKind.CHOOSE_OPTION:
        state, effects = option_chosen(state, at)
    else:
        accepted = snapshot.phase in _SETTLED_REMOTE or (
            snapshot.quotation is not None and snapshot.quotation.decision is QuotationDecision.ACCEPTED
        )
        state, effects = quotation_decided(state, at, accepted=accepted)
    if state.terminal or state.phase is not Phase.AWAITING_PROVIDER:
        return state, effects
    state, more = tracking.track(state, snapshot, at, settings)
    return state, effects + more


def _cancel_readback(state: OrderState, snapshot: OrderSnapshot, at: datetime, settings: Settings) -> Step:
    if snapshot.phase is RemotePhase.CANCELLED:
        return cancelled(state, at)
    if snapshot.phase in _ENDED_REMOTE:
        return tracking.track(update(state, intent=None, phase=resting_phase(state)), snapshot, at, settings)
    return no_effect(
        state, at, settings, give_up, f"read: order is {snapshot.provider_status}, not cancelled"
    )
