"""The demo's sample orders (``worker/samples/``) with their expected final status, its options
and how it answers decisions like an automated client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import NamedTuple

import orjson

from worker.events.models import (
    Command,
    CommandName,
    DecisionKind,
    OrderRequest,
    OrderStatusEvent,
    Provider,
    Window,
)
from worker.events.status import OrderStatus

BASE_SPEED = 1.0
"""The simulators' own clock runs at real time; the time-lapse moves it ahead in jumps."""


DEFAULT_SPEED = 2 * 86_400.0
"""Default time-lapse: two simulated days per real second while orders are with the providers."""


DEFAULT_TIMEOUT = 110.0


TICK_SECONDS = 0.5


ACQUISITION_GRACE_SECONDS = 1.5


# Once every order is done, events still in flight (a last delivery) are read this long.
DRAIN_SECONDS = 1.5


# Statuses in which an order waits on its provider (also any status of a placed order, except a
# decision), so simulated time may jump.
PROVIDER_STATUSES = frozenset({OrderStatus.ORDERED, OrderStatus.FEASIBILITY_PENDING, OrderStatus.IN_PROGRESS})


EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 3


# --------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    """One sample request of ``worker/samples/`` and the terminal status the demo expects of it."""

    file: str
    expected: OrderStatus
    story: str


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "up42-pleiades-panama.json",
        OrderStatus.COMPLETED,
        "UP42 Pléiades analytic tasking: manual study, option chosen, quotation, deliveries",
    ),
    Sample(
        "oneatlas-pleiades-oneplan-toulouse.json",
        OrderStatus.COMPLETED,
        "Pléiades ONEPLAN: feasibility, price, order; acquisitions by policy and by command",
    ),
    Sample(
        "oneatlas-spot-oneday-toulouse.json",
        OrderStatus.COMPLETED,
        "SPOT ONEDAY: attempts, the soonest chosen, one acquisition",
    ),
    Sample(
        "oneatlas-pleiades-onenow-western-australia.json",
        OrderStatus.COMPLETED,
        "Pléiades ONENOW over Western Australia: attempts, one acquisition",
    ),
    Sample(
        "oneatlas-spot-tristereo.json",
        OrderStatus.COMPLETED,
        "SPOT ONEPLAN tristereo: manual feasibility study at Airbus",
    ),
    Sample(
        "oneatlas-spot-oneplan-over-budget.json",
        OrderStatus.REJECTED,
        "SPOT ONEPLAN with a 1 EUR budget: over budget, declined",
    ),
    Sample(
        "oneatlas-pleiades-oneday-dry-run.json",
        OrderStatus.QUOTED,
        "Pléiades ONEDAY dry run: stops once the price is known",
    ),
    Sample(
        "auto-pleiades-toulouse.json",
        OrderStatus.COMPLETED,
        "Pléiades from OneAtlas or UP42 (provider auto): both offers compared, the cheaper ordered",
    ),
)


def sample_text(name: str) -> bytes:
    """The bytes of ``worker/samples/<name>`` (installed as package data)."""
    return resources.files("worker").joinpath("samples", name).read_bytes()


def load_samples(
    now: datetime, samples: tuple[Sample, ...] = SAMPLES, *, interactive: bool = False
) -> list[OrderRequest]:
    """The sample requests, each window moved to start at ``now`` with its original length.

    ``interactive``: a provider-choice sample leaves the choice to the person at the prompt
    (``autoApprove: false``, so the worker asks ``select-offer``) instead of ordering the cheaper
    offer itself.

    Raises:
        ValidationError: a sample file is not a valid ``OrderRequest`` (a packaging bug).
    """
    requests = [
        starting_at(OrderRequest.model_validate(orjson.loads(sample_text(s.file))), now) for s in samples
    ]
    if interactive:
        requests = [
            r.model_copy(update={"auto_approve": False}) if r.provider is Provider.AUTO else r
            for r in requests
        ]
    return requests


def starting_at(request: OrderRequest, now: datetime) -> OrderRequest:
    """``request`` with its acquisition window shifted to begin at ``now`` (same duration)."""
    length = request.window.end - request.window.start
    window = Window(start=now, end=now + length)
    return request.model_copy(update={"window": window})


# --------------------------------------------------------------------------- answers
class Answer(NamedTuple):
    """A command the demo decided to publish, and why (shown to the user)."""

    command: CommandName
    why: str
    option_id: str | None = None
    acquisition_id: str | None = None


def over_budget(request: OrderRequest, event: OrderStatusEvent) -> bool:
    """The worker said so (``OVER_BUDGET``), or the price exceeds the request's budget."""
    if event.reason is not None and event.reason.code == "OVER_BUDGET":
        return True
    budget, price = request.budget, event.price
    return budget is not None and price is not None and price.amount > budget.max_amount


def auto_answer(request: OrderRequest, event: OrderStatusEvent) -> Answer | None:
    """What an automated client answers to a ``DECISION_REQUIRED`` event (``None``: nothing)."""
    decision = event.decision
    if decision is None:
        return None
    if decision.kind is DecisionKind.SELECT_FEASIBILITY_OPTION:
        if not decision.options:
            return None
        first = decision.options[0]
        return Answer(
            CommandName.SELECT_FEASIBILITY_OPTION, f"first option: {first.description}", option_id=first.id
        )
    if decision.kind is DecisionKind.SELECT_OFFER:
        if not decision.options:
            return None
        preferred = decision.options[0]  # the worker lists the preferred offer first
        return Answer(
            CommandName.SELECT_OFFER, f"preferred offer: {preferred.description}", option_id=preferred.id
        )
    if over_budget(request, event):
        return Answer(CommandName.REJECT, "over budget: declined")
    return Answer(CommandName.APPROVE, f"{decision.kind.value}: approved")


def command_for(request_id: str, answer: Answer, command_id: str) -> Command:
    return Command(
        request_id=request_id,
        command_id=command_id,
        command=answer.command,
        option_id=answer.option_id,
        acquisition_id=answer.acquisition_id,
        reason=answer.why,
        issued_by="tasking-worker demo",
    )


# --------------------------------------------------------------------------- options and output
@dataclass(frozen=True)
class DemoOptions:
    """The ``demo`` command's options (see ``tasking-worker demo --help``)."""

    auto_approve: bool = False
    timeout: float = DEFAULT_TIMEOUT
    speed: float = DEFAULT_SPEED
    plain: bool = False
