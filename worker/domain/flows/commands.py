"""Customer commands (CONTRACT §3.2).

A command acts once per ``commandId`` (the last ``settings.commands_remembered`` ids are kept). A
command that does not fit the state is answered with a status event repeating the status, reason
``COMMAND_REJECTED``. A fitting command is audited: the status event it causes carries
``reason = {code, message: command.reason or a default, details: {commandId, command, issuedBy}}``
with code ``APPROVED``, ``DECLINED``, ``CANCELLED``, ``OPTION_SELECTED`` or ``OFFER_SELECTED``.
Acquisition commands are audited in their AcquisitionEvent (``decidedBy: command``).
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows import acquisitions, placement, routing
from worker.domain.flows.common import S, Step, audit_reason, end, misfit, update
from worker.domain.flows.intents import (
    start_cancel,
    start_option_choice,
    start_placing,
    start_quotation_decision,
)
from worker.domain.model import CommandReceived, OrderState, Phase, Settings
from worker.events.models import Command, CommandName, DecisionKind


def on_command(state: OrderState, event: CommandReceived, settings: Settings) -> Step:
    """Apply ``event.command`` once; misfits are answered, never dropped."""
    command, at = event.command, event.at
    if command.command_id in state.commands_seen:
        return state, []
    seen = [*state.commands_seen, command.command_id][-settings.commands_remembered :]
    state = update(state, commands_seen=seen)
    if state.terminal:
        return misfit(state, command, at, f"the order is finished ({state.status})")
    match command.command:
        case CommandName.APPROVE:
            return _approve(state, command, at)
        case CommandName.REJECT:
            return _reject(state, command, at)
        case CommandName.CANCEL:
            return _cancel(state, command, at)
        case CommandName.SELECT_FEASIBILITY_OPTION:
            return _select_option(state, command, at)
        case CommandName.SELECT_OFFER:
            return routing.on_select_offer(state, command, at)
        case CommandName.ACCEPT_ACQUISITION | CommandName.REFUSE_ACQUISITION:
            return _acquisition(state, command, at)


def _approve(state: OrderState, command: Command, at: datetime) -> Step:
    """Approve the price (or confirm a manual order) before placement, or accept a quotation."""
    audited = update(state, audit=audit_reason(command, "APPROVED", "approved"))
    if state.phase is Phase.AWAITING_APPROVAL:
        price_approved = state.price is not None and _decision_is(state, DecisionKind.APPROVE_PRICE)
        amount = state.price.amount if state.price is not None and price_approved else None
        return start_placing(update(audited, approved_amount=amount), at)
    if state.phase is Phase.AWAITING_QUOTATION_DECISION and state.quotation is not None:
        audited = update(audited, approved_amount=state.quotation.amount)
        return start_quotation_decision(audited, at, accept=True)
    if state.phase is Phase.AWAITING_ADOPTION and state.found_order is not None:
        # The customer vouches for the order found under the reference: no paid call is made.
        return placement.adopt(audited, state.found_order, at)
    return misfit(state, command, at, "nothing waits for an approval")


def _reject(state: OrderState, command: Command, at: datetime) -> Step:
    """Decline: REJECTED ``DECLINED`` (a pending quotation is refused at the provider first)."""
    why = audit_reason(command, "DECLINED", "declined")
    if state.phase in (Phase.AWAITING_APPROVAL, Phase.AWAITING_OFFER, Phase.AWAITING_ADOPTION):
        return end(state, S.REJECTED, at, why)
    if state.phase is Phase.AWAITING_QUOTATION_DECISION and state.quotation is not None:
        return start_quotation_decision(update(state, audit=why), at, accept=False)
    return misfit(state, command, at, "nothing waits for an approval (use cancel to stop the order)")


def _cancel(state: OrderState, command: Command, at: datetime) -> Step:
    """Cancel: at once before placement; after the write in flight; at the provider once placed."""
    why = audit_reason(command, "CANCELLED", "cancelled on request")
    if state.intent is not None:
        if state.phase is Phase.CANCELLING or state.cancel_requested_by is not None:
            return misfit(state, command, at, "a cancellation is already in progress")
        return update(state, cancel_requested_by=command.command_id, cancel_audit=why), []
    if state.placed is None:
        return end(state, S.CANCELLED, at, why, by_user=True)
    if state.phase is Phase.AWAITING_DELIVERY:
        return misfit(
            state, command, at, "the provider has finished the order; its products are being delivered"
        )
    return start_cancel(update(state, cancel_requested_by=command.command_id, cancel_audit=why), at)


def _select_option(state: OrderState, command: Command, at: datetime) -> Step:
    if state.phase is not Phase.AWAITING_OPTION or state.decision is None:
        return misfit(state, command, at, "no feasibility option is waiting to be chosen")
    if command.option_id not in {o.id for o in state.decision.options}:
        return misfit(state, command, at, f"unknown optionId {command.option_id!r}")
    state = update(state, audit=audit_reason(command, "OPTION_SELECTED", "feasibility option selected"))
    return start_option_choice(state, at, command.option_id or "")


def _acquisition(state: OrderState, command: Command, at: datetime) -> Step:
    accept = command.command is CommandName.ACCEPT_ACQUISITION
    step = acquisitions.request_decision(state, command, at, accept=accept)
    if step is None:
        return misfit(
            state,
            command,
            at,
            f"acquisition {command.acquisition_id!r} is unknown, not PROPOSED or already decided",
        )
    return step


def _decision_is(state: OrderState, kind: DecisionKind) -> bool:
    return state.decision is not None and state.decision.kind is kind
