"""Building blocks shared by every provider flow: status transitions and the status events they
emit, reasons, budgets, decisions, backoff and the end of an order.

Every status change goes through :func:`transition` (the only caller of ``transition_allowed``):
it raises :class:`~worker.errors.IllegalTransition` for a change the contract forbids, because
such a change is a bug of the core, never something to ignore. :func:`repeat` emits a status event
that repeats the current status (command answers, progress changes); it is not a transition.

All functions are pure and return new (frozen) states; none mutates its arguments.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from worker.domain.model import (
    Effect,
    Intent,
    OfferRecord,
    OrderState,
    OutboxStatus,
    Phase,
    RoutingState,
    Schedule,
    Settings,
    TimerKind,
    Unschedule,
)
from worker.errors import IllegalTransition
from worker.events.models import (
    AttemptInfo,
    Command,
    Decision,
    DecisionKind,
    DecisionOption,
    Feasibility,
    Offer,
    OfferStatus,
    OrderStatusEvent,
    Price,
    Progress,
    Reason,
)
from worker.events.status import OrderStatus, StapiStatus, stapi_status, transition_allowed

Step = tuple[OrderState, list[Effect]]
"""What every handler returns: the new state and the effects the shell must perform."""

S = OrderStatus

DECISION_PHASES = frozenset(
    {
        Phase.AWAITING_APPROVAL,
        Phase.AWAITING_OPTION,
        Phase.AWAITING_QUOTATION_DECISION,
        Phase.AWAITING_OFFER,
        Phase.AWAITING_ADOPTION,
    }
)
# Statuses that mean "the order is active at the provider" (progress repeats are emitted there).
ACTIVE_STATUSES = frozenset({S.ORDERED, S.IN_PROGRESS})


def update(state: OrderState, **changes: Any) -> OrderState:
    """A copy of ``state`` with ``changes`` (the state is frozen)."""
    return state.model_copy(update=changes)


def nothing(state: OrderState) -> Step:
    """No change, no effect (the very same object, so the shell skips persisting)."""
    return state, []


# --------------------------------------------------------------------------- reasons


def reason(code: str, message: str, **details: Any) -> Reason:
    """A contract ``reason``; ``details`` with a ``None`` value are left out."""
    return Reason(code=code, message=message, details={k: v for k, v in details.items() if v is not None})


def command_details(command: Command) -> dict[str, Any]:
    """What identifies a command in an audit trail (``commandId``, ``command``, ``issuedBy``)."""
    details = {"commandId": command.command_id, "command": command.command.value}
    if command.issued_by is not None:
        details["issuedBy"] = command.issued_by
    return details


def audit_reason(command: Command, code: str, default_message: str) -> Reason:
    """The reason a fitting command leaves on the status event it causes."""
    return Reason(code=code, message=command.reason or default_message, details=command_details(command))


# --------------------------------------------------------------------------- status events


def transition(
    state: OrderState,
    status: OrderStatus,
    at: datetime,
    *,
    why: Reason | None = None,
    by_user: bool = False,
) -> OrderState:
    """Move to ``status`` and emit its status event (sequence + 1, appended to the outbox).

    A pending command audit (``state.audit``) is attached to this event and cleared; when the
    transition has its own reason, the audit goes into its details under ``command``.

    Raises:
        IllegalTransition: ``state.status -> status`` is not allowed by the contract.
    """
    if not transition_allowed(state.status, status):
        raise IllegalTransition(str(state.status), status.value)
    why = _with_audit(why, state.audit)
    if status is not S.DECISION_REQUIRED:
        state = update(state, decision=None)
    stapi = stapi_status(status, by_user=by_user)
    return update(_emit(state, status, at, why, stapi), status_since=at, audit=None)


def repeat(state: OrderState, at: datetime, why: Reason | None) -> OrderState:
    """Emit a status event repeating the current status (``previousStatus`` = ``status``), only
    when it says something (CONTRACT §6): a new ``reason``, or a change a consumer can see in
    ``progress``, ``providerRefs``, ``feasibility``, ``price``, ``decision`` or ``offers``.
    Otherwise the state is returned as it is, without an event."""
    if state.status is None or state.last_event is None:
        raise IllegalTransition("None", "repeat")
    if not _news(state, why):
        return state
    return _emit(state, state.status, at, why, state.last_event.stapi_status)


def _news(state: OrderState, why: Reason | None) -> bool:
    """Whether a repeat with ``why`` would show a consumer anything the last event did not."""
    last = state.last_event
    assert last is not None
    if why is not None and why != last.reason:
        return True
    now = (
        dict(state.placed.refs) if state.placed else {},
        contract_feasibility(state),
        contract_price(state),
        state.decision if state.status is S.DECISION_REQUIRED else None,
        _informative(state.progress),
        contract_offers(state),
    )
    before = (
        last.provider_refs,
        last.feasibility,
        last.price,
        last.decision,
        _informative(last.progress),
        last.offers,
    )
    return now != before


def _informative(progress: Progress | None) -> Progress | None:
    """``progress`` as a consumer reads it: all zero (nothing acquired, covered or delivered yet)
    says no more than none."""
    if progress is None:
        return None
    counts = progress.acquisitions
    empty = not (counts.proposed or counts.validated or counts.refused or progress.deliveries)
    return None if empty and not progress.coverage_pct else progress


def _with_audit(why: Reason | None, audit: Reason | None) -> Reason | None:
    if audit is None:
        return why
    if why is None:
        return audit
    details = {**why.details, "command": {"code": audit.code, **audit.details}}
    return why.model_copy(update={"details": details})


def _emit(
    state: OrderState, status: OrderStatus, at: datetime, why: Reason | None, stapi: StapiStatus
) -> OrderState:
    sequence = state.sequence + 1
    event = OrderStatusEvent(
        request_id=state.request_id,
        provider=state.request.provider,
        sequence=sequence,
        status=status,
        previous_status=state.status,
        stapi_status=stapi,
        occurred_at=at,
        provider_refs=dict(state.placed.refs) if state.placed else {},
        feasibility=contract_feasibility(state),
        price=contract_price(state),
        decision=state.decision if status is S.DECISION_REQUIRED else None,
        progress=state.progress,
        reason=why,
        offers=contract_offers(state),
    )
    outbox = [*state.outbox, OutboxStatus(event=event)]
    return update(state, status=status, sequence=sequence, last_event=event, reason=why, outbox=outbox)


def contract_feasibility(state: OrderState) -> Feasibility | None:
    """The contract ``feasibility``: the provider's answer with the attempts (chosen flagged), or
    the automation of a provider feasibility study (UP42)."""
    result = state.feasibility
    if result is None:
        return Feasibility(automation=state.study.automation) if state.study else None
    chosen = state.chosen_attempt.id if state.chosen_attempt else None
    attempts = [
        AttemptInfo(
            id=a.id,
            acquisition_start=a.acquisition_start,
            acquisition_end=a.acquisition_end,
            order_deadline=a.order_deadline,
            incidence_angle=a.incidence_angle,
            chosen=a.id == chosen,
        )
        for a in state.attempts
    ]
    return Feasibility(
        automation=result.automation,
        classification=result.classification,
        programming_type=result.programming_type,
        attempts=attempts,
    )


def contract_price(state: OrderState) -> Price | None:
    """The latest price: the quotation when there is one, else the price quote."""
    if state.quotation is not None:
        return Price(amount=state.quotation.amount, currency=state.quotation.currency)
    if state.price is not None:
        return Price(amount=state.price.amount, currency=state.price.currency, area_km2=state.price.area_km2)
    return None


def contract_offers(state: OrderState) -> list[Offer] | None:
    """The contract ``offers`` of a ``provider: "auto"`` request, preferred first, once every
    offer is known (``None`` before, and for a direct request)."""
    routing = state.routing
    if routing is None or not routing.ranking:
        return None
    by_id = {record.id: record for record in routing.offers}
    return [_offer(routing, by_id[offer_id]) for offer_id in routing.ranking]


def offered(record: OfferRecord) -> bool:
    """A candidate that reached a quote (a dry run's end) and whose placement was not refused."""
    return record.state.status is S.QUOTED and record.refused is None


def first_opportunity(state: OrderState) -> datetime | None:
    """The earliest acquisition the provider stated: the chosen attempt's start (attempts flows)."""
    attempt = state.chosen_attempt
    return attempt.acquisition_start if attempt is not None else None


def _offer(routing: RoutingState, record: OfferRecord) -> Offer:
    candidate = routing.candidate(record)
    sub = record.state
    return Offer(
        id=record.id,
        provider=candidate.provider,
        product=candidate.product,
        price=contract_price(sub),
        comparable_price=record.comparable,
        feasibility=contract_feasibility(sub),
        first_opportunity=first_opportunity(sub),
        status=OfferStatus.OFFERED if offered(record) else OfferStatus.DROPPED,
        reason=record.refused or sub.reason,
    )


# --------------------------------------------------------------------------- ending


def end(
    state: OrderState, status: OrderStatus, at: datetime, why: Reason | None, *, by_user: bool = False
) -> Step:
    """Terminal ``status``: emit it, phase DONE, forget any intent, unschedule every timer."""
    state = transition(state, status, at, why=why, by_user=by_user)
    return stop(state)


def stop(state: OrderState) -> Step:
    """Phase DONE without a new status (a dry run ends at QUOTED) and every timer unscheduled."""
    done = update(
        state, phase=Phase.DONE, intent=None, cancel_requested_by=None, cancel_audit=None, step_retries=0
    )
    return done, [Unschedule(timer=t) for t in TimerKind]


# --------------------------------------------------------------------------- commands


def misfit(state: OrderState, command: Command, at: datetime, why: str) -> Step:
    """Answer a command that does not fit the state: repeat the status with COMMAND_REJECTED."""
    answer = Reason(code="COMMAND_REJECTED", message=why, details=command_details(command))
    return repeat(state, at, answer), []


# --------------------------------------------------------------------------- budgets and decisions


def within_budget(state: OrderState, amount: float, currency: str) -> bool:
    """The same currency as the budget and ``amount <= maxAmount``; without a budget, within the
    deployment's ceiling for that currency (ADR 0007; no ceiling recorded: any amount)."""
    budget = state.request.budget
    if budget is None:
        return within_ceiling(state, amount, currency)
    return budget.currency == currency and amount <= budget.max_amount


def within_ceiling(state: OrderState, amount: float, currency: str) -> bool:
    """``amount`` is at most the order's unbudgeted ceiling for ``currency`` (``None``: no ceiling)."""
    ceiling = state.unbudgeted_ceiling
    return ceiling is None or (currency in ceiling and amount <= ceiling[currency])


def no_budget_reason(state: OrderState, amount: float, currency: str) -> Reason:
    """``NO_BUDGET``: a request without a budget whose price the deployment does not let the
    worker approve by itself."""
    ceiling = (state.unbudgeted_ceiling or {}).get(currency)
    limit = (
        f"above the deployment's ceiling of {ceiling:g} {currency}"
        if ceiling is not None
        else (f"and the deployment sets no ceiling for {currency}")
    )
    return reason(
        "NO_BUDGET",
        f"the request has no budget; the price {amount:g} {currency} is {limit}: approve it by command",
        amount=amount,
        currency=currency,
        ceiling=ceiling,
    )


def approved_covers(state: OrderState, amount: float, currency: str) -> bool:
    """A customer approved (by command) at least ``amount`` in ``currency``."""
    approved_currency = state.price.currency if state.price else currency
    return (
        state.approved_amount is not None
        and currency == approved_currency
        and (amount <= state.approved_amount)
    )


def over_budget_reason(state: OrderState, amount: float, currency: str) -> Reason | None:
    """``OVER_BUDGET`` when the price is not within the budget (``NO_BUDGET`` when there is no
    budget and the price is above the ceiling), else ``None``."""
    budget = state.request.budget
    if within_budget(state, amount, currency):
        return None
    if budget is None:
        return no_budget_reason(state, amount, currency)
    return reason(
        "OVER_BUDGET",
        f"price {amount:g} {currency} exceeds the budget of {budget.max_amount:g} {budget.currency}",
        amount=amount,
        currency=currency,
        maxAmount=budget.max_amount,
        budgetCurrency=budget.currency,
    )


def approve_options(approve: str, reject: str) -> list[DecisionOption]:
    return [
        DecisionOption(id="approve", description=approve),
        DecisionOption(id="reject", description=reject),
    ]


def require_decision(
    state: OrderState, at: datetime, decision: Decision, phase: Phase, why: Reason | None
) -> Step:
    """DECISION_REQUIRED with ``decision``, in ``phase``, with its deadline timer when it has one."""
    state = transition(update(state, decision=decision, phase=phase), S.DECISION_REQUIRED, at, why=why)
    effects: list[Effect] = []
    if decision.deadline is not None:
        effects.append(Schedule(timer=TimerKind.DECISION_DEADLINE, at=decision.deadline))
    return state, effects


def price_decision(state: OrderState, amount: float, currency: str, deadline: datetime | None) -> Decision:
    """An ``approve-price`` decision for ``amount currency``."""
    options = approve_options(f"order at {amount:g} {currency}", "decline the order")
    return Decision(kind=DecisionKind.APPROVE_PRICE, options=options, deadline=deadline)


# --------------------------------------------------------------------------- timing


def after(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)


def backoff_seconds(state: OrderState, retry: int, settings: Settings, retry_after: float | None) -> float:
    """Exponential backoff for the ``retry``-th retry (1-based), capped, with up to 20 % jitter.

    The jitter is derived from a hash of ``requestId`` and ``retry`` (``decide`` stays pure and
    replays identically), and a provider's ``Retry-After`` is always respected.
    """
    base = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (retry - 1))
    digest = hashlib.sha256(f"{state.request_id}:{retry}".encode()).digest()
    jitter = int.from_bytes(digest[:2], "big") / 65535 * 0.2
    delay: float = min(settings.retry_max_seconds, base * (1 + jitter))
    return max(delay, retry_after or 0.0)


def settle_time(intent: Intent, settings: Settings) -> datetime:
    """When a write of ``intent`` has surely landed (or never will): the base of reconciliation."""
    base = intent.outcome_unknown_at or intent.started_at
    return after(base, settings.settle_seconds)
