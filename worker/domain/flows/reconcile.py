"""Reconciling a write whose outcome is unknown: wait until it has settled, read back, and re-send
only when the read-back shows it did not take effect.

A write is re-sent (``attempt + 1``) only after a read-back found no effect **and** the settle
period (longer than the HTTP timeout) has passed since the last send, so a request still in flight
at the provider has landed. After ``settings.max_place_attempts`` sends the caller's ``give_up``
decides what happens.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from worker.domain.flows.common import Step, after, update
from worker.domain.flows.intents import call_for
from worker.domain.model import (
    ErrorInfo,
    IntentKind,
    OrderState,
    Phase,
    Schedule,
    Settings,
    TimerKind,
)

GiveUp = Callable[[OrderState, datetime], Step]


def outcome_unknown(state: OrderState, at: datetime, error: ErrorInfo, settings: Settings) -> Step:
    """The write may or may not have taken effect: read back after the settle period."""
    assert state.intent is not None
    intent = state.intent.model_copy(update={"outcome_unknown_at": at})
    phase = Phase.RECONCILING if intent.kind is IntentKind.PLACE_ORDER else state.phase
    wait = max(settings.settle_seconds, error.retry_after or 0.0)
    state = update(state, intent=intent, phase=phase)
    return state, [Schedule(timer=TimerKind.RECONCILE, at=after(at, wait))]


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
    again = intent.model_copy(
        update={"attempt": counted, "started_at": at, "outcome_unknown_at": None, "from_resume": False}
    )
    phase = Phase.PLACING if intent.kind is IntentKind.PLACE_ORDER else state.phase
    return update(state, intent=again, phase=phase), [call_for(again)]
