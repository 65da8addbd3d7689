"""The demo's live view: what it knows of each order, the live table and the plain lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from worker.demo.samples import PROVIDER_STATUSES, Sample
from worker.events.models import (
    AcquisitionEvent,
    AcquisitionStatus,
    Candidate,
    Offer,
    OrderRequest,
    OrderStatusEvent,
    Provider,
)
from worker.events.status import OrderStatus

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
