"""The UP42 steps: the indicative estimate, the order created before any credit is spent, and the
feasibility study with the options a customer may have to choose from.

UP42 spends credits only when a quotation is accepted, so creating the order is safe; the budget
is checked against the estimate only to stop early when it is already above the budget.
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows.common import (
    Step,
    nothing,
    over_budget_reason,
    price_decision,
    require_decision,
    transition,
    update,
    within_budget,
)
from worker.domain.flows.intents import start_placing
from worker.domain.model import OrderState, Phase, TimerKind, Unschedule
from worker.domain.ports import FeasibilityStudy, StudyDecision
from worker.events.models import Automation, Decision, DecisionKind, DecisionOption
from worker.events.status import OrderStatus as S


def after_estimate(state: OrderState, at: datetime) -> Step:
    """QUOTED (estimate) and not a dry run: create the order, unless a budget is set and the
    estimate is above it (then ``approve-price`` first). ``autoApprove`` is applied to the binding
    quotation, not to the estimate."""
    assert state.price is not None
    amount, currency = state.price.amount, state.price.currency
    # The estimate binds nothing: without a budget the order is created, and the ceiling applies
    # to the binding quotation (ADR 0007).
    if state.request.budget is None or within_budget(state, amount, currency):
        return start_placing(state, at)
    decision = price_decision(state, amount, currency, None)
    return require_decision(
        state, at, decision, Phase.AWAITING_APPROVAL, over_budget_reason(state, amount, currency)
    )


def after_placed(state: OrderState, at: datetime) -> OrderState:
    """The order exists (status CREATED at UP42): its feasibility is being established."""
    return transition(state, S.FEASIBILITY_PENDING, at)


def study_settled(study: FeasibilityStudy | None) -> bool:
    """A study that needs nothing more from the customer (automatic, or an option accepted)."""
    return study is not None and (
        study.automation is Automation.AUTOMATIC or study.decision is StudyDecision.ACCEPTED
    )


def feasible(state: OrderState, study: FeasibilityStudy, at: datetime) -> Step:
    """The study is settled: FEASIBLE (from FEASIBILITY_PENDING, or from the option decision)."""
    state = update(state, study=study)
    waiting_option = state.phase is Phase.AWAITING_OPTION
    if state.status is not S.FEASIBILITY_PENDING and not waiting_option:
        return state, []
    state = update(transition(state, S.FEASIBLE, at), phase=Phase.AWAITING_PROVIDER)
    return state, [Unschedule(timer=TimerKind.DECISION_DEADLINE)] if waiting_option else []


def on_options(state: OrderState, study: FeasibilityStudy | None, at: datetime) -> Step:
    """A manual study with options: DECISION_REQUIRED ``select-feasibility-option`` (once per
    distinct study), or FEASIBLE when an option was already accepted at the provider."""
    if study is None:
        return nothing(state)
    if study_settled(study):
        return feasible(state, study, at)
    if not study.options or (state.phase is Phase.AWAITING_OPTION and state.study == study):
        return nothing(state)
    options = [DecisionOption(id=o.id, description=o.description) for o in study.options]
    decision = Decision(kind=DecisionKind.SELECT_FEASIBILITY_OPTION, options=options, deadline=study.deadline)
    return require_decision(update(state, study=study), at, decision, Phase.AWAITING_OPTION, None)
