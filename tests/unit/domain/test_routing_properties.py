"""Random event sequences of ``provider: "auto"`` requests keep the guarantees of direct ones
(``test_properties``) and the provider choice's own:

- a PLACE_ORDER only follows the previous one after an ``OrderNotFound`` (same offer) or a
  definitive refusal of it (the next offer): never two placements that could both exist;
- every PLACE_ORDER names the offer of the request it is made for, at that offer's provider;
- offer reads carry their offer and are never paid calls.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.domain.model import (
    PAID_OPS,
    AttemptsFound,
    CallProvider,
    CommandReceived,
    DomainEvent,
    FeasibilityAnswered,
    OfferAnswered,
    Op,
    OrderNotFound,
    Priced,
    RequestReceived,
    Settings,
    StepFailed,
    TimerKind,
    Validated,
)
from worker.events.models import OrderRequest

from .builders import Order, at, command
from .test_properties import EXAMPLES, _answer, _check_events, _next_event
from .test_routing import OA, OA_DAY, UP, auto

REQUESTS: list[OrderRequest] = [
    auto(),
    auto(budget={"maxAmount": 20, "currency": "EUR"}),
    auto(OA, OA_DAY, UP, routing={"prefer": "earliest", "fallback": True}),
    auto(UP, OA, routing={"prefer": "listed", "fallback": False}),
    auto(autoApprove=False),
    auto(dryRun=True),
    auto(OA, {**OA, "providerOptions": {"x": 1}}, constraints={"acquisitionMode": "STEREO"}),
]
SETTINGS = Settings(settle_seconds=120, max_step_retries=2, max_place_attempts=2, rates={"CREDITS": 0.01})
CHOICES = [command("select-offer", f"s{n}", optionId=o) for n, o in enumerate(["oneatlas-1", "up42-2", "x"])]


def _offer_answer(call: CallProvider, value: int, t: datetime) -> DomainEvent:
    inner = _answer(call.model_copy(update={"offer": None}), value, t)
    assert isinstance(inner, Validated | FeasibilityAnswered | AttemptsFound | Priced | StepFailed)
    return OfferAnswered(offer=call.offer or "", event=inner, at=t)


def _refused(order: Order, offer: str | None) -> bool:
    """The provider definitively refused the placement of ``offer`` (recorded on the offer)."""
    routing = order.s.routing
    record = routing.offer(offer) if routing is not None and offer is not None else None
    return record is not None and record.refused is not None


# Answers to the pending call, biased towards success (0..3, 15) and definitive refusals (14, 19:
# ``_answer`` fails with variant % 5 == 4, refusing with ERRORS[2] or ERRORS[3]).
STEP = st.one_of(st.integers(min_value=0, max_value=999), st.sampled_from([0, 1, 2, 3, 14, 15, 19]))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=st.sampled_from(REQUESTS), steps=st.lists(STEP, max_size=60))
def test_random_auto_sequences_never_risk_two_orders(req: OrderRequest, steps: list[int]) -> None:
    run(req, steps)


def test_the_checked_sequence_can_fall_back() -> None:
    """The property's loop sees fallbacks: answers succeed, then the placement is refused."""
    assert run(auto(), [0] * 5 + [14]) == 1
    assert run(auto(), [0] * 5 + [14, 19]) == 1, "the last offer refused: nothing left"


def run(req: OrderRequest, steps: list[int]) -> int:
    """Drive ``req`` through ``steps`` checking the guarantees; returns how many fallbacks."""
    fallbacks = 0
    order = Order(SETTINGS)
    pending = [c for c in order.send(RequestReceived(request=req, at=at(0))) if isinstance(c, CallProvider)]
    timers: list[TimerKind] = []
    placing: str | None = None  # the offer of the last PLACE_ORDER not yet settled
    for step, value in enumerate(steps, start=1):
        t = at(step)
        if 950 <= value < 980:
            event: DomainEvent = CommandReceived(command=CHOICES[value % len(CHOICES)], at=t)
        elif value < 550 and pending and pending[0].offer is not None:
            event = _offer_answer(pending.pop(0), value, t)
        else:
            event = _next_event(order, value, t, pending, timers)
        effects = order.send(event)
        if isinstance(event, OrderNotFound) or _refused(order, placing) or order.s.placed is not None:
            placing = None
        for effect in effects:
            if isinstance(effect, CallProvider):
                pending.append(effect)
                if effect.offer is not None:
                    assert effect.op not in PAID_OPS
                    assert effect.op is not Op.CANCEL
                if effect.op is Op.PLACE_ORDER:
                    assert placing is None, f"PLACE_ORDER {effect.target} while {placing} may exist"
                    fallbacks += isinstance(event, StepFailed)
                    placing = effect.target
                    routing = order.s.routing
                    assert routing is not None
                    assert routing.chosen == effect.target
                    record = routing.offer(effect.target)
                    assert record is not None
                    assert order.s.request.provider is routing.candidate(record).provider
                if effect.op in PAID_OPS:
                    assert order.s.intent is not None, f"{effect.op} without a durable intent"
            elif effect.kind == "schedule":
                timers.append(effect.timer)
    _check_events(order)
    return fallbacks
