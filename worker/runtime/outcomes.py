"""Pure helpers of the runner: the events and states it builds around a step (offer answers,
invalid requests, not-configured providers) and the crash point of a paid write.
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.model import (
    AttemptsFound,
    CallProvider,
    DomainEvent,
    ErrorInfo,
    FeasibilityAnswered,
    OfferAnswered,
    OrderState,
    Priced,
    StepFailed,
    Validated,
)
from worker.errors import DecodeError
from worker.events.models import OrderStatusEvent, Provider, Reason
from worker.events.status import OrderStatus, stapi_status


def _paid_write_point(old: OrderState | None, new: OrderState) -> str | None:
    """The crash-point name of a state write that records a new intent or an intent's outcome
    (``worker.crashpoints``, a test facility); ``None`` for any other write."""
    before = old.intent if old is not None else None
    after = new.intent
    # A new target is a new intent too (a provider-choice fallback places another offer).
    if after is not None and (
        before is None
        or (before.kind, before.attempt, before.target) != (after.kind, after.attempt, after.target)
    ):
        return f"intent_persist:{after.kind.value}"
    if before is not None and after is None:
        return f"result_persist:{before.kind.value}"
    return None


def _offer_state(state: OrderState, offer_id: str) -> OrderState:
    record = state.routing.offer(offer_id) if state.routing is not None else None
    if record is None:
        raise ValueError(f"no offer {offer_id!r} in this order")  # a bug of the core
    return record.state


def _offer_answer(offer_id: str, event: DomainEvent) -> DomainEvent:
    """Wrap the answer of an offer's read (only reads are ever run for offers)."""
    if not isinstance(event, Validated | FeasibilityAnswered | AttemptsFound | Priced | StepFailed):
        raise TypeError(f"unexpected answer {event.kind} for an offer")
    return OfferAnswered(offer=offer_id, event=event, at=event.at)


def _not_configured(call: CallProvider, at: datetime) -> StepFailed:
    info = ErrorInfo(
        reason_code="PROVIDER_NOT_CONFIGURED",
        rejected=True,
        message="this provider has no credentials configured",
    )
    return StepFailed(op=call.op, error=info, target=call.target, at=at)


def invalid_request_event(
    request_id: str, error: DecodeError, at: datetime, provider: Provider | None
) -> OrderStatusEvent:
    """The ``REJECTED``/``INVALID_REQUEST`` status event (sequence 1) of an invalid request.

    ``provider`` is the request's when it named a valid one; otherwise ``oneatlas`` stands in
    (the contract requires a value) and ``reason.details.providerUnknown`` is true.
    """
    details = {"deadLetterCode": error.code, **error.details}
    if provider is None:
        details["providerUnknown"] = True
    return OrderStatusEvent(
        request_id=request_id,
        provider=provider or Provider.ONEATLAS,
        sequence=1,
        status=OrderStatus.REJECTED,
        previous_status=None,
        stapi_status=stapi_status(OrderStatus.REJECTED),
        occurred_at=at,
        reason=Reason(code="INVALID_REQUEST", message=error.message, details=details),
    )
