"""Placing the order (the paid call) and reconciling it.

The intent PLACE_ORDER is in the state before the call. An answer (``OrderPlaced``) or a lookup
that finds the order by its customer reference (``OrderPlaced(found=True)``) both proceed as
placed. A lookup that finds nothing (``OrderNotFound``) places again only once the settle period
has passed since the last send, with ``attempt + 1``, up to ``settings.max_place_attempts``.
So two PLACE_ORDER calls are always separated by an ``OrderNotFound``.
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows import acquisitions, oneatlas, up42
from worker.domain.flows.common import S, Step, end, nothing, reason, settle_time, update
from worker.domain.flows.kinds import FlowKind, flow_of
from worker.domain.flows.reconcile import resend
from worker.domain.model import (
    IntentKind,
    OrderNotFound,
    OrderPlaced,
    OrderState,
    Phase,
    Settings,
)

_PLACING_PHASES = frozenset({Phase.PLACING, Phase.RECONCILING})


def _placing(state: OrderState) -> bool:
    intent = state.intent
    return state.phase in _PLACING_PHASES and intent is not None and intent.kind is IntentKind.PLACE_ORDER


def on_order_placed(state: OrderState, event: OrderPlaced) -> Step:
    """The order exists: store it, move to the flow's status, start tracking (or the cancel that
    waited for the outcome)."""
    if not _placing(state):
        return nothing(state)
    state = update(state, placed=event.placed, intent=None, step_retries=0, phase=Phase.AWAITING_PROVIDER)
    if flow_of(state.request) is FlowKind.UP42:
        state = up42.after_placed(state, event.at)
    else:
        state = oneatlas.after_placed(state, event.at)
    return acquisitions.proceed(state, event.at)


def on_order_not_found(state: OrderState, event: OrderNotFound, settings: Settings) -> Step:
    """No order under the customer reference: place again once settled (or cancel if asked)."""
    if not _placing(state):
        return nothing(state)
    assert state.intent is not None
    if state.cancel_requested_by is not None and _settled(state, event.at, settings):
        why = state.cancel_audit or reason("CANCELLED", "cancelled on request")
        return end(update(state, audit=None), S.CANCELLED, event.at, why, by_user=True)
    return resend(state, event.at, settings, _give_up)


def _settled(state: OrderState, at: datetime, settings: Settings) -> bool:
    assert state.intent is not None
    return at >= settle_time(state.intent, settings)


def _give_up(state: OrderState, at: datetime) -> Step:
    assert state.intent is not None
    why = reason(
        "PROVIDER_ERROR",
        f"the order could not be placed after {state.intent.attempt} attempts",
        attempts=state.intent.attempt,
    )
    return end(state, S.FAILED, at, why)
