"""Choosing the provider (``provider: "auto"``, CONTRACT §3.3): offers, a preference, a human
decision, and a fallback that never orders twice.

- **Offers.** Each candidate runs as a dry-run direct request of its own (an ``OrderState`` nested
  in its :class:`OfferRecord`), driven by the same ``decide`` as any request: validation, then
  feasibility or attempts, then the price, each with its own retries. Their calls carry the offer's
  id and come back as :class:`OfferAnswered`. A candidate that ends anywhere but at its quote drops
  out with its reason; the others go on. Retriable failures share the order's ``RETRY`` timer,
  scheduled at the earliest offer's retry.
- **Comparison.** When every candidate has settled, each offered price is converted into the
  budget currency (else EUR) with ``Settings.rates``; an offer without a price or a rate has no
  comparable price. The ranking (``prefer``) and the comparable prices are fixed then, and the
  order is QUOTED with its ``offers``. A dry run ends there; no offer at all ends it REJECTED
  ``NO_OFFER``.
- **Choice.** With ``autoApprove`` and the preferred offer's comparable price within the budget,
  the worker chooses it; otherwise DECISION_REQUIRED ``select-offer``. Choosing makes the order's
  ``request`` the direct request of that offer (its budget converted to the offer's currency when
  a rate is known) and records the intent PLACE_ORDER naming the offer: from there the order is a
  direct request to that provider (binding price rules, quotation, tracking).
- **Fallback.** Only a definitive refusal of the placement (the provider rejected it) moves to the
  next offered candidate: chosen by the worker under the same rule, else a new ``select-offer``
  decision. A placement whose outcome is unknown is reconciled at its provider as for a direct
  request; no other provider is tried while an order there may exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from worker.domain.flows.common import (
    S,
    Step,
    audit_reason,
    contract_offers,
    end,
    first_opportunity,
    misfit,
    no_budget_reason,
    nothing,
    offered,
    reason,
    repeat,
    require_decision,
    stop,
    transition,
    update,
    within_ceiling,
)
from worker.domain.flows.intents import start, timers_for
from worker.domain.flows.oneatlas import decision_deadline
from worker.domain.model import (
    CallProvider,
    DomainEvent,
    Effect,
    Intent,
    IntentKind,
    OfferAnswered,
    OfferRecord,
    Op,
    OrderState,
    Phase,
    Resumed,
    RoutingState,
    Schedule,
    Settings,
    StepFailed,
    TimerFired,
    TimerKind,
)
from worker.domain.ports import PriceQuote
from worker.events.models import (
    BUDGET_DECIMALS,
    BUDGET_MAX,
    Budget,
    Candidate,
    Command,
    Decision,
    DecisionKind,
    DecisionOption,
    Money,
    OrderRequest,
    Provider,
    Reason,
    RoutingPrefer,
)

Drive = Callable[[OrderState | None, DomainEvent, Settings], tuple[OrderState | None, list[Effect]]]
"""``decide`` itself, passed in by the caller (the offers are driven by the same core)."""

DEFAULT_CURRENCY = "EUR"
ChosenBy = str  # "worker" | "command" | "fallback"


# --------------------------------------------------------------------------- requests


def derived_request(
    request: OrderRequest, candidate: Candidate, budget: Budget | None, *, dry_run: bool
) -> OrderRequest:
    """The direct request of ``candidate``: the auto request with the candidate's provider,
    product and options (everything else, ``requestId`` and customer reference included, kept)."""
    return request.model_copy(
        update={
            "provider": candidate.provider,
            "product": candidate.product,
            "provider_options": dict(candidate.provider_options),
            "candidates": None,
            "routing": None,
            "budget": budget,
            "dry_run": dry_run,
        }
    )


def start_offers(state: OrderState, at: datetime) -> Step:
    """Phase OFFERS: one dry-run state per candidate, all validated at once."""
    request = state.request
    records: list[OfferRecord] = []
    effects: list[Effect] = []
    for index, candidate in enumerate(request.candidates or []):
        offer_id = f"{candidate.provider.value}-{index + 1}"
        sub_request = derived_request(request, candidate, None, dry_run=True)
        sub = transition(OrderState(request=sub_request, received_at=at), S.RECEIVED, at)
        records.append(OfferRecord(id=offer_id, candidate=index, state=update(sub, outbox=[])))
        effects.append(CallProvider(op=Op.VALIDATE, offer=offer_id))
    routing = RoutingState(request=request, offers=records)
    return update(state, phase=Phase.OFFERS, routing=routing), effects


# --------------------------------------------------------------------------- the offers phase


def on_offers_event(state: OrderState, event: DomainEvent, settings: Settings, drive: Drive) -> Step | None:
    """An event while the offers are collected; ``None`` for events the caller handles (the
    window end, the decision deadline)."""
    match event:
        case OfferAnswered():
            return _answered(state, event, settings, drive)
        case TimerFired(timer=TimerKind.RETRY):
            return _retry(state, event, settings, drive)
        case Resumed():
            return _resumed(state, event, settings, drive)
        case TimerFired():
            return None
        case _:
            return nothing(state)


def _answered(state: OrderState, event: OfferAnswered, settings: Settings, drive: Drive) -> Step:
    routing = state.routing
    record = routing.offer(event.offer) if routing is not None else None
    if state.phase is not Phase.OFFERS or record is None or record.state.terminal:
        return nothing(state)
    state, effects = _drive_offer(state, record, event.event, settings, drive)
    return _settle(state, event.at, effects, settings)


def _retry(state: OrderState, event: TimerFired, settings: Settings, drive: Drive) -> Step:
    """Re-run the reads of the offers whose retry is due."""
    effects: list[Effect] = []
    for record in _routing(state).offers:
        if record.retry_at is not None and record.retry_at <= event.at and not record.state.terminal:
            state, more = _drive_offer(state, record, event, settings, drive)
            effects += more
    return _settle(state, event.at, effects, settings)


def _resumed(state: OrderState, event: Resumed, settings: Settings, drive: Drive) -> Step:
    """After a restart: the order's timers, and the current read of every unsettled offer."""
    effects = timers_for(state)
    for record in _routing(state).offers:
        if not record.state.terminal:
            state, more = _drive_offer(state, record, event, settings, drive)
            effects += more
    return state, effects


def _drive_offer(
    state: OrderState, record: OfferRecord, event: DomainEvent, settings: Settings, drive: Drive
) -> Step:
    """Apply ``event`` to one offer's state; its calls carry the offer id, its retry timer is
    kept in the record (its other timers belong to the order)."""
    sub, sub_effects = drive(record.state, event, settings)
    if sub is None:
        return state, []
    effects: list[Effect] = []
    retry_at = None if any(isinstance(e, CallProvider) for e in sub_effects) else record.retry_at
    for effect in sub_effects:
        if isinstance(effect, CallProvider):
            effects.append(effect.model_copy(update={"offer": record.id}))
        elif isinstance(effect, Schedule) and effect.timer is TimerKind.RETRY:
            retry_at = effect.at
    if sub.terminal:
        retry_at = None
    changed = record.model_copy(update={"state": update(sub, outbox=[]), "retry_at": retry_at})
    return _replace(state, changed), effects


def _settle(state: OrderState, at: datetime, effects: list[Effect], settings: Settings) -> Step:
    """Once every offer has settled: compare; otherwise keep the earliest retry scheduled."""
    records = _routing(state).offers
    if all(record.state.terminal for record in records):
        return offers_known(state, at, settings)
    due = [record.retry_at for record in records if record.retry_at is not None]
    if due:
        effects = [*effects, Schedule(timer=TimerKind.RETRY, at=min(due))]
    return state, effects


# --------------------------------------------------------------------------- comparison


def conversion(currency: str, target: str, rates: dict[str, float]) -> float | None:
    """How many ``target`` units one ``currency`` unit is worth, or ``None`` without a rate.

    ``rates`` give each currency's value in one base currency (the budgets'); a target that is
    itself listed is reached through that base."""
    if currency == target:
        return 1.0
    if currency not in rates:
        return None
    return rates[currency] / rates[target] if target in rates else rates[currency]


def comparable_price(quote: PriceQuote | None, target: str, rates: dict[str, float]) -> Money | None:
    if quote is None:
        return None
    factor = conversion(quote.currency, target, rates)
    if factor is None:
        return None
    return Money(amount=round(quote.amount * factor, 6), currency=target)


def offers_known(state: OrderState, at: datetime, settings: Settings) -> Step:
    """Fix the comparable prices and the ranking; QUOTED with the offers (a dry run ends there),
    REJECTED ``NO_OFFER`` when every candidate dropped out; else the choice."""
    routing = _routing(state)
    target = _target_currency(routing.request)
    records = [
        record.model_copy(
            update={
                "comparable": comparable_price(_quote(record), target, settings.rates)
                if offered(record)
                else None
            }
        )
        for record in routing.offers
    ]
    ranking = _rank(records, routing.request)
    state = update(state, routing=routing.model_copy(update={"offers": records, "ranking": ranking}))
    if not any(offered(record) for record in records):
        why = reason("NO_OFFER", "no candidate could be offered: each dropped out with its reason")
        return end(state, S.REJECTED, at, why)
    state = transition(state, S.QUOTED, at)
    if state.request.dry_run:
        return stop(state)
    return choose_or_ask(state, at, "worker", None)


def _quote(record: OfferRecord) -> PriceQuote | None:
    return record.state.price


def _target_currency(request: OrderRequest) -> str:
    return request.budget.currency if request.budget is not None else DEFAULT_CURRENCY


def _rank(records: list[OfferRecord], request: OrderRequest) -> list[str]:
    """Offered candidates preferred first (``prefer``), then the dropped ones as listed."""
    prefer = request.routing.prefer if request.routing is not None else RoutingPrefer.CHEAPEST
    never = datetime.max.replace(tzinfo=request.window.end.tzinfo)

    def price_key(record: OfferRecord) -> tuple[bool, float]:
        comparable = record.comparable
        return (comparable is None, comparable.amount if comparable is not None else 0.0)

    def key(record: OfferRecord) -> tuple[object, ...]:
        if prefer is RoutingPrefer.LISTED:
            return (record.candidate,)
        first = first_opportunity(record.state)
        when = (first is None, first or never)
        if prefer is RoutingPrefer.EARLIEST:
            return (*when, *price_key(record), record.candidate)
        return (*price_key(record), *when, record.candidate)

    ranked = sorted((r for r in records if offered(r)), key=key)
    return [r.id for r in ranked] + [r.id for r in records if not offered(r)]


# --------------------------------------------------------------------------- choice


def choose_or_ask(state: OrderState, at: datetime, by: ChosenBy, why: Reason | None) -> Step:
    """The worker orders the preferred remaining offer when it may (``autoApprove``, a comparable
    price within the budget); otherwise DECISION_REQUIRED ``select-offer``.

    ``why`` (a fallback's refusal) goes on the status event that follows."""
    remaining = remaining_offers(state)
    preferred = remaining[0]
    if state.request.auto_approve and _within_budget(state, preferred.comparable):
        state, effects = choose(state, preferred, at, by)
        if why is not None:
            state = _announce(state, at, why)
        return state, effects
    why = why or _ask_reason(state, preferred)
    options = [DecisionOption(id=r.id, description=_describe(state, r)) for r in remaining]
    deadlines = [d for d in (decision_deadline(r.state) for r in remaining) if d is not None]
    decision = Decision(
        kind=DecisionKind.SELECT_OFFER, options=options, deadline=min(deadlines, default=None)
    )
    return require_decision(state, at, decision, Phase.AWAITING_OFFER, why)


def remaining_offers(state: OrderState) -> list[OfferRecord]:
    """The offered candidates not yet refused, preferred first."""
    routing = _routing(state)
    records = [routing.offer(offer_id) for offer_id in routing.ranking]
    return [r for r in records if r is not None and offered(r)]


def choose(state: OrderState, record: OfferRecord, at: datetime, by: ChosenBy) -> Step:
    """Make ``record`` the order's direct request and record the intent to place it.

    A OneAtlas price is binding: choosing the offer approves it. A UP42 estimate is not: its
    quotation is judged later as for a direct request."""
    routing = _routing(state)
    sub = record.state
    candidate = routing.candidate(record)
    direct = derived_request(
        routing.request, candidate, _budget_for(routing.request, sub.price, state), dry_run=False
    )
    binding = candidate.provider is Provider.ONEATLAS and sub.price is not None and not sub.price.indicative
    routing = routing.model_copy(
        update={"chosen": record.id, "chosen_by": by, "choices": routing.choices + 1}
    )
    state = update(
        state,
        request=direct,
        routing=routing,
        feasibility=sub.feasibility,
        attempts=list(sub.attempts),
        chosen_attempt=sub.chosen_attempt,
        price=sub.price,
        study=sub.study,
        approved_amount=sub.price.amount if binding and sub.price is not None else None,
    )
    return start(state, Intent(kind=IntentKind.PLACE_ORDER, started_at=at, target=record.id))


def _budget_for(request: OrderRequest, quote: PriceQuote | None, state: OrderState) -> Budget | None:
    """The budget in the offer's currency (the direct rules compare in the provider's currency);
    unchanged without a price or a rate."""
    budget = request.budget
    if budget is None or quote is None:
        return budget
    factor = conversion(quote.currency, budget.currency, _rates(state))
    if factor is None or factor <= 0:
        return budget
    return Budget(max_amount=converted_budget(budget.max_amount, factor), currency=quote.currency)


def converted_budget(amount: float, factor: float) -> float:
    """``amount / factor`` rounded *down* to the budget precision (a converted budget never
    allows more than the customer's), within the budget maximum."""
    # Rates are floats (1 / 0.9): drop their noise at 1e-6 before rounding down.
    exact = (Decimal(repr(amount)) / Decimal(repr(factor))).quantize(Decimal("0.000001"))
    step = Decimal(1).scaleb(-BUDGET_DECIMALS)
    return float(min(exact.quantize(step, rounding=ROUND_FLOOR), Decimal(BUDGET_MAX)))


def _rates(state: OrderState) -> dict[str, float]:
    """The rates the comparable prices were computed with, recovered from the offers (so a choice
    made after a restart with other settings converts as the offers said)."""
    rates: dict[str, float] = {}
    for record in _routing(state).offers:
        quote, comparable = record.state.price, record.comparable
        if quote is not None and comparable is not None and quote.amount > 0:
            rates[quote.currency] = comparable.amount / quote.amount
    return rates


def _within_budget(state: OrderState, comparable: Money | None) -> bool:
    """A comparable price within the budget; without a budget, within the deployment's ceiling
    for the comparison currency (ADR 0007)."""
    if comparable is None:
        return False
    budget = state.request.budget
    if budget is None:
        return within_ceiling(state, comparable.amount, comparable.currency)
    return comparable.amount <= budget.max_amount


def _ask_reason(state: OrderState, preferred: OfferRecord) -> Reason | None:
    if not state.request.auto_approve:
        return None
    budget = state.request.budget
    if preferred.comparable is None:
        return reason(
            "PRICE_NOT_COMPARABLE",
            f"offer {preferred.id} has no price in {_target_currency(state.request)}: "
            "the worker does not choose it",
            offer=preferred.id,
        )
    if budget is None:  # above the deployment's ceiling
        return no_budget_reason(state, preferred.comparable.amount, preferred.comparable.currency)
    return reason(
        "OVER_BUDGET",
        f"offer {preferred.id} costs {preferred.comparable.amount:g} {budget.currency}, "
        f"above the budget of {budget.max_amount:g} {budget.currency}",
        offer=preferred.id,
        amount=preferred.comparable.amount,
        maxAmount=budget.max_amount,
        budgetCurrency=budget.currency,
    )


def _describe(state: OrderState, record: OfferRecord) -> str:
    candidate = _routing(state).candidate(record)
    price = record.state.price
    cost = f"{price.amount:g} {price.currency}" if price is not None else "price after a manual study"
    return f"order from {candidate.provider.value} at {cost}"


# --------------------------------------------------------------------------- command


def on_select_offer(state: OrderState, command: Command, at: datetime) -> Step:
    """``select-offer``: order the offer a customer chose (one of the decision's options)."""
    if state.phase is not Phase.AWAITING_OFFER or state.decision is None:
        return misfit(state, command, at, "no offer is waiting to be chosen")
    if command.option_id not in {option.id for option in state.decision.options}:
        return misfit(state, command, at, f"unknown optionId {command.option_id!r}")
    record = _routing(state).offer(command.option_id)
    assert record is not None
    state = update(state, audit=audit_reason(command, "OFFER_SELECTED", "offer selected"))
    return choose(state, record, at, "command")


# --------------------------------------------------------------------------- fallback


def after_refusal(state: OrderState, event: StepFailed) -> tuple[OrderState, Step | None]:
    """The chosen provider definitively refused the placement (``event``; the caller checked
    that the intent is PLACE_ORDER). Returns the state with the offer marked refused, and the
    fallback step, or ``None`` when the order ends as a direct request would (no fallback asked,
    not a business refusal, a cancel waiting, the window over, nothing left to try)."""
    routing = state.routing
    record = routing.offer(routing.chosen) if routing is not None else None
    if routing is None or record is None:
        return state, None
    error = event.error
    why = reason(
        "PROVIDER_REJECTED",
        f"{routing.candidate(record).provider.value} refused the order: {error.message}",
        offer=record.id,
        operation=event.op.value,
        providerCode=error.provider_code,
    )
    state = _replace(state, record.model_copy(update={"refused": why}))
    fallback = routing.request.routing is None or routing.request.routing.fallback
    business_refusal = error.rejected or error.not_feasible
    # A cancel waiting for this outcome, or a window already over, ends the request instead.
    stopping = state.cancel_requested_by is not None or event.at >= state.request.window.end
    if not fallback or not business_refusal or stopping or not remaining_offers(state):
        return state, None
    state = unchoose(update(state, intent=None))
    details = {**why.details, "offers": [o.to_json_dict() for o in contract_offers(state) or []]}
    why = why.model_copy(update={"details": details})
    return state, choose_or_ask(state, event.at, "fallback", why)


def unchoose(state: OrderState) -> OrderState:
    """Back to the auto request, as before any choice (its offers and refusals kept)."""
    routing = _routing(state)
    return update(
        state,
        request=routing.request,
        routing=routing.model_copy(update={"chosen": None}),
        feasibility=None,
        attempts=[],
        chosen_attempt=None,
        price=None,
        study=None,
        approved_amount=None,
    )


def _announce(state: OrderState, at: datetime, why: Reason) -> OrderState:
    """The status event of a fallback: QUOTED again (from a decision) or QUOTED repeated."""
    if state.status is S.DECISION_REQUIRED:
        return transition(state, S.QUOTED, at, why=why)
    return repeat(state, at, why)


# --------------------------------------------------------------------------- helpers


def _routing(state: OrderState) -> RoutingState:
    if state.routing is None:
        raise ValueError("not a provider-choice order")
    return state.routing


def _replace(state: OrderState, record: OfferRecord) -> OrderState:
    routing = _routing(state)
    offers = [record if r.id == record.id else r for r in routing.offers]
    return update(state, routing=routing.model_copy(update={"offers": offers}))
