"""The reads before anything is ordered: validation, then (per flow) feasibility or attempts
(``oneatlas``), then the price, which ends a dry run at QUOTED."""

from __future__ import annotations

from worker.domain.flows import oneatlas, up42
from worker.domain.flows.common import S, Step, nothing, stop, transition, update
from worker.domain.flows.kinds import FlowKind, first_read, flow_of
from worker.domain.model import CallProvider, Op, OrderState, Phase, Priced, Validated

_PHASE_OF_READ = {Op.FEASIBILITY: Phase.FEASIBILITY, Op.ATTEMPTS: Phase.ATTEMPTS, Op.PRICE: Phase.PRICING}


def on_validated(state: OrderState, event: Validated) -> Step:
    """The provider accepts the request's parameters: run the flow's first read."""
    if state.phase is not Phase.VALIDATING:
        return nothing(state)
    op = first_read(state.request)
    return update(state, phase=_PHASE_OF_READ[op], step_retries=0), [CallProvider(op=op)]


def on_priced(state: OrderState, event: Priced) -> Step:
    """QUOTED with the price; a dry run stops there (QUOTED is its terminal status)."""
    if state.phase is not Phase.PRICING:
        return nothing(state)
    state = transition(update(state, price=event.quote, step_retries=0), S.QUOTED, event.at)
    if state.request.dry_run:
        return stop(state)
    if flow_of(state.request) is FlowKind.UP42:
        return up42.after_estimate(state, event.at)
    return oneatlas.after_price(state, event.at)
