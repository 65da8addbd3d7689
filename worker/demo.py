"""``tasking-worker demo``: the whole service on one machine, with sample orders, in under two minutes.

What runs, all in this process and on loopback:

* the embedded Kafka-compatible broker (:class:`~worker.kafka.broker.EmbeddedBroker`) with the
  contract's topics, co-partitioned;
* both provider simulators as real HTTP servers (:func:`~worker.simulators.server.start_simulators`);
* the worker itself, built by :func:`worker.app.build_worker` from :class:`~worker.config.Settings`
  read from ``TASKING_*`` variables (the simulators' URLs and credentials, the broker's address),
  exactly as in production;
* a client that publishes the sample requests of :data:`SAMPLES` on ``tasking.order-requests``,
  reads ``tasking.order-status``, ``tasking.acquisitions`` and ``tasking.deliveries`` (the
  delivered products, STAC Items) like any downstream consumer (no consumer group) and answers
  decisions with commands on ``tasking.commands``.

Time-lapse. The simulators share one clock (:data:`BASE_SPEED` times real time). Whenever every
open order is in its provider's hands (placed and not waiting for a decision), the demo moves that
clock ahead by ``speed`` simulated seconds per real second, so weeks of studies, quotations and
acquisitions pass in seconds. It never does so while an order is being validated, priced or placed,
or while a decision waits: a real client never sees days pass between two calls of one step (an
attempt's order deadline would pass in the middle of it). The jumps move the providers' business
calendar, not their login sessions: the simulators' tokens live in real time (a 5-minute token
would otherwise expire between a renewal and its first use).

Decisions. Interactively (a terminal on stdin and stdout, no ``--plain``, no ``--auto-approve``)
the demo asks. Otherwise it answers like an automated client: it selects the first option of a
``select-feasibility-option`` decision, approves ``approve-price`` and ``confirm-order`` decisions
unless the price exceeds the request's budget (then it *rejects*, to show the declined path), and
accepts every acquisition still ``PROPOSED`` :data:`ACQUISITION_GRACE_SECONDS` after it appeared (the
worker's own ``acquisitionPolicy`` decides first).

Last step: one delivered product of a completed order is downloaded with ``tasking-worker
download``'s code (progress bar, checksum), into the logs directory.

Result. :func:`run` returns the process exit code: 0 when every sample reached its expected status
(:attr:`Sample.expected`) and the product was downloaded, 1 when one ended elsewhere, the download
failed or the demo could not start, 3 when ``timeout`` passed first. Everything is stopped in
reverse order of start in every case: the worker gracefully (it leaves its group and flushes),
then the servers, then the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.prompt import IntPrompt, Prompt
from rich.table import Table
from rich.text import Text

from worker.config import Settings, settings_from
from worker.display import offer_lines
from worker.events import codec
from worker.events.models import (
    AcquisitionEvent,
    AcquisitionStatus,
    Candidate,
    Command,
    CommandName,
    DecisionKind,
    Offer,
    OrderRequest,
    OrderStatusEvent,
    Provider,
    Window,
)
from worker.events.status import OrderStatus

if TYPE_CHECKING:
    from worker.simulators.server import RunningSimulators

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

T = TypeVar("T")


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


# --------------------------------------------------------------------------- the board


ACCEPTED_LIKE = frozenset(
    {AcquisitionStatus.VALIDATED, AcquisitionStatus.ACCEPTED, AcquisitionStatus.DELIVERED}
)
REFUSED_LIKE = frozenset({AcquisitionStatus.REFUSED, AcquisitionStatus.REJECTED})


@dataclass
class OrderView:
    """What the demo knows of one request: its latest status event and its acquisitions."""

    request: OrderRequest
    sample: Sample
    last: OrderStatusEvent | None = None
    acquisitions: dict[str, AcquisitionEvent] = field(default_factory=dict)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id -> STAC Item
    events: int = 0

    @property
    def status(self) -> OrderStatus | None:
        return self.last.status if self.last else None

    @property
    def done(self) -> bool:
        """Terminal, or ``QUOTED`` for a dry run (nothing follows either)."""
        status = self.status
        if status is None:
            return False
        return status.terminal or (status is OrderStatus.QUOTED and self.request.dry_run)

    @property
    def with_provider(self) -> bool:
        """Placed at the provider (or in a provider status) and not waiting for a decision."""
        last = self.last
        if last is None or last.status is OrderStatus.DECISION_REQUIRED:
            return False
        return last.status in PROVIDER_STATUSES or bool(last.provider_refs)

    @property
    def ok(self) -> bool:
        return self.done and self.status is self.sample.expected

    def counts(self) -> tuple[int, int, int]:
        """Acquisitions ``(proposed, validated or accepted, refused)`` from the acquisition events."""
        statuses = [a.status for a in self.acquisitions.values()]
        return (
            sum(s is AcquisitionStatus.PROPOSED for s in statuses),
            sum(s in ACCEPTED_LIKE for s in statuses),
            sum(s in REFUSED_LIKE for s in statuses),
        )


class Board:
    """Every sample's :class:`OrderView`, fed from the status and acquisition topics."""

    def __init__(self, requests: list[OrderRequest], samples: tuple[Sample, ...]) -> None:
        self.views = {r.request_id: OrderView(r, s) for r, s in zip(requests, samples, strict=True)}

    def apply_status(self, event: OrderStatusEvent) -> OrderView | None:
        """Record ``event`` when it is newer than what is known; returns the view when it was."""
        view = self.views.get(event.request_id)
        if view is None or (view.last is not None and event.sequence <= view.last.sequence):
            return None  # another request, or a redelivered duplicate
        view.last, view.events = event, view.events + 1
        return view

    def apply_acquisition(self, event: AcquisitionEvent) -> OrderView | None:
        view = self.views.get(event.request_id)
        if view is None:
            return None
        view.acquisitions[event.acquisition_id] = event
        return view

    def completed(self) -> list[str]:
        """The requests that ended ``COMPLETED`` (their products are on the deliveries topic)."""
        return [rid for rid, v in self.views.items() if v.status is OrderStatus.COMPLETED]

    def apply_delivery(self, item: dict[str, Any]) -> OrderView | None:
        """Record a delivered product (a STAC Item); a re-published one replaces itself."""
        properties = item.get("properties") or {}
        view = self.views.get(str(properties.get("tasking:request_id")))
        if view is None or not item.get("id"):
            return None
        view.deliveries[str(item["id"])] = item
        return view

    def all_done(self) -> bool:
        return all(v.done for v in self.views.values())

    def with_providers(self) -> bool:
        """Every open order waits on its provider (the time-lapse may run)."""
        open_views = [v for v in self.views.values() if not v.done]
        return bool(open_views) and all(v.with_provider for v in open_views)

    def waiting_on(self) -> list[str]:
        """The open orders that hold the time-lapse back, as ``requestId (status)``."""
        return [
            f"{rid} ({v.status.value if v.status else 'not seen yet'})"
            for rid, v in self.views.items()
            if not v.done and not v.with_provider
        ]

    def problems(self) -> list[str]:
        """Why the run does not pass: one line per sample not at its expected status."""
        return [
            f"{rid}: expected {v.sample.expected.value}, got "
            f"{v.status.value if v.status else 'no status event'}"
            for rid, v in self.views.items()
            if not v.ok
        ]


# --------------------------------------------------------------------------- rendering


_STYLE = {
    "COMPLETED": "bold green",
    "QUOTED": "green",
    "REJECTED": "bold red",
    "FAILED": "bold red",
    "CANCELLED": "yellow",
    "EXPIRED": "yellow",
    "DECISION_REQUIRED": "bold magenta",
}


def _status_text(status: OrderStatus | None) -> Text:
    if status is None:
        return Text("…", style="dim")
    return Text(status.value, style=_STYLE.get(status.value, "cyan"))


def _product(request: OrderRequest) -> str:
    if request.provider is Provider.AUTO:
        candidates = request.candidates or []
        return "auto: " + " | ".join(_product(_as_direct(request, c)) for c in candidates)
    if request.provider is Provider.UP42:
        return f"up42 {request.up42_product().data_product_id[:8]}…"
    p = request.oneatlas_product()
    mode = request.constraints.acquisition_mode.value
    suffix = f" {mode}" if mode != "MONO" else ""
    return f"oneatlas {p.mission.value} {p.programming_type.value}{suffix}"


def _provider(view: OrderView) -> str:
    """The request's provider; for ``auto``, the one chosen (status events carry it once an
    offer is chosen)."""
    asked = view.request.provider
    chosen = view.last.provider if view.last is not None else asked
    return f"auto → {chosen.value}" if asked is Provider.AUTO and chosen is not Provider.AUTO else asked.value


def _as_direct(request: OrderRequest, candidate: Candidate) -> OrderRequest:
    return request.model_copy(
        update={"provider": candidate.provider, "product": candidate.product, "candidates": None}
    )


def _price(event: OrderStatusEvent | None) -> str:
    if event is None or event.price is None:
        return ""
    return f"{event.price.amount:,.0f} {event.price.currency}"


def _refs(event: OrderStatusEvent | None) -> str:
    if event is None:
        return ""
    return "\n".join(f"{k}={v}" for k, v in sorted(event.provider_refs.items()))


def _decision(event: OrderStatusEvent | None) -> str:
    if event is None or event.decision is None:
        return ""
    options = ", ".join(o.id if len(o.id) <= 12 else o.id[:8] + "…" for o in event.decision.options)
    return f"{event.decision.kind.value} [{options}]"


def live_table(board: Board) -> Table:
    """One row per order: status, price, provider ids, acquisitions, the decision waiting."""
    table = Table(expand=True, show_lines=False, header_style="bold")
    for name, width in (
        ("request", None),
        ("provider / product", None),
        ("#", 3),
        ("status", None),
        ("price", None),
        ("provider ids", None),
        ("acq p/v/r", 9),
        ("delivered", 9),
        ("decision waiting", None),
    ):
        table.add_column(name, width=width, overflow="fold")
    for rid, view in board.views.items():
        proposed, validated, refused = view.counts()
        table.add_row(
            rid,
            _product(view.request),
            str(view.last.sequence if view.last else ""),
            _status_text(view.status),
            _price(view.last),
            _refs(view.last),
            f"{proposed}/{validated}/{refused}",
            str(len(view.deliveries)),
            _decision(view.last),
        )
    return table


def summary_table(board: Board) -> Table:
    """The final table: request, provider, final status, events, price, acquisitions, verdict."""
    table = Table(title="tasking-worker demo: summary", header_style="bold")
    for name in (
        "request",
        "provider",
        "final status",
        "expected",
        "sequence",
        "price",
        "acquisitions",
        "delivered",
        "ok",
    ):
        table.add_column(name, overflow="fold")
    for rid, view in board.views.items():
        proposed, validated, refused = view.counts()
        acquisitions = f"{validated} validated, {proposed} proposed, {refused} refused"
        table.add_row(
            rid,
            _provider(view),
            _status_text(view.status),
            view.sample.expected.value,
            str(view.last.sequence if view.last else 0),
            _price(view.last),
            acquisitions,
            _delivered(view),
            Text("yes", style="green") if view.ok else Text("NO", style="bold red"),
        )
    return table


def status_line(event: OrderStatusEvent) -> str:
    """One plain progress line for a status event."""
    previous = f"{event.previous_status.value} → " if event.previous_status else ""
    parts = [f"{event.request_id} #{event.sequence} {previous}{event.status.value}"]
    if event.provider is Provider.AUTO or (event.offers and event.status is OrderStatus.QUOTED):
        parts.append(f"provider {event.provider.value}")
    if event.offers and event.previous_status is OrderStatus.RECEIVED:
        parts.append("offers " + "; ".join(_offer_text(o) for o in event.offers))
    if event.price is not None:
        parts.append(f"price {_price(event)}")
    if event.provider_refs:
        parts.append(" ".join(f"{k}={v}" for k, v in sorted(event.provider_refs.items())))
    if event.decision is not None:
        parts.append(f"decision {_decision(event)}")
    if event.reason is not None:
        parts.append(f"reason {event.reason.code}: {event.reason.message}")
    return "  ".join(parts)


def _delivered(view: OrderView) -> str:
    """Products delivered, and what was missing when the order completed without all of them."""
    text = f"{len(view.deliveries)} product(s)"
    reason = view.last.reason if view.last is not None else None
    if reason is not None and reason.code == "DELIVERY_INCOMPLETE":
        text += " (DELIVERY_INCOMPLETE)"
    return text


def delivery_line(item: dict[str, Any]) -> str:
    """One plain progress line for a delivered product."""
    properties = item.get("properties") or {}
    assets = item.get("assets") or {}
    data = sum("data" in (a.get("roles") or []) for a in assets.values())
    return (
        f"{properties.get('tasking:request_id')} delivered {item.get('id')} "
        f"({len(assets)} asset(s), {data} with data)"
    )


def _offer_text(offer: Offer) -> str:
    price = f" {offer.price.amount:,.0f} {offer.price.currency}" if offer.price is not None else ""
    return f"{offer.id} {offer.status.value}{price}"


def acquisition_line(event: AcquisitionEvent) -> str:
    cloud = f" cloud {event.cloud_cover:.1f}%" if event.cloud_cover is not None else ""
    by = f" by {event.decided_by.value}" if event.decided_by else ""
    return f"{event.request_id} acquisition {event.acquisition_id} {event.status.value}{cloud}{by}"


# --------------------------------------------------------------------------- options and output


@dataclass(frozen=True)
class DemoOptions:
    """The ``demo`` command's options (see ``tasking-worker demo --help``)."""

    auto_approve: bool = False
    timeout: float = DEFAULT_TIMEOUT
    speed: float = DEFAULT_SPEED
    plain: bool = False


class Output:
    """Where the demo writes: a live table on a terminal, else one plain line per event."""

    def __init__(self, console: Console, live: bool, started: float) -> None:
        self.console = console
        self.live = live
        self.started = started
        self.notes: list[str] = []
        self.clock: Callable[[], datetime] | None = None
        self.board: Board | None = None
        self.paused_by: list[str] = []

    def note(self, text: str) -> None:
        """A line about what the demo itself did (kept in the live view's footer)."""
        self.notes = [*self.notes[-5:], text]
        if not self.live:
            self.line(text)

    def line(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {escape(text)}")

    def __rich__(self) -> RenderableType:
        """The live view (re-rendered by ``rich.live.Live`` a few times per second)."""
        assert self.board is not None
        sim = self.clock().strftime("%Y-%m-%d %H:%M") if self.clock else "?"
        lapse = ("paused for " + ", ".join(self.paused_by)) if self.paused_by else "running"
        header = Text.from_markup(
            f"[bold]tasking-worker demo[/]  elapsed {time.monotonic() - self.started:5.1f}s  "
            f"simulated time {sim} UTC  time-lapse {escape(lapse)}"
        )
        footer = Text("\n".join(self.notes), style="dim")
        return Group(header, live_table(self.board), footer)


# --------------------------------------------------------------------------- environment


def demo_environment(bootstrap_servers: str, simulator_env: Mapping[str, str]) -> dict[str, str]:
    """The ``TASKING_*`` variables of the demo's worker (documented settings only)."""
    return {
        **simulator_env,
        "TASKING_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "TASKING_KAFKA__ENABLE_IDEMPOTENCE": "false",  # the embedded broker refuses it
        "TASKING_TRACKING__POLL_INTERVAL_SECONDS": "1",
        # The delivery timeout is in real seconds: short, so the demo ends in time (default 14
        # days). No grace period (the default): COMPLETED follows the last product at once.
        "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS": "20",
        "TASKING_HTTP__HOST": "127.0.0.1",
        "TASKING_HTTP__PORT": "0",
        "TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "5",
        "TASKING_HTTP_CLIENT__SETTLE_SECONDS": "6",
        "TASKING_SHUTDOWN_GRACE_SECONDS": "3",
        "TASKING_LOG_LEVEL": "INFO",
        "TASKING_LOG_FORMAT": "json",
        # Provider choice compares UP42 credits with euros (about a hundredth of a euro each).
        "TASKING_ROUTING__RATES": '{"CREDITS": 0.01}',
        # Most sample orders have no budget: the demo deployment auto-approves them up to this
        # (the default ceiling is none: every unbudgeted price would wait for a command).
        "TASKING_APPROVAL__UNBUDGETED_CEILING": DEMO_UNBUDGETED_CEILING,
    }


#: The demo deployment's ceiling for requests without a budget (ADR 0007).
DEMO_UNBUDGETED_CEILING = '{"EUR": 100000, "CREDITS": 10000000}'


# --------------------------------------------------------------------------- the run


class Timeout(Exception):
    """The demo's ``--timeout`` passed before every order was done."""


class WorkerStopped(Exception):
    """The worker stopped before every order was done (a fatal error; see its log)."""


@dataclass
class Demo:
    """One demo run: the client side (publish, watch, decide) once the services are up."""

    options: DemoOptions
    settings: Settings
    board: Board
    output: Output
    producer: AIOKafkaProducer
    interactive: bool
    advance: Callable[[float], None]
    decisions: asyncio.Queue[tuple[float, str, OrderStatusEvent | AcquisitionEvent]] = field(
        default_factory=asyncio.Queue
    )
    answered: set[str] = field(default_factory=set)
    live: Live | None = None
    prompting: bool = False

    async def publish_samples(self) -> None:
        for view in self.board.views.values():
            record = codec.encode_input(view.request, source="urn:tasking-worker:demo")
            await self.producer.send_and_wait(
                self.settings.topics.requests, record.value, key=record.key, headers=record.headers
            )
            self.output.note(f"published {view.request.request_id}: {view.sample.story}")

    async def watch(self, consumer: AIOKafkaConsumer) -> None:
        """Apply every status and acquisition event to the board; queue what needs an answer."""
        topics = self.settings.topics
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for batch in batches.values() for r in batch):
                try:
                    if record.topic == topics.status:
                        self._on_status(OrderStatusEvent.model_validate_json(record.value or b""))
                    elif record.topic == topics.deliveries:
                        self._on_delivery(orjson.loads(record.value or b"{}"))
                    else:
                        self._on_acquisition(AcquisitionEvent.model_validate_json(record.value or b""))
                except (ValidationError, orjson.JSONDecodeError):
                    self.output.note(f"unreadable event on {record.topic} at offset {record.offset}")

    def _on_status(self, event: OrderStatusEvent) -> None:
        view = self.board.apply_status(event)
        if view is None:
            return
        if not self.output.live:
            self.output.line(status_line(event))
        rejected = event.reason is not None and event.reason.code == "COMMAND_REJECTED"
        if event.status is OrderStatus.DECISION_REQUIRED and not rejected:
            self.decisions.put_nowait((time.monotonic(), event.request_id, event))

    def _on_delivery(self, item: dict[str, Any]) -> None:
        known = self.board.views.get(str((item.get("properties") or {}).get("tasking:request_id")))
        first = known is not None and str(item.get("id")) not in known.deliveries
        if self.board.apply_delivery(item) is not None and first and not self.output.live:
            self.output.line(delivery_line(item))

    def _on_acquisition(self, event: AcquisitionEvent) -> None:
        if self.board.apply_acquisition(event) is None:
            return
        if not self.output.live:
            self.output.line(acquisition_line(event))
        if event.status is AcquisitionStatus.PROPOSED:
            due = time.monotonic() + ACQUISITION_GRACE_SECONDS
            self.decisions.put_nowait((due, event.request_id, event))

    async def decide(self) -> None:
        """Answer queued decisions one at a time (so prompts never overlap)."""
        while True:
            due, request_id, item = await self.decisions.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            view = self.board.views[request_id]
            if view.done:
                continue
            if isinstance(item, OrderStatusEvent):
                await self._answer_decision(view, item)
            elif isinstance(item, AcquisitionEvent):
                await self._answer_acquisition(view, item)

    async def _answer_decision(self, view: OrderView, event: OrderStatusEvent) -> None:
        if view.last is None or view.last.sequence != event.sequence:
            return  # the worker moved on (a deadline, another command)
        key = f"{event.request_id}:decision:{event.sequence}"
        if key in self.answered:
            return
        answer = (
            await self._ask_decision(view, event) if self.interactive else auto_answer(view.request, event)
        )
        if answer is not None:
            await self._send(event.request_id, answer, f"demo-{event.sequence}-{answer.command.value}")
            self.answered.add(key)

    async def _answer_acquisition(self, view: OrderView, event: AcquisitionEvent) -> None:
        latest = view.acquisitions.get(event.acquisition_id)
        key = f"{event.request_id}:acquisition:{event.acquisition_id}"
        if latest is None or latest.status is not AcquisitionStatus.PROPOSED or key in self.answered:
            return  # the worker's policy (or the provider) already decided
        if self.interactive:
            answer = await self._ask_acquisition(latest)
        else:
            answer = Answer(
                CommandName.ACCEPT_ACQUISITION,
                "proposed acquisition accepted",
                acquisition_id=latest.acquisition_id,
            )
        await self._send(event.request_id, answer, f"demo-{answer.command.value}-{latest.acquisition_id}")
        self.answered.add(key)

    async def _send(self, request_id: str, answer: Answer, command_id: str) -> None:
        command = command_for(request_id, answer, command_id[:128])
        record = codec.encode_input(command, source="urn:tasking-worker:demo")
        await self.producer.send_and_wait(
            self.settings.topics.commands, record.value, key=record.key, headers=record.headers
        )
        target = answer.option_id or answer.acquisition_id or ""
        self.output.note(f"demo → {answer.command.value} {target} for {request_id} ({answer.why})")

    # ----------------------------------------------------------------- interactive prompts

    async def _ask_decision(self, view: OrderView, event: OrderStatusEvent) -> Answer | None:
        decision = event.decision
        if decision is None:
            return None

        def ask() -> Answer | None:
            self.output.console.print(
                f"\n[bold magenta]{escape(event.request_id)}[/] needs a decision: "
                f"{escape(status_line(event))}"
            )
            if decision.kind is DecisionKind.SELECT_OFFER:
                return ask_offer()
            if decision.kind is DecisionKind.SELECT_FEASIBILITY_OPTION:
                for number, option in enumerate(decision.options, start=1):
                    self.output.console.print(f"  {number}. {escape(option.description)} ({option.id})")
                choice = IntPrompt.ask(
                    "option",
                    console=self.output.console,
                    default=1,
                    choices=[str(n) for n in range(1, len(decision.options) + 1)],
                )
                chosen = decision.options[choice - 1]
                return Answer(
                    CommandName.SELECT_FEASIBILITY_OPTION, f"option {choice} chosen", option_id=chosen.id
                )
            default = "reject" if over_budget(view.request, event) else "approve"
            verb = Prompt.ask(
                "approve or reject",
                console=self.output.console,
                choices=["approve", "reject"],
                default=default,
            )
            return Answer(CommandName(verb), f"{verb} chosen at the prompt")

        def ask_offer() -> Answer | None:
            assert decision is not None
            self.output.console.print("  the offers, preferred first:")
            for line in offer_lines([o.to_json_dict() for o in event.offers or []]):
                self.output.console.print(f"    {escape(line)}")
            for number, option in enumerate(decision.options, start=1):
                self.output.console.print(f"  {number}. {escape(option.description)} ({option.id})")
            choice = IntPrompt.ask(
                "offer to order",
                console=self.output.console,
                default=1,
                choices=[str(n) for n in range(1, len(decision.options) + 1)],
            )
            chosen = decision.options[choice - 1]
            return Answer(
                CommandName.SELECT_OFFER, f"offer {chosen.id} chosen at the prompt", option_id=chosen.id
            )

        return await self._prompt(ask)

    async def _ask_acquisition(self, event: AcquisitionEvent) -> Answer:
        def ask() -> Answer:
            self.output.console.print(
                f"\n[bold magenta]{escape(event.request_id)}[/]: {escape(acquisition_line(event))}"
            )
            verb = Prompt.ask(
                "accept or refuse",
                console=self.output.console,
                choices=["accept", "refuse"],
                default="accept",
            )
            return Answer(
                CommandName(f"{verb}-acquisition"),
                f"{verb} chosen at the prompt",
                acquisition_id=event.acquisition_id,
            )

        return await self._prompt(ask)

    async def _prompt(self, ask: Callable[[], T]) -> T:
        """Run a blocking prompt with the live view stopped and simulated time held."""
        self.prompting = True
        live = self.live
        if live is not None:
            live.stop()
        try:
            return await in_daemon_thread(ask)
        finally:
            self.prompting = False
            if live is not None:
                live.start()

    # ----------------------------------------------------------------- time-lapse

    async def time_lapse(self) -> None:
        """Move simulated time ahead while every open order waits on its provider."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.output.paused_by = ["your answer"] if self.prompting else self.board.waiting_on()
            if not self.prompting and self.board.with_providers():
                self.advance(self.options.speed * TICK_SECONDS)

    async def until_done(self, deadline: float, worker: asyncio.Task[None]) -> None:
        """Return once every order is done.

        Raises:
            Timeout: at ``deadline``.
            WorkerStopped: the worker's task ended on its own (its log says why).
        """
        while not self.board.all_done():
            if worker.done():
                raise WorkerStopped
            if time.monotonic() >= deadline:
                raise Timeout
            await asyncio.sleep(0.2)


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run a blocking call in a daemon thread: a prompt left unanswered never blocks the exit
    (``asyncio.to_thread`` would, since the loop waits for its executor when it closes)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task as it is
            loop.call_soon_threadsafe(_set_exception, future, exc)
        else:
            loop.call_soon_threadsafe(_set_result, future, result)

    threading.Thread(target=target, name="demo-prompt", daemon=True).start()
    return await future


def _set_result(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# --------------------------------------------------------------------------- start and stop


@dataclass
class Services:
    """What :func:`running_services` started."""

    settings: Settings
    simulators: RunningSimulators
    worker: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_services(workdir: Path) -> AsyncIterator[Services]:
    """Broker, simulators and worker, started in that order and stopped in reverse.

    The worker's settings come from ``TASKING_*`` variables only (:func:`demo_environment`); its
    log lines go to ``workdir/worker.log``, the broker's to ``workdir/broker.log``.

    Raises:
        BrokerError, OSError, ConfigError, KafkaError: something could not start.
    """
    from worker.app import build_worker
    from worker.kafka.broker import EmbeddedBroker
    from worker.observability.logging import configure_logging
    from worker.simulators.server import start_simulators

    async with contextlib.AsyncExitStack() as stack:
        # Opened first and closed last: every library logs until the very end of the shutdown.
        log_file = stack.enter_context((workdir / "worker.log").open("a", encoding="utf-8"))
        configure_logging("INFO", "json", stream=log_file)
        broker = EmbeddedBroker(log_path=workdir / "broker.log")
        stack.push_async_callback(broker.stop)
        await broker.start()
        sims = await start_simulators(speed=BASE_SPEED)
        stack.push_async_callback(sims.stop)
        settings = settings_from(demo_environment(broker.bootstrap_servers, sims.worker_env()))
        await broker.create_contract_topics(settings.topics)
        configure_logging(settings.log_level, "json", settings.secret_values(), stream=log_file)
        worker = await build_worker(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_until(stop), name="worker")
        stack.push_async_callback(_stop_worker, stop, task)
        yield Services(settings, sims, task)


async def _stop_worker(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Graceful stop (the worker drains, commits, leaves its group); cancelled after 30 s."""
    stop.set()
    with contextlib.suppress(Exception):  # a failure is in the worker log; stopping goes on
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def kafka_clients(settings: Settings) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """The demo client's producer and its group-less consumer of the output topics."""
    servers = settings.kafka.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=False, acks="all")
    consumer = AIOKafkaConsumer(
        settings.topics.status,
        settings.topics.acquisitions,
        settings.topics.deliveries,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    try:
        await consumer.start()
        try:
            yield producer, consumer
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def run_async(options: DemoOptions, console: Console) -> int:
    """The whole demo; returns the exit code (see the module docstring)."""
    from aiokafka.errors import KafkaError

    from worker.delivery.command import download_first
    from worker.errors import ConfigError
    from worker.kafka.broker import BrokerError

    started = time.monotonic()
    live = not options.plain and console.is_terminal
    interactive = live and not options.auto_approve and sys.stdin.isatty()
    if not options.auto_approve and not interactive:
        console.print(
            "[yellow]no terminal to ask on: decisions are answered automatically, as with --auto-approve[/]"
        )
    workdir = Path(tempfile.mkdtemp(prefix="tasking-demo-"))
    output = Output(console, live, started)
    board = Board(load_samples(datetime.now(UTC), interactive=interactive), SAMPLES)
    output.board = board
    output.line(f"starting the broker, the simulators and the worker (logs in {workdir})")
    # Beside the downloaded items, whose ``collection`` links point at ``../collections/{id}.json``.
    from worker.commands.stac import write_collections

    collections = workdir / "downloads" / "collections"
    write_collections(collections, None)
    output.line(f"STAC collection documents of the delivered items: {collections}")
    try:
        async with running_services(workdir) as services:
            code = await _client(options, services, board, output, interactive, started)
            if code == EXIT_OK:  # the last step: one delivered product to a local file
                code = await download_first(
                    services.settings, board.completed(), workdir / "downloads", console, bars=live
                )
    except (BrokerError, OSError, ConfigError, KafkaError) as exc:
        console.print(
            f"[bold red]the demo could not run:[/] {escape(type(exc).__name__)}: {escape(str(exc))}"
        )
        code = EXIT_FAILED
    _report(console, board, code, options.timeout, workdir)
    return code


def fast_forward(simulators: RunningSimulators) -> Callable[[float], None]:
    """A function that moves the simulators' shared clock ahead (tokens run on real time)."""
    return simulators.oneatlas.core.clock.advance


async def _client(
    options: DemoOptions, services: Services, board: Board, output: Output, interactive: bool, started: float
) -> int:
    """Publish, watch and answer until every order is done; returns the exit code."""
    sims = services.simulators
    output.clock = sims.oneatlas.core.clock.now  # both simulators share this clock
    async with kafka_clients(services.settings) as (producer, consumer):
        demo = Demo(options, services.settings, board, output, producer, interactive, fast_forward(sims))
        await demo.publish_samples()
        tasks = [asyncio.create_task(c) for c in (demo.watch(consumer), demo.decide(), demo.time_lapse())]
        try:
            await _until_done(demo, services.worker, started + options.timeout)
            await asyncio.sleep(DRAIN_SECONDS)
        except Timeout:
            return EXIT_TIMEOUT
        except WorkerStopped:
            output.console.print("[bold red]the worker stopped unexpectedly (see worker.log)[/]")
            return EXIT_FAILED
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return EXIT_OK if not board.problems() else EXIT_FAILED


async def _until_done(demo: Demo, worker: asyncio.Task[None], deadline: float) -> None:
    if not demo.output.live:
        await demo.until_done(deadline, worker)
        return
    with Live(demo.output, console=demo.output.console, refresh_per_second=4) as view:
        demo.live = view
        try:
            await demo.until_done(deadline, worker)
        finally:
            demo.live = None


def _report(console: Console, board: Board, code: int, timeout: float, workdir: Path) -> None:
    console.print(summary_table(board))
    if code == EXIT_TIMEOUT:
        console.print(f"[bold red]timeout:[/] not every order finished within {timeout:g} s")
    for problem in board.problems():
        console.print(f"[red]✗[/] {escape(problem)}")
    if code == EXIT_OK:
        console.print("[bold green]every order reached its expected status[/]")
    console.print(f"[dim]worker and broker logs: {escape(str(workdir))}[/]")


def run(options: DemoOptions, console: Console) -> int:
    """Entry point of ``tasking-worker demo``: runs :func:`run_async` in a new event loop."""
    return asyncio.run(run_async(options, console))
