"""Reconciling a write whose outcome is unknown: wait until it has settled, read back, and re-send
only when the read-back shows it did not take effect.

A write is re-sent (``attempt + 1``) only after a read-back found no effect **and** the settle
period (longer than the HTTP timeout) has passed since the last send, so a request still in flight
at the provider has landed. After ``settings.max_place_attempts`` sends the caller's ``give_up``
decides what happens.

The outcome rule (docs/adr/0008-outcome-of-paid-writes.md): a write ends *done*, *definitively not
done* (the provider refused a send and no earlier send of it had an unknown outcome) or *unknown*.
Once a send's outcome was unknown (``Intent.unknown_sends``), a later refusal proves nothing (the
provider may refuse the re-send *because* the first one created the order, and its listing may lag
behind): it starts a reconcile (``refused_in_doubt``), reads repeated with backoff, never another
send. Only a read that shows the effect ends it; when none does within
``settings.outcome_timeout_seconds`` the request goes to DECISION_REQUIRED ``OUTCOME_UNKNOWN``
(``still_unknown``) and reads go on at the longest backoff, so an order that shows up later is
still adopted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from worker.domain.flows.common import ACTIVE_STATUSES, S, Step, after, reason, repeat, transition, update
from worker.domain.flows.intents import call_for
from worker.domain.model import (
    ErrorInfo,
    Intent,
    IntentKind,
    OrderState,
    Phase,
    Schedule,
    Settings,
    TimerKind,
)
from worker.events.models import Decision, DecisionKind, DecisionOption

GiveUp = Callable[[OrderState, datetime], Step]

_EVIDENCE_KEPT = 12  # the first entries and the latest ones (a long reconcile stays bounded)


def in_doubt(intent: Intent) -> bool:
    """Whether an earlier send of this write may have taken effect unseen (a refusal is then no
    proof that nothing was done). States persisted before ``unknown_sends`` existed carry the
    same knowledge in ``outcome_unknown_at``, ``from_resume`` and ``attempt`` (a write is only
    ever sent again after an unknown outcome)."""
    return (
        intent.unknown_sends > 0
        or intent.from_resume
        or intent.outcome_unknown_at is not None
        or intent.attempt > 1
    )


def noted(intent: Intent, at: datetime, what: str) -> list[str]:
    """``intent.evidence`` with ``what`` appended (bounded: the first three and the latest)."""
    entries = [*intent.evidence, f"{at.isoformat()} {what}"]
    if len(entries) > _EVIDENCE_KEPT:
        entries = entries[:3] + entries[-(_EVIDENCE_KEPT - 3) :]
    return entries


def error_text(error: ErrorInfo) -> str:
    code = f" [{error.provider_code}]" if error.provider_code else ""
    return f"{error.message}{code}"


def outcome_unknown(state: OrderState, at: datetime, error: ErrorInfo, settings: Settings) -> Step:
    """The write may or may not have taken effect: read back after the settle period."""
    assert state.intent is not None
    evidence = noted(state.intent, at, f"send {state.intent.attempt}: outcome unknown ({error_text(error)})")
    intent = state.intent.model_copy(
        update={
            "outcome_unknown_at": at,
            "unknown_sends": state.intent.unknown_sends + 1,
            "evidence": evidence,
        }
    )
    phase = Phase.RECONCILING if intent.kind is IntentKind.PLACE_ORDER else state.phase
    wait = max(settings.settle_seconds, error.retry_after or 0.0)
    state = update(state, intent=intent, phase=phase)
    return state, [Schedule(timer=TimerKind.RECONCILE, at=after(at, wait))]


def refused_in_doubt(state: OrderState, at: datetime, error: ErrorInfo, settings: Settings) -> Step:
    """A send was refused after an earlier send's outcome was unknown: not a proof of anything.
    Read the provider's record (with backoff, for a listing that lags) instead of ending."""
    intent = state.intent
    assert intent is not None
    evidence = noted(
        intent, at, f"send {intent.attempt}: refused after an unknown outcome ({error_text(error)})"
    )
    intent = intent.model_copy(
        update={"refused_at": intent.refused_at or at, "evidence": evidence, "outcome_unknown_at": at}
    )
    phase = Phase.RECONCILING if intent.kind is IntentKind.PLACE_ORDER else state.phase
    state = update(state, intent=intent, phase=phase)
    return state, [Schedule(timer=TimerKind.RECONCILE, at=after(at, _read_delay(intent, settings)))]


def still_unknown(state: OrderState, at: datetime, settings: Settings, seen: str) -> Step:
    """A reconcile read after a refusal in doubt showed no effect (``seen``): read again with
    backoff, or, past ``settings.outcome_timeout_seconds``, say so once (DECISION_REQUIRED
    ``OUTCOME_UNKNOWN``) and keep reading at the longest backoff."""
    intent = state.intent
    assert intent is not None
    refused_at = intent.refused_at
    assert refused_at is not None
    intent = intent.model_copy(update={"reads": intent.reads + 1, "evidence": noted(intent, at, seen)})
    if intent.undecided or at < after(refused_at, settings.outcome_timeout_seconds):
        state = update(state, intent=intent)
    else:
        intent = intent.model_copy(update={"undecided": True})
        state = _undecided(update(state, intent=intent), at, settings)
    return state, [Schedule(timer=TimerKind.RECONCILE, at=after(at, _read_delay(intent, settings)))]


def _read_delay(intent: Intent, settings: Settings) -> float:
    if intent.undecided:
        return settings.retry_max_seconds
    return min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0**intent.reads)


def _undecided(state: OrderState, at: datetime, settings: Settings) -> OrderState:
    """DECISION_REQUIRED ``OUTCOME_UNKNOWN``: what is known, and that reads go on."""
    intent = state.intent
    assert intent is not None
    why = reason(
        "OUTCOME_UNKNOWN",
        f"the provider's answer to the {intent.kind.value} write was lost, a later send was refused, "
        f"and its records showed no effect within {settings.outcome_timeout_seconds:g} s: the write "
        "may or may not have taken effect. Nothing more is sent; the provider is still read, and an "
        "order that appears is adopted. Check the provider, or send cancel to stop.",
        write=intent.kind.value,
        sends=intent.attempt,
        unknownSends=intent.unknown_sends,
        reads=intent.reads,
        customerReference=state.request.reference,
        evidence=list(intent.evidence),
    )
    if state.status in ACTIVE_STATUSES or state.status is S.DECISION_REQUIRED:
        # A write on an order that exists (acquisition decision, cancel: tracked on) or one made
        # from a pending decision (quotation, study option: its decision stays what the phase
        # rests on): the status is repeated with the reason.
        return repeat(state, at, why)
    cancel = DecisionOption(id="cancel", description="stop the request (an order may exist at the provider)")
    decision = Decision(kind=DecisionKind.CONFIRM_ORDER, options=[cancel])
    return transition(update(state, decision=decision), S.DECISION_REQUIRED, at, why=why)


def unknown_evidence(state: OrderState) -> dict[str, object]:
    """The evidence of a write that was in doubt, for the event that settles it."""
    intent = state.intent
    if intent is None or not in_doubt(intent):
        return {}
    return {"unknownSends": intent.unknown_sends, "evidence": list(intent.evidence)}


def resend(state: OrderState, at: datetime, settings: Settings, give_up: GiveUp) -> Step:
    """A read-back found no effect of the intent's write: send it again once it has settled.

    Too early: ``Schedule(RECONCILE)`` at the settle time (the read-back runs again then).
    """
    intent = state.intent
    assert intent is not None
    settled = after(intent.outcome_unknown_at or intent.started_at, settings.settle_seconds)
    if at < settled:
        phase = Phase.RECONCILING if intent.kind is IntentKind.PLACE_ORDER else state.phase
        return update(state, phase=phase), [Schedule(timer=TimerKind.RECONCILE, at=settled)]
    if intent.from_resume:
        # Interrupted by a restart, not answered ambiguously by the provider: not an attempt.
        if intent.interrupted > settings.max_interruptions:
            return give_up(state, at)
        counted = intent.attempt
    elif intent.attempt >= settings.max_place_attempts:
        return give_up(state, at)
    else:
        counted = intent.attempt + 1
    # An interrupted send counts as one whose outcome is unknown: a refusal of this re-send is
    # then no proof either (``in_doubt`` must survive the reset of ``from_resume``).
    unknown = max(intent.unknown_sends, 1 if in_doubt(intent) else 0)
    again = intent.model_copy(
        update={
            "attempt": counted,
            "started_at": at,
            "outcome_unknown_at": None,
            "from_resume": False,
            "unknown_sends": unknown,
            "evidence": noted(intent, at, f"send {counted}: sent again after the read showed no effect"),
        }
    )
    phase = Phase.PLACING if intent.kind is IntentKind.PLACE_ORDER else state.phase
    return update(state, intent=again, phase=phase), [call_for(again)]


def no_effect(state: OrderState, at: datetime, settings: Settings, give_up: GiveUp, seen: str) -> Step:
    """A read-back showed no effect of the write in flight (``seen`` says what it showed): re-send
    it once settled, unless a send was refused after an unknown outcome; then only reads decide."""
    intent = state.intent
    assert intent is not None
    if intent.refused_at is not None:
        return still_unknown(state, at, settings, seen)
    state = update(state, intent=intent.model_copy(update={"evidence": noted(intent, at, seen)}))
    return resend(state, at, settings, give_up)
