"""Acquisitions: events on first sight and on every status change, the acquisition policy, one
decision in flight at a time, and the progress counts.

An acquisition decision is never sent twice: ``decision_sent`` is set once the provider took it
(or refused it), and a decision whose outcome is unknown is read back (``LIST_ACQUISITIONS``)
before it may be re-sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from worker.domain.flows.common import (
    ACTIVE_STATUSES,
    Step,
    nothing,
    reason,
    repeat,
    update,
)
from worker.domain.flows.intents import start_acquisition_decision, start_cancel
from worker.domain.flows.reconcile import no_effect
from worker.domain.model import (
    AcquisitionRecord,
    AcquisitionsListed,
    Effect,
    IntentKind,
    OrderState,
    OutboxAcquisition,
    Phase,
    Settings,
    WriteDone,
)
from worker.domain.ports import Acquisition
from worker.events.models import (
    AcquisitionCounts,
    AcquisitionEvent,
    AcquisitionStatus,
    AutoAccept,
    Command,
    DecidedBy,
    OrderRequest,
    Progress,
    Reason,
)

A = AcquisitionStatus
_VALIDATED = frozenset({A.VALIDATED, A.ACCEPTED, A.DELIVERED})
_REFUSED = frozenset({A.REFUSED, A.REJECTED})


# --------------------------------------------------------------------------- listing


def on_listed(
    state: OrderState,
    event: AcquisitionsListed,
    settings: Settings,
    then: Callable[[OrderState, datetime], OrderState] | None = None,
) -> Step:
    """Publish what is new or changed, settle an in-doubt decision, then decide what the policy
    or a pending command asks. On a finished order only the events are published.

    ``then`` runs once the acquisitions are recorded and before the progress is announced (the
    delivered products held for this listing are published there, in the same progress event)."""
    if state.placed is None:
        return nothing(state)
    if state.listing_due:
        state = update(state, listing_due=False)
    effects: list[Effect] = []
    if _in_doubt(state):
        state, effects = _read_back(state, event, settings)
    target = _in_flight(state)
    for acquisition in sorted(event.acquisitions, key=lambda a: a.id):
        if acquisition.id != target:
            state = observe(state, acquisition, event.at)
    if state.terminal:
        return state, effects
    if then is not None:
        state = then(state, event.at)
    state = set_progress(state, progress_of(state, None), event.at)
    return next_decision(state, event.at, effects)


def observe(state: OrderState, acquisition: Acquisition, at: datetime) -> OrderState:
    """Record ``acquisition``; publish an event when it is new or its status changed."""
    record = state.acquisitions.get(acquisition.id)
    if record is None:
        return _publish(
            state,
            acquisition.id,
            AcquisitionRecord(status=acquisition.status, acquisition=acquisition),
            DecidedBy.PROVIDER,
            at,
        )
    lagging = record.decision_sent and acquisition.status is A.PROPOSED  # the provider is behind us
    if record.status is acquisition.status or lagging:
        if record.acquisition == acquisition:
            return state
        return _store(state, acquisition.id, record.model_copy(update={"acquisition": acquisition}))
    # Our accepted acquisition turning VALIDATED is still our decision taking effect.
    ours = record.status is A.ACCEPTED and acquisition.status is A.VALIDATED
    decided_by = record.decided_by if ours and record.decided_by else DecidedBy.PROVIDER
    changed = record.model_copy(update={"status": acquisition.status, "acquisition": acquisition})
    return _publish(state, acquisition.id, changed, decided_by, at)


def _publish(
    state: OrderState, acquisition_id: str, record: AcquisitionRecord, decided_by: DecidedBy, at: datetime
) -> OrderState:
    """Store ``record`` with one more event, and put that AcquisitionEvent in the outbox."""
    n = record.events + 1
    record = record.model_copy(update={"events": n, "decided_by": decided_by})
    event = _event(state, acquisition_id, record, at)
    state = _store(state, acquisition_id, record)
    return update(state, outbox=[*state.outbox, OutboxAcquisition(event=event, n=n)])


def _event(
    state: OrderState, acquisition_id: str, record: AcquisitionRecord, at: datetime
) -> AcquisitionEvent:
    data = record.acquisition
    refs = {**(state.placed.refs if state.placed else {}), **(data.refs if data else {})}
    return AcquisitionEvent(
        request_id=state.request_id,
        provider=state.request.provider,
        acquisition_id=acquisition_id,
        status=record.status,
        decided_by=record.decided_by,
        occurred_at=at,
        provider_refs=refs,
        acquired_at=data.acquired_at if data else None,
        cloud_cover=data.cloud_cover if data else None,
        incidence_angle=data.incidence_angle if data else None,
        footprint=data.footprint if data else None,
    )


def _store(state: OrderState, acquisition_id: str, record: AcquisitionRecord) -> OrderState:
    return update(state, acquisitions={**state.acquisitions, acquisition_id: record})


# --------------------------------------------------------------------------- progress


def counts(state: OrderState) -> AcquisitionCounts | None:
    """Counts from the acquisitions seen (None before any was listed)."""
    if not state.acquisitions:
        return None
    statuses = [r.status for r in state.acquisitions.values()]
    return AcquisitionCounts(
        proposed=sum(s is A.PROPOSED for s in statuses),
        validated=sum(s in _VALIDATED for s in statuses),
        refused=sum(s in _REFUSED for s in statuses),
    )


def validated_ids(state: OrderState) -> list[str]:
    """The ids of the validated (or accepted, or delivered) acquisitions, sorted."""
    return sorted(a for a, record in state.acquisitions.items() if record.status in _VALIDATED)


def progress_of(
    state: OrderState, coverage_pct: float | None, fallback: AcquisitionCounts | None = None
) -> Progress | None:
    """The contract ``progress``: counts from the listed acquisitions (else ``fallback``, the
    provider's own counts), the latest known coverage and the products delivered so far."""
    if coverage_pct is None and state.progress is not None:
        coverage_pct = state.progress.coverage_pct
    acquisition_counts = counts(state) or fallback
    if acquisition_counts is None and coverage_pct is None and not state.deliveries:
        return None
    coverage = None if coverage_pct is None else min(100.0, max(0.0, coverage_pct))
    return Progress(
        acquisitions=acquisition_counts or AcquisitionCounts(),
        coverage_pct=coverage,
        deliveries=len(state.deliveries),
    )


def set_progress(
    state: OrderState,
    progress: Progress | None,
    at: datetime,
    *,
    announce: bool = True,
    why: Reason | None = None,
) -> OrderState:
    """Store ``progress``; when it changed on an active order (ORDERED/IN_PROGRESS), announce it
    with a status event repeating the status."""
    if progress == state.progress or progress is None:
        return state
    state = update(state, progress=progress)
    if announce and state.status in ACTIVE_STATUSES and not state.terminal:
        return repeat(state, at, why)
    return state


# --------------------------------------------------------------------------- decisions


def policy_choice(request: OrderRequest, acquisition: Acquisition | None) -> bool | None:
    """The policy's decision: accept within ``autoAccept``; outside it, refuse when
    ``autoRefuse``; no decision without ``autoAccept`` or when a needed value is unknown."""
    policy = request.acquisition_policy
    if policy is None or policy.auto_accept is None or acquisition is None:
        return None
    fits = _fits(policy.auto_accept, acquisition)
    if fits is None:
        return None
    return True if fits else (False if policy.auto_refuse else None)


def _fits(limits: AutoAccept, acquisition: Acquisition) -> bool | None:
    checks = [
        (limits.max_cloud_cover, acquisition.cloud_cover),
        (limits.max_incidence_angle, acquisition.incidence_angle),
    ]
    relevant = [(limit, value) for limit, value in checks if limit is not None]
    if any(value is not None and value > limit for limit, value in relevant):
        return False
    if any(value is None for _, value in relevant):
        return None
    return True


def _choice(state: OrderState, record: AcquisitionRecord) -> tuple[bool, DecidedBy] | None:
    if record.status is not A.PROPOSED or record.decision_sent:
        return None
    if record.pending_accept is not None:
        return record.pending_accept, DecidedBy.COMMAND
    choice = policy_choice(state.request, record.acquisition)
    return None if choice is None else (choice, DecidedBy.POLICY)


def next_decision(state: OrderState, at: datetime, effects: list[Effect]) -> Step:
    """Send the next acquisition decision (commands and policy, by acquisition id), if no write is
    in flight and the order is simply being tracked."""
    if state.intent is not None or state.phase is not Phase.AWAITING_PROVIDER or state.cancel_requested_by:
        return state, effects
    for acquisition_id in sorted(state.acquisitions):
        choice = _choice(state, state.acquisitions[acquisition_id])
        if choice is not None:
            state, more = start_acquisition_decision(
                state, at, acquisition_id, accept=choice[0], decided_by=choice[1]
            )
            return state, effects + more
    return state, effects


def proceed(state: OrderState, at: datetime, effects: list[Effect] | None = None) -> Step:
    """After a write's outcome is known: a cancel that waited for it, else the next decision."""
    effects = list(effects or [])
    if state.terminal or state.intent is not None:
        return state, effects
    if state.cancel_requested_by is not None:
        state, more = start_cancel(state, at)
        return state, effects + more
    return next_decision(state, at, effects)


def request_decision(state: OrderState, command: Command, at: datetime, *, accept: bool) -> Step | None:
    """An accept/refuse-acquisition command: queue it (sent in turn). ``None`` when it does not fit
    (unknown acquisition, not PROPOSED, or already decided)."""
    acquisition_id = command.acquisition_id or ""
    record = state.acquisitions.get(acquisition_id)
    if record is None or record.status is not A.PROPOSED or record.decision_sent:
        return None
    if record.pending_accept is not None or _in_flight(state) == acquisition_id:
        return None
    state = _store(state, acquisition_id, record.model_copy(update={"pending_accept": accept}))
    return next_decision(state, at, [])


def _in_flight(state: OrderState) -> str | None:
    intent = state.intent
    return intent.target if intent is not None and intent.kind is IntentKind.DECIDE_ACQUISITION else None


def _in_doubt(state: OrderState) -> bool:
    return (
        _in_flight(state) is not None
        and state.intent is not None
        and (state.intent.outcome_unknown_at is not None)
    )


def on_decided(state: OrderState, event: WriteDone) -> Step:
    """The provider took the decision: publish ACCEPTED/REFUSED (decided by policy or command)."""
    intent = state.intent
    if intent is None or intent.kind is not IntentKind.DECIDE_ACQUISITION:
        return nothing(state)
    if event.target is not None and event.target != intent.target:
        return nothing(state)
    status = A.ACCEPTED if intent.accept else A.REFUSED
    return _settle(state, status, event.at)


def _settle(state: OrderState, status: AcquisitionStatus, at: datetime) -> Step:
    """The in-flight decision is done and the acquisition is now ``status``."""
    intent = state.intent
    assert intent is not None
    assert intent.target is not None
    record = state.acquisitions.get(intent.target) or AcquisitionRecord(status=status)
    record = record.model_copy(update={"status": status, "decision_sent": True, "pending_accept": None})
    state = _publish(
        update(state, intent=None), intent.target, record, intent.decided_by or DecidedBy.PROVIDER, at
    )
    state = set_progress(state, progress_of(state, None), at)
    return proceed(state, at)


def _read_back(state: OrderState, event: AcquisitionsListed, settings: Settings) -> Step:
    """A decision's outcome was unknown: it took effect if the acquisition is no longer PROPOSED."""
    target = _in_flight(state)
    found = next((a for a in event.acquisitions if a.id == target), None)
    if found is not None and found.status is not A.PROPOSED:
        state = _store(state, found.id, _record(state, found.id).model_copy(update={"acquisition": found}))
        return _settle(state, found.status, event.at)
    return no_effect(state, event.at, settings, give_up, f"read: acquisition {target} still proposed")


def _record(state: OrderState, acquisition_id: str) -> AcquisitionRecord:
    return state.acquisitions.get(acquisition_id) or AcquisitionRecord(status=A.PROPOSED)


def give_up(state: OrderState, at: datetime, message: str = "the decision could not be confirmed") -> Step:
    """A decision the provider refused or never confirmed: it is not sent again (the next listing
    tells its real status); a command's author hears about it through COMMAND_REJECTED."""
    intent = state.intent
    assert intent is not None
    assert intent.target is not None
    record = _record(state, intent.target).model_copy(update={"decision_sent": True, "pending_accept": None})
    state = update(_store(state, intent.target, record), intent=None, change_marker=None)
    if intent.decided_by is DecidedBy.COMMAND:
        why = reason("COMMAND_REJECTED", message, acquisitionId=intent.target, accept=intent.accept)
        state = repeat(state, at, why)
    return proceed(state, at)
