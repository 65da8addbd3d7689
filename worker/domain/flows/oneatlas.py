"""The OneAtlas steps: feasibility or attempts, the approval of a price, the manual-study path,
and the status right after placement (SPOT/PLEIADES legacy orders and Pléiades Neo quotations).

See ``docs/provider-status-mapping.md`` for the status sequence of each programming type.
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows.common import (
    Step,
    approve_options,
    end,
    nothing,
    over_budget_reason,
    price_decision,
    reason,
    require_decision,
    stop,
    transition,
    update,
    within_budget,
)
from worker.domain.flows.intents import start_placing
from worker.domain.flows.kinds import PNEO_FLOWS, flow_of, is_manual
from worker.domain.model import (
    AttemptsFound,
    CallProvider,
    FeasibilityAnswered,
    Op,
    OrderState,
    Phase,
)
from worker.domain.ports import Attempt, FeasibilityResult
from worker.events.models import Automation, Decision, DecisionKind
from worker.events.status import OrderStatus as S

MANUAL_FEASIBILITY = "MANUAL_FEASIBILITY"


def not_feasible(state: OrderState, at: datetime, message: str, **details: object) -> Step:
    return end(state, S.REJECTED, at, reason("NOT_FEASIBLE", message, **details))


# --------------------------------------------------------------------------- feasibility


def on_feasibility(state: OrderState, event: FeasibilityAnswered) -> Step:
    """FEASIBILITY answered: FEASIBLE, then a price (automatic) or the manual-study path."""
    if state.phase is not Phase.FEASIBILITY:
        return nothing(state)
    state = update(state, feasibility=event.result, step_retries=0)
    if not event.result.available:
        return not_feasible(state, event.at, "the provider has no capacity for this request")
    state = transition(state, S.FEASIBLE, event.at)
    if is_manual(state):
        return manual_study(state, event.at)
    return update(state, phase=Phase.PRICING), [CallProvider(op=Op.PRICE)]


def manual_study(state: OrderState, at: datetime) -> Step:
    """A manual study gives no price before it runs. A dry run ends at QUOTED without a price;
    otherwise the order is placed (the provider runs the study) when the customer auto-approves
    without a budget, else the customer must confirm first."""
    why = reason(
        MANUAL_FEASIBILITY,
        "the provider studies this request by hand; its price is known only after the study",
        automation=Automation.MANUAL.value,
        acquisitionMode=state.request.constraints.acquisition_mode.value,
    )
    if state.request.dry_run:
        return stop(transition(state, S.QUOTED, at, why=why))
    # Without a budget the study is ordered by itself only where a ceiling will cap its price.
    ceiling = state.unbudgeted_ceiling
    if state.request.auto_approve and state.request.budget is None and (ceiling is None or ceiling):
        return start_placing(state, at)
    options = approve_options("order the study (the price comes after it)", "decline the order")
    decision = Decision(kind=DecisionKind.CONFIRM_ORDER, options=options, deadline=decision_deadline(state))
    return require_decision(state, at, decision, Phase.AWAITING_APPROVAL, why)


# --------------------------------------------------------------------------- attempts


def on_attempts(state: OrderState, event: AttemptsFound) -> Step:
    """ATTEMPTS answered: choose the first attempt within the constraints, FEASIBLE, then a price."""
    if state.phase is not Phase.ATTEMPTS:
        return nothing(state)
    state = update(state, attempts=list(event.attempts), step_retries=0)
    chosen = choose_attempt(state, event.attempts, event.at)
    if chosen is None:
        return not_feasible(
            state,
            event.at,
            "no attempt fits the constraints before its order deadline",
            attempts=len(event.attempts),
            maxIncidenceAngle=state.request.constraints.max_incidence_angle,
        )
    product = state.request.oneatlas_product()
    result = FeasibilityResult(
        programming_type=product.programming_type.value, automation=Automation.AUTOMATIC
    )
    state = update(state, chosen_attempt=chosen, feasibility=result)
    state = transition(state, S.FEASIBLE, event.at)
    return update(state, phase=Phase.PRICING), [CallProvider(op=Op.PRICE)]


def choose_attempt(state: OrderState, attempts: list[Attempt], at: datetime) -> Attempt | None:
    """The first attempt (the provider lists them soonest first) whose incidence is within
    ``maxIncidenceAngle`` (when both are known) and whose order deadline is still ahead."""
    limit = state.request.constraints.max_incidence_angle
    for attempt in attempts:
        steep = limit is not None and attempt.incidence_angle is not None and attempt.incidence_angle > limit
        late = attempt.order_deadline is not None and attempt.order_deadline <= at
        if not steep and not late:
            return attempt
    return None


# --------------------------------------------------------------------------- price and placement


def after_price(state: OrderState, at: datetime) -> Step:
    """QUOTED and not a dry run: auto-approve within budget, else ask for ``approve-price``."""
    assert state.price is not None
    amount, currency = state.price.amount, state.price.currency
    if state.request.auto_approve and within_budget(state, amount, currency):
        return start_placing(state, at)
    decision = price_decision(state, amount, currency, decision_deadline(state))
    return require_decision(
        state, at, decision, Phase.AWAITING_APPROVAL, over_budget_reason(state, amount, currency)
    )


def after_placed(state: OrderState, at: datetime) -> OrderState:
    """The status once the order exists: a manual study runs (FEASIBILITY_PENDING); a Pléiades Neo
    order is a quotation waiting (stays QUOTED); a legacy order is ORDERED."""
    if is_manual(state):
        return transition(state, S.FEASIBILITY_PENDING, at)
    if flow_of(state.request) in PNEO_FLOWS:
        # Approved by a command before placement: leave DECISION_REQUIRED for QUOTED.
        return transition(state, S.QUOTED, at) if state.status is S.DECISION_REQUIRED else state
    return transition(state, S.ORDERED, at)


def decision_deadline(state: OrderState) -> datetime | None:
    """A decision's deadline before placement: the feasibility's expiry (PNEO) or the chosen
    attempt's order deadline."""
    if state.chosen_attempt is not None and state.chosen_attempt.order_deadline is not None:
        return state.chosen_attempt.order_deadline
    return state.feasibility.expires_at if state.feasibility else None
