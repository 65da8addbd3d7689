"""Performing one ``CallProvider`` effect: the provider method, its arguments from the state, and
the translation of its outcome (or failure) into the domain event that reports it.

Every exception is turned into a ``StepFailed`` event here, so a provider problem can only ever
become a status event with a reason, never a crash of the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from worker.domain.model import (
    AcquisitionsListed,
    AttemptsFound,
    CallProvider,
    DomainEvent,
    ErrorInfo,
    FeasibilityAnswered,
    Op,
    OrderNotFound,
    OrderPlaced,
    OrderState,
    Polled,
    Priced,
    StepFailed,
    Validated,
    WriteDone,
)
from worker.domain.ports import OrderContext, PlacedOrder, TaskingProvider
from worker.errors import (
    NotFeasible,
    OutcomeUnknown,
    OwnershipLost,
    ProviderError,
    ProviderRejected,
    RateLimited,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
# Events are built before the call's end time is known, then stamped (see _dispatch).
_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)


async def perform(
    provider: TaskingProvider, state: OrderState, call: CallProvider, clock: Clock
) -> DomainEvent:
    """Run ``call`` against ``provider`` and return the event describing what happened.

    The event is stamped with ``clock()`` read when the call returned. Never raises (except
    ``CancelledError`` when the partition is revoked mid-call; an intent then stays durable and the
    next owner reconciles; and ``OwnershipLost`` when the runner's ownership fence stopped a write
    before it was sent).
    """
    try:
        return await _dispatch(provider, state, call, clock)
    except OwnershipLost:
        raise  # nothing was sent: not the provider's failure, the runner decides
    except ProviderError as exc:
        return StepFailed(op=call.op, error=error_info(exc), target=call.target, at=clock())
    except Exception as exc:  # an adapter bug must not kill the worker: retry, bounded
        log.exception("provider_call_crashed", op=call.op.value)
        info = ErrorInfo(
            reason_code="PROVIDER_ERROR",
            retriable=True,
            message=f"{call.op.value} failed unexpectedly ({type(exc).__name__})",
        )
        return StepFailed(op=call.op, error=info, target=call.target, at=clock())


def error_info(exc: ProviderError) -> ErrorInfo:
    """The domain's view of a provider error (no secrets: messages come from the adapters)."""
    return ErrorInfo(
        reason_code=exc.reason_code,
        message=exc.message,
        retriable=exc.retriable,
        outcome_unknown=isinstance(exc, OutcomeUnknown),
        not_feasible=isinstance(exc, NotFeasible),
        rejected=isinstance(exc, ProviderRejected),
        provider_code=exc.provider_code,
        retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
    )


def _placed(state: OrderState) -> PlacedOrder:
    if state.placed is None:
        raise ProviderRejected("no order has been placed yet", operation="state")
    return state.placed


def _context(state: OrderState) -> OrderContext:
    return OrderContext(feasibility=state.feasibility, attempt=state.chosen_attempt)


async def _dispatch(
    provider: TaskingProvider, state: OrderState, call: CallProvider, clock: Clock
) -> DomainEvent:
    event = await _read(provider, state, call)
    return event.model_copy(update={"at": clock()})


async def _read(provider: TaskingProvider, state: OrderState, call: CallProvider) -> DomainEvent:
    at = _PLACEHOLDER
    request = state.request
    match call.op:
        case Op.VALIDATE:
            await provider.validate(request)
            return Validated(at=at)
        case Op.FEASIBILITY:
            return FeasibilityAnswered(result=await provider.check_feasibility(request), at=at)
        case Op.ATTEMPTS:
            return AttemptsFound(attempts=await provider.find_attempts(request), at=at)
        case Op.PRICE:
            return Priced(quote=await provider.price(request, _context(state)), at=at)
        case Op.PLACE_ORDER:
            return OrderPlaced(placed=await provider.place_order(request, _context(state)), at=at)
        case Op.FIND_ORDER:
            found = await provider.find_order(request)
            return OrderPlaced(placed=found, found=True, at=at) if found else OrderNotFound(at=at)
        case Op.GET_ORDER:
            return Polled(snapshot=await provider.get_order(_placed(state)), at=at)
        case Op.LIST_ACQUISITIONS:
            items = await provider.list_acquisitions(_placed(state))
            return AcquisitionsListed(acquisitions=items, at=at)
        case _:
            return await _write(provider, state, call)


async def _write(provider: TaskingProvider, state: OrderState, call: CallProvider) -> DomainEvent:
    placed, target = _placed(state), call.target or ""
    match call.op:
        case Op.DECIDE_ACQUISITION:
            await provider.decide_acquisition(placed, target, bool(call.accept))
        case Op.DECIDE_QUOTATION:
            await provider.decide_quotation(placed, target, bool(call.accept))
        case Op.CHOOSE_OPTION:
            study_id = state.study.id if state.study else ""
            await provider.choose_option(placed, study_id, target)
        case Op.CANCEL:
            await provider.cancel(placed)
        case _:
            raise AssertionError(f"unhandled operation {call.op}")
    return WriteDone(op=call.op, target=call.target, at=_PLACEHOLDER)
