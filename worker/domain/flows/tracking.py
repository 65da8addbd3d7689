"""Tracking a placed order: each provider snapshot (its :class:`RemotePhase`) moves the contract
status forward, stores the provider's ids, updates the progress and asks for the acquisitions
when they may have changed.

Snapshot phase → status (see ``docs/provider-status-mapping.md``):

- FEASIBILITY_STUDY → FEASIBILITY_PENDING (from FEASIBLE/QUOTED; otherwise unchanged)
- AWAITING_OPTION → DECISION_REQUIRED ``select-feasibility-option`` (UP42)
- AWAITING_QUOTATION → FEASIBLE once a study is settled (UP42), otherwise unchanged
- QUOTATION_READY → accept automatically, or DECISION_REQUIRED ``approve-price``
- ACTIVE → ORDERED; ACQUIRING → IN_PROGRESS (ORDERED first when not yet)
- COMPLETED → IN_PROGRESS in phase AWAITING_DELIVERY until the products are delivered, then
  COMPLETED (``worker.domain.flows.deliveries``), or EXPIRED ``WINDOW_EXPIRED`` when nothing
  was validated and the window has ended
- CANCELLED → CANCELLED (``cancelled``), FAILED → FAILED, REJECTED → REJECTED
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from worker.domain.flows import deliveries, up42
from worker.domain.flows.acquisitions import counts, progress_of, set_progress
from worker.domain.flows.common import (
    ACTIVE_STATUSES,
    DECISION_PHASES,
    S,
    Step,
    approved_covers,
    end,
    nothing,
    over_budget_reason,
    price_decision,
    reason,
    repeat,
    require_decision,
    transition,
    update,
    within_budget,
)
from worker.domain.flows.intents import start_quotation_decision
from worker.domain.model import (
    TRACKED_PHASES,
    CallProvider,
    Effect,
    Op,
    OrderState,
    Phase,
    Polled,
    Settings,
    TimerKind,
    TrackingFailed,
    TrackingRecovered,
    Unschedule,
)
from worker.domain.ports import OrderSnapshot, Quotation, QuotationDecision, RemotePhase
from worker.events.models import AcquisitionCounts
from worker.events.status import OrderStatus


def on_polled(state: OrderState, event: Polled, settings: Settings) -> Step:
    """A snapshot of a tracked order (readbacks of in-flight writes are handled in ``writes``)."""
    if state.placed is None or state.phase not in TRACKED_PHASES:
        return nothing(state)
    return track(state, event.snapshot, event.at, settings)


def track(state: OrderState, snapshot: OrderSnapshot, at: datetime, settings: Settings) -> Step:
    """Apply ``snapshot``: ids, progress (announced only when no other event carries it), status."""
    state = _store_refs(state, snapshot)
    progress = progress_of(state, snapshot.coverage_pct, _counts(snapshot))
    changed = progress is not None and progress != state.progress
    state = set_progress(state, progress, at, announce=False)
    before = state.sequence
    state, effects = follow(state, snapshot, at, settings)
    if changed and state.sequence == before and state.status in ACTIVE_STATUSES and not state.terminal:
        state = repeat(state, at, None)
    state, more = _marker(state, snapshot)
    return state, effects + more


def follow(state: OrderState, snapshot: OrderSnapshot, at: datetime, settings: Settings) -> Step:
    """The status move ``snapshot.phase`` implies (the table in the module docstring)."""
    match snapshot.phase:
        case RemotePhase.FEASIBILITY_STUDY:
            return _study_running(state, at), []
        case RemotePhase.AWAITING_OPTION:
            return up42.on_options(state, snapshot.study, at)
        case RemotePhase.AWAITING_QUOTATION:
            return _awaiting_quotation(state, snapshot, at)
        case RemotePhase.QUOTATION_READY:
            return _quotation_ready(state, snapshot, at)
        case RemotePhase.ACTIVE:
            return advance(state, S.ORDERED, at)
        case RemotePhase.ACQUIRING:
            return advance(state, S.IN_PROGRESS, at)
        case RemotePhase.COMPLETED:
            return _completed(state, snapshot, at, settings)
        case RemotePhase.CANCELLED:
            why = reason(
                "PROVIDER_CANCELLED", "cancelled by the provider", providerStatus=snapshot.provider_status
            )
            return end(state, S.CANCELLED, at, why)
        case RemotePhase.FAILED:
            why = reason(
                "PROVIDER_ERROR",
                "the provider reports the order failed",
                providerStatus=snapshot.provider_status,
            )
            return end(state, S.FAILED, at, why)
        case RemotePhase.REJECTED:
            return _rejected(state, snapshot, at)
        case _:
            assert_never(snapshot.phase)


def advance(state: OrderState, target: OrderStatus, at: datetime) -> Step:
    """Forward to ORDERED or IN_PROGRESS (via ORDERED), leaving any customer decision behind;
    never backwards (an ACTIVE snapshot after IN_PROGRESS changes nothing)."""
    effects: list[Effect] = []
    if state.phase in DECISION_PHASES:
        state = update(state, phase=Phase.AWAITING_PROVIDER)
        effects.append(Unschedule(timer=TimerKind.DECISION_DEADLINE))
    if state.status not in ACTIVE_STATUSES:
        state = transition(state, S.ORDERED, at)
    if target is S.IN_PROGRESS and state.status is S.ORDERED:
        state = transition(state, S.IN_PROGRESS, at)
    return state, effects


def _store_refs(state: OrderState, snapshot: OrderSnapshot) -> OrderState:
    assert state.placed is not None
    refs = {**state.placed.refs, **snapshot.refs}
    if refs == state.placed.refs:
        return state
    return update(state, placed=state.placed.model_copy(update={"refs": refs}))


def _counts(snapshot: OrderSnapshot) -> AcquisitionCounts | None:
    if snapshot.counts is None:
        return None
    c = snapshot.counts
    return AcquisitionCounts(proposed=c.proposed, validated=c.validated, refused=c.refused)


def _marker(state: OrderState, snapshot: OrderSnapshot) -> Step:
    """Acquisitions may have changed: list them (also once more for a finished order)."""
    marker = snapshot.change_marker
    if marker is None or marker == state.change_marker:
        return state, []
    return update(state, change_marker=marker, listing_due=True), [CallProvider(op=Op.LIST_ACQUISITIONS)]


def _study_running(state: OrderState, at: datetime) -> OrderState:
    if state.status in (S.FEASIBLE, S.QUOTED):
        return transition(state, S.FEASIBILITY_PENDING, at)
    return state


def _awaiting_quotation(state: OrderState, snapshot: OrderSnapshot, at: datetime) -> Step:
    study = snapshot.study or state.study
    if study is None or not up42.study_settled(study):
        return nothing(state)
    return up42.feasible(state, study, at)


def _quotation_ready(state: OrderState, snapshot: OrderSnapshot, at: datetime) -> Step:
    """A quotation: accepted/refused elsewhere, unchanged, or a new one to decide."""
    quotation = snapshot.quotation
    if quotation is None:
        return _awaiting_quotation(state, snapshot, at)
    if quotation.decision is QuotationDecision.ACCEPTED:
        return advance(update(state, quotation=quotation), S.ORDERED, at)
    if quotation.decision is QuotationDecision.REJECTED:
        why = reason("DECLINED", "the quotation was refused at the provider", quotationId=quotation.id)
        return end(update(state, quotation=quotation), S.REJECTED, at, why)
    already = state.quotation == quotation and state.phase is Phase.AWAITING_QUOTATION_DECISION
    if already or state.status in ACTIVE_STATUSES:
        # An order already active spends nothing more on a late quotation.
        return nothing(state)
    state, effects = _awaiting_quotation(state, snapshot, at)
    state, more = decide_quotation(update(state, quotation=quotation), quotation, at)
    return state, effects + more


def auto_accepts(state: OrderState, quotation: Quotation) -> bool:
    """Accept without asking: auto-approve within budget, or a customer approved at least this."""
    amount, currency = quotation.amount, quotation.currency
    automatic = state.request.auto_approve and within_budget(state, amount, currency)
    return automatic or approved_covers(state, amount, currency)


def decide_quotation(state: OrderState, quotation: Quotation, at: datetime) -> Step:
    """Accept the quotation (intent first), or ask the customer before its validity ends."""
    if auto_accepts(state, quotation):
        return start_quotation_decision(state, at, accept=True)
    decision = price_decision(state, quotation.amount, quotation.currency, quotation.valid_until)
    why = over_budget_reason(state, quotation.amount, quotation.currency)
    return require_decision(state, at, decision, Phase.AWAITING_QUOTATION_DECISION, why)


def _completed(state: OrderState, snapshot: OrderSnapshot, at: datetime, settings: Settings) -> Step:
    """The provider finished: wait for the products (then COMPLETED), except a window that ended
    with nothing validated: EXPIRED."""
    known = counts(state) or _counts(snapshot)
    if known is not None and known.validated == 0 and at >= state.request.window.end:
        why = reason(
            "WINDOW_EXPIRED",
            "the window ended without a validated acquisition",
            providerStatus=snapshot.provider_status,
        )
        return end(state, S.EXPIRED, at, why)
    listing_due = snapshot.change_marker is not None and snapshot.change_marker != state.change_marker
    state, effects = advance(state, S.IN_PROGRESS, at)
    state, more = deliveries.provider_finished(state, snapshot, at, settings, listing_due=listing_due)
    return state, effects + more


def _rejected(state: OrderState, snapshot: OrderSnapshot, at: datetime) -> Step:
    refused = snapshot.quotation is not None and snapshot.quotation.decision is QuotationDecision.REJECTED
    code = "DECLINED" if refused else "PROVIDER_REJECTED"
    why = reason(code, "the provider rejected the order", providerStatus=snapshot.provider_status)
    return end(state, S.REJECTED, at, why)


def on_trouble(state: OrderState, event: TrackingFailed | TrackingRecovered) -> Step:
    """Repeat the current status with reason ``TRACKING_ERROR`` when tracking the order keeps
    failing, and with ``TRACKING_RECOVERED`` once it works again (a sequenced status event, so
    consumers see both in order). Nothing for an order without a status yet."""
    if state.status is None or state.last_event is None:
        return nothing(state)
    if isinstance(event, TrackingFailed):
        why = reason(
            "TRACKING_ERROR",
            f"following this order at the provider failed {event.failures} times in a row ({event.what})",
            failing=event.what,
            failures=event.failures,
            since=event.since.isoformat(),
            error=event.message,
        )
    else:
        why = reason(
            "TRACKING_RECOVERED",
            f"following this order at the provider works again after {event.failures} failures",
            failures=event.failures,
            since=event.since.isoformat(),
        )
    return repeat(state, event.at, why), []
