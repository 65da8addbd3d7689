"""Placing the order (the paid call) and reconciling it.

The intent PLACE_ORDER is in the state before the call. An answer (``OrderPlaced``) or a lookup
that finds the order by its customer reference (``OrderPlaced(found=True)``) both proceed as
placed. A lookup that finds nothing (``OrderNotFound``) places again only once the settle period
has passed since the last send, with ``attempt + 1``, up to ``settings.max_place_attempts``.
So two PLACE_ORDER calls are always separated by an ``OrderNotFound``; and once a send was refused
after an unknown outcome, never again (``reconcile.no_effect``).
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows import acquisitions, oneatlas, reconcile, up42
from worker.domain.flows.common import (
    S,
    Step,
    approve_options,
    end,
    nothing,
    reason,
    require_decision,
    settle_time,
    update,
)
from worker.domain.flows.kinds import FlowKind, flow_of
from worker.domain.identity import mismatches, request_identity
from worker.domain.model import (
    IntentKind,
    OrderNotFound,
    OrderPlaced,
    OrderState,
    Phase,
    Settings,
)
from worker.domain.ports import PlacedOrder
from worker.events.models import Decision, DecisionKind, Reason

_PLACING_PHASES = frozenset({Phase.PLACING, Phase.RECONCILING})


def _placing(state: OrderState) -> bool:
    intent = state.intent
    return state.phase in _PLACING_PHASES and intent is not None and intent.kind is IntentKind.PLACE_ORDER


def on_order_placed(state: OrderState, event: OrderPlaced) -> Step:
    """The order exists: store it, move to the flow's status, start tracking (or the cancel that
    waited for the outcome). An order found by customer reference is adopted only when what the
    provider states about it matches the request (product, AOI, window); otherwise
    DECISION_REQUIRED ``CUSTOMER_REFERENCE_IN_USE`` and nothing more is sent."""
    if not _placing(state):
        return nothing(state)
    assert state.intent is not None
    if event.found:
        wanted = state.intent.identity or request_identity(state.request)
        wrong = mismatches(wanted, event.placed.identity)
        if wrong:
            return _reference_in_use(state, event, wanted, wrong)
        evidence = reconcile.unknown_evidence(state)
        if evidence:
            state = update(state, audit=_adopted(state, event, evidence))
    return adopt(state, event.placed, event.at)


def adopt(state: OrderState, placed: PlacedOrder, at: datetime) -> Step:
    """Make ``placed`` this request's order and go on with its flow."""
    state = update(
        state, placed=placed, intent=None, found_order=None, step_retries=0, phase=Phase.AWAITING_PROVIDER
    )
    if flow_of(state.request) is FlowKind.UP42:
        state = up42.after_placed(state, at)
    else:
        state = oneatlas.after_placed(state, at)
    return acquisitions.proceed(state, at)


def _adopted(state: OrderState, event: OrderPlaced, evidence: dict[str, object]) -> Reason:
    """The reason the status event of an order found after an unknown outcome carries (as an
    audit, so it rides on the flow's next transition)."""
    return reason(
        "ORDER_FOUND",
        "the order whose placement had an unknown outcome was found at the provider by its "
        "customer reference, and it matches the request",
        trackingKey=event.placed.tracking_key,
        **evidence,
    )


def _reference_in_use(
    state: OrderState, event: OrderPlaced, wanted: dict[str, str], wrong: list[str]
) -> Step:
    found = event.placed
    why = reason(
        "CUSTOMER_REFERENCE_IN_USE",
        f"an order with customer reference {state.request.reference!r} exists at the provider "
        f"({found.tracking_key}) but its {', '.join(wrong)} differ from the request's: it is not "
        "adopted, and no order is placed under this reference. approve adopts it anyway; reject "
        "or cancel ends the request (resend it with another reference to order).",
        trackingKey=found.tracking_key,
        mismatched=wrong,
        expected={k: wanted["window" if k == "period" else k] for k in wrong},
        found={k: found.identity[k] for k in wrong},
        **reconcile.unknown_evidence(state),
    )
    options = approve_options(f"adopt order {found.tracking_key}", "decline the request")
    decision = Decision(kind=DecisionKind.CONFIRM_ORDER, options=options)
    state = update(state, intent=None, found_order=found)
    return require_decision(state, event.at, decision, Phase.AWAITING_ADOPTION, why)


def on_order_not_found(state: OrderState, event: OrderNotFound, settings: Settings) -> Step:
    """No order under the customer reference: place again once settled (or cancel if asked)."""
    if not _placing(state):
        return nothing(state)
    assert state.intent is not None
    if state.cancel_requested_by is not None and _settled(state, event.at, settings):
        why = state.cancel_audit or reason("CANCELLED", "cancelled on request")
        return end(update(state, audit=None), S.CANCELLED, event.at, why, by_user=True)
    seen = "read: no order under the customer reference"
    return reconcile.no_effect(state, event.at, settings, _give_up, seen)


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
