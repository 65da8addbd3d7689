"""Provider failures (``StepFailed``): retry, reconcile, or end the order with a reason.

- A write (place, quotation decision, option choice, acquisition decision, cancel) that timed out
  or failed retriably is never re-sent blindly: its outcome is read back after the settle period
  (``reconcile``). A refused write ends or answers per operation (see :func:`_write_refused`),
  but only when no earlier send of it had an unknown outcome: otherwise the refusal starts a
  reconcile (``reconcile.refused_in_doubt``) and only the provider's record decides.
- A read that failed retriably is retried with exponential backoff (``RETRY``, or ``RECONCILE``
  for the read-back of a write in doubt); after ``settings.max_step_retries`` retries the order
  is FAILED ``RETRIES_EXHAUSTED``. The read-back of a write in doubt is retried without limit: an
  order that may exist and cost money is never abandoned because the provider was down.
- A refused read ends the order: REJECTED before anything was placed, FAILED after.
"""

from __future__ import annotations

from worker.domain.flows import acquisitions, deliveries, routing, writes
from worker.domain.flows.common import S, Step, after, backoff_seconds, end, nothing, reason, update
from worker.domain.flows.reconcile import in_doubt, outcome_unknown, refused_in_doubt
from worker.domain.model import (
    IntentKind,
    Op,
    OrderState,
    Phase,
    Schedule,
    Settings,
    StepFailed,
    TimerKind,
)
from worker.events.models import Reason

_WRITES = frozenset({Op.PLACE_ORDER, Op.DECIDE_QUOTATION, Op.CHOOSE_OPTION, Op.DECIDE_ACQUISITION, Op.CANCEL})
_EXPECTED: dict[Phase, frozenset[Op]] = {
    Phase.VALIDATING: frozenset({Op.VALIDATE}),
    Phase.FEASIBILITY: frozenset({Op.FEASIBILITY}),
    Phase.ATTEMPTS: frozenset({Op.ATTEMPTS}),
    Phase.PRICING: frozenset({Op.PRICE}),
    Phase.PLACING: frozenset({Op.PLACE_ORDER, Op.FIND_ORDER}),
    Phase.RECONCILING: frozenset({Op.FIND_ORDER}),
    Phase.CHOOSING_OPTION: frozenset({Op.CHOOSE_OPTION, Op.GET_ORDER}),
    Phase.DECIDING_QUOTATION: frozenset({Op.DECIDE_QUOTATION, Op.GET_ORDER}),
    Phase.CANCELLING: frozenset({Op.CANCEL, Op.GET_ORDER}),
}
_TRACKING_OPS = frozenset({Op.LIST_ACQUISITIONS, Op.DECIDE_ACQUISITION})
# Codes a provider gives that keep their own name on the REJECTED/FAILED event.
_OWN_CODES = frozenset({"INVALID_REQUEST", "PROVIDER_NOT_CONFIGURED"})
_INTENT_OF_OP = {
    Op.PLACE_ORDER: {IntentKind.PLACE_ORDER},
    Op.DECIDE_QUOTATION: {IntentKind.ACCEPT_QUOTATION, IntentKind.REFUSE_QUOTATION},
    Op.CHOOSE_OPTION: {IntentKind.CHOOSE_OPTION},
    Op.DECIDE_ACQUISITION: {IntentKind.DECIDE_ACQUISITION},
    Op.CANCEL: {IntentKind.CANCEL},
}


def on_failed(state: OrderState, event: StepFailed, settings: Settings) -> Step:
    """Dispatch a failure; a failure of a call the current phase did not ask for is stale."""
    if not _expected(state, event):
        return nothing(state)
    if event.op is Op.LIST_ACQUISITIONS and not _acquisition_in_doubt(state):
        # Forget the marker: the next poll lists the acquisitions again (a finished order, no
        # longer polled, completes on what is known).
        state = update(state, change_marker=None, listing_due=False)
        if state.phase is Phase.AWAITING_DELIVERY:
            return deliveries.check(state, event.at, settings)
        return state, []
    if event.op in _WRITES:
        if event.error.outcome_unknown or event.error.retriable:
            return outcome_unknown(state, event.at, event.error, settings)
        assert state.intent is not None  # _expected: a write's failure is expected only with its intent
        if in_doubt(state.intent):
            if event.error.rejected:
                # An earlier send may have taken effect: this refusal may be its consequence.
                return refused_in_doubt(state, event.at, event.error, settings)
            # Credentials refused, an answer not as documented: this send did nothing, and the
            # earlier one is as unknown as before. Read back, as after any unknown outcome.
            return outcome_unknown(state, event.at, event.error, settings)
        return _write_refused(state, event)
    if event.error.retriable:
        return _retry_later(state, event, settings)
    return _read_refused(state, event)


def _expected(state: OrderState, event: StepFailed) -> bool:
    if state.intent is not None and event.op in _WRITES:
        if state.intent.kind not in _INTENT_OF_OP[event.op]:
            return False
        if event.target is not None and event.target != state.intent.target:
            return False
    elif event.op in _WRITES:
        return False
    tracked = state.phase in (
        Phase.AWAITING_PROVIDER,
        Phase.AWAITING_OPTION,
        Phase.AWAITING_QUOTATION_DECISION,
    )
    final_listing = state.phase is Phase.AWAITING_DELIVERY and event.op is Op.LIST_ACQUISITIONS
    return (
        event.op in _EXPECTED.get(state.phase, frozenset())
        or (tracked and event.op in _TRACKING_OPS)
        or final_listing
    )


def _acquisition_in_doubt(state: OrderState) -> bool:
    return state.intent is not None and state.intent.kind is IntentKind.DECIDE_ACQUISITION


def _retry_later(state: OrderState, event: StepFailed, settings: Settings) -> Step:
    """Retry the read with backoff; a read-back of a write in doubt never gives up."""
    retries = state.step_retries + 1
    in_doubt = state.intent is not None
    if not in_doubt and retries > settings.max_step_retries:
        why = reason(
            "RETRIES_EXHAUSTED",
            f"{event.op.value} kept failing: {event.error.message}",
            operation=event.op.value,
            retries=state.step_retries,
            providerCode=event.error.provider_code,
        )
        return end(state, S.FAILED, event.at, why)
    timer = TimerKind.RECONCILE if in_doubt else TimerKind.RETRY
    delay = backoff_seconds(state, retries, settings, event.error.retry_after)
    return update(state, step_retries=retries), [Schedule(timer=timer, at=after(event.at, delay))]


def failure_reason(event: StepFailed, default_code: str) -> Reason:
    error = event.error
    code = error.reason_code if error.reason_code in _OWN_CODES else default_code
    if error.not_feasible:
        code = "NOT_FEASIBLE"
    return reason(code, error.message, operation=event.op.value, providerCode=error.provider_code)


def _read_refused(state: OrderState, event: StepFailed) -> Step:
    """REJECTED while nothing is placed (invalid, not feasible, refused), else FAILED."""
    error = event.error
    placed = state.placed is not None or state.intent is not None
    if error.not_feasible:
        return end(state, S.REJECTED, event.at, failure_reason(event, "NOT_FEASIBLE"))
    if not placed and (error.rejected or error.reason_code in _OWN_CODES):
        return end(state, S.REJECTED, event.at, failure_reason(event, "PROVIDER_REJECTED"))
    default = "PROVIDER_REJECTED" if error.rejected else error.reason_code or "PROVIDER_ERROR"
    return end(state, S.FAILED, event.at, failure_reason(event, default))


def _write_refused(state: OrderState, event: StepFailed) -> Step:
    """The provider refused a write: nothing was placed (REJECTED); a decision failed (FAILED);
    a refusal we sent could not be recorded (REJECTED DECLINED anyway); a cancel was refused
    (COMMAND_REJECTED, the order goes on); an acquisition decision was refused (recorded)."""
    intent = state.intent
    assert intent is not None
    match intent.kind:
        case IntentKind.PLACE_ORDER:
            if state.routing is not None:  # provider "auto": the next offer, when allowed
                state, fallback = routing.after_refusal(state, event)
                if fallback is not None:
                    return fallback
            return _read_refused(update(state, intent=None), event)
        case IntentKind.CANCEL:
            return writes.cancel_refused(state, event.at, event.error)
        case IntentKind.DECIDE_ACQUISITION:
            return acquisitions.give_up(state, event.at, event.error.message)
        case IntentKind.REFUSE_QUOTATION:
            why = state.audit or reason("DECLINED", "the quotation was declined")
            details = {**why.details, "providerMessage": event.error.message}
            return end(
                update(state, audit=None), S.REJECTED, event.at, why.model_copy(update={"details": details})
            )
        case IntentKind.ACCEPT_QUOTATION | IntentKind.CHOOSE_OPTION:
            return end(state, S.FAILED, event.at, failure_reason(event, "PROVIDER_REJECTED"))
