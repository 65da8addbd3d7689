"""The domain core's entry point: ``decide(state, event) -> (state, effects)``.

Pure: no I/O, no clock (every time comes from ``event.at``), no randomness. The shell persists the
returned state (whose ``outbox`` holds the events to publish) before it performs the effects, so
an intent recorded here is durable before its paid call.

- ``state is None`` only for a first ``RequestReceived`` (RECEIVED, sequence 1). A
  ``CommandReceived`` for an unknown request returns ``(None, [])``: the shell answers it.
- A ``RequestReceived`` for an existing state is a duplicate: same state, no effect.
- A finished order (phase DONE) ignores every event, except a command (answered with
  ``COMMAND_REJECTED``) and the last acquisition listing (its AcquisitionEvents are published).
- An acquisition listing also releases the delivered products held for it (their join is known).
- An event that does not fit the current phase (a late answer, a stale timer) changes nothing.
- A ``provider: "auto"`` request first collects its offers (``flows.routing``), then goes on as
  a direct request to the chosen provider.

Raises:
    IllegalTransition: the flow asked for a status change the contract forbids (a bug).
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from worker.domain.flows import (
    acquisitions,
    commands,
    deliveries,
    failures,
    oneatlas,
    placement,
    reads,
    routing,
    timers,
    tracking,
    writes,
)
from worker.domain.flows.common import S, Step, end, reason, transition
from worker.domain.model import (
    AcquisitionsListed,
    AttemptsFound,
    CallProvider,
    CommandReceived,
    DeliveryFound,
    DeliverySettled,
    DomainEvent,
    Effect,
    FeasibilityAnswered,
    OfferAnswered,
    Op,
    OrderNotFound,
    OrderPlaced,
    OrderState,
    Phase,
    Polled,
    Priced,
    RequestReceived,
    Resumed,
    Schedule,
    Settings,
    StepFailed,
    TimerFired,
    TimerKind,
    TrackingFailed,
    TrackingRecovered,
    Validated,
    WriteDone,
)
from worker.events.models import OrderRequest, Provider

DEFAULT_SETTINGS = Settings()


def decide(
    state: OrderState | None, event: DomainEvent, settings: Settings = DEFAULT_SETTINGS
) -> tuple[OrderState | None, list[Effect]]:
    """Apply ``event`` to ``state``; see the module docstring for the rules."""
    if state is None:
        if isinstance(event, RequestReceived):
            return receive(event.request, event.at, settings.unbudgeted_ceiling)
        return None, []
    if isinstance(event, RequestReceived):
        return state, []
    if isinstance(event, CommandReceived):
        return commands.on_command(state, event, settings)
    if state.terminal:
        if isinstance(event, AcquisitionsListed):
            return acquisitions.on_listed(state, event, settings)
        if isinstance(event, DeliveryFound):  # products after COMPLETED (within the window)
            return deliveries.on_delivery(state, event, settings)
        return state, []
    if state.phase is Phase.OFFERS:
        step = routing.on_offers_event(state, event, settings, decide)
        if step is not None:
            return step
    return _dispatch(state, event, settings)


def receive(request: OrderRequest, at: datetime, ceiling: dict[str, float] | None = None) -> Step:
    """A new request: RECEIVED, then validation (or EXPIRED when its window already ended).
    ``ceiling`` (the deployment's, for a request without a budget) stays with the order."""
    state = OrderState(request=request, received_at=at, unbudgeted_ceiling=ceiling)
    state = transition(state, S.RECEIVED, at)
    if request.window.end <= at:
        why = reason(
            "WINDOW_EXPIRED",
            "the acquisition window has already ended",
            windowEnd=request.window.end.isoformat(),
        )
        return end(state, S.EXPIRED, at, why)
    window_end = Schedule(timer=TimerKind.WINDOW_END, at=request.window.end)
    if request.provider is Provider.AUTO:
        state, offer_calls = routing.start_offers(state, at)
        return state, [window_end, *offer_calls]
    return state, [window_end, CallProvider(op=Op.VALIDATE)]


def _dispatch(state: OrderState, event: DomainEvent, settings: Settings) -> Step:
    match event:
        case (
            Validated() | FeasibilityAnswered() | AttemptsFound() | Priced() | OrderPlaced() | OrderNotFound()
        ):
            return _answer(state, event, settings)
        case Polled():
            return _polled(state, event, settings)
        case AcquisitionsListed():
            state, effects = acquisitions.on_listed(state, event, settings, then=deliveries.publish_held)
            state, more = deliveries.after_listing(state, event.at, settings)
            return state, effects + more
        case WriteDone():
            return writes.on_write_done(state, event)
        case StepFailed():
            return failures.on_failed(state, event, settings)
        case TimerFired():
            return timers.on_timer(state, event, settings)
        case DeliveryFound():
            return deliveries.on_delivery(state, event, settings)
        case DeliverySettled():
            return deliveries.on_settled(state, event, settings)
        case Resumed():
            return timers.on_resumed(state, event)
        case TrackingFailed() | TrackingRecovered():
            return tracking.on_trouble(state, event)
        case RequestReceived() | CommandReceived() | OfferAnswered():
            return state, []  # handled before dispatch; a late offer answer once offers are compared
        case _:
            assert_never(event)


_Answer = Validated | FeasibilityAnswered | AttemptsFound | Priced | OrderPlaced | OrderNotFound


def _answer(state: OrderState, event: _Answer, settings: Settings) -> Step:
    """The answers of the steps up to placement."""
    match event:
        case Validated():
            return reads.on_validated(state, event)
        case FeasibilityAnswered():
            return oneatlas.on_feasibility(state, event)
        case AttemptsFound():
            return oneatlas.on_attempts(state, event)
        case Priced():
            return reads.on_priced(state, event)
        case OrderPlaced():
            return placement.on_order_placed(state, event)
        case OrderNotFound():
            return placement.on_order_not_found(state, event, settings)
        case _:
            assert_never(event)


def _polled(state: OrderState, event: Polled, settings: Settings) -> Step:
    if state.phase in writes.READBACK_PHASES:
        return writes.on_readback(state, event, settings)
    return tracking.on_polled(state, event, settings)
