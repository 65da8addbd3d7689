"""Small builders for domain tests: requests, snapshots, acquisitions, and :class:`Order`, a
harness that feeds events to ``decide`` like the runner does (drains the outbox after each step)
and checks at every step that the state round-trips through JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from worker.domain.decide import decide
from worker.domain.model import (
    CallProvider,
    DeliveryFound,
    DomainEvent,
    Effect,
    OrderState,
    OutboxAcquisition,
    OutboxDelivery,
    OutboxStatus,
    Schedule,
    Settings,
    Unschedule,
)
from worker.domain.ports import (
    Acquisition,
    AcquisitionCounts,
    Attempt,
    FeasibilityResult,
    FeasibilityStudy,
    OrderSnapshot,
    PlacedOrder,
    PriceQuote,
    Quotation,
    QuotationDecision,
    RemotePhase,
    StudyDecision,
    StudyOption,
)
from worker.events.delivery import DeliveryEvent
from worker.events.models import (
    AcquisitionEvent,
    AcquisitionStatus,
    Automation,
    Classification,
    Command,
    OrderRequest,
    OrderStatusEvent,
)
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.status import OrderStatus

_T = TypeVar("_T")

T0 = datetime(2025, 6, 1, tzinfo=UTC)
WINDOW_START = datetime(2025, 6, 2, tzinfo=UTC)
WINDOW_END = datetime(2025, 7, 15, tzinfo=UTC)
AOI = {"type": "Polygon", "coordinates": [[[1.36, 43.57], [1.5, 43.57], [1.5, 43.67], [1.36, 43.57]]]}
UP42_PRODUCT = "47dadb27-9532-4552-93a5-48f70a83eaef"


def at(minutes: float = 0) -> datetime:
    """``T0`` plus ``minutes`` (whole milliseconds, so times survive the JSON round trip)."""
    return T0 + timedelta(minutes=minutes)


def request(
    provider: str = "oneatlas", mission: str = "PLEIADES", programming_type: str = "ONEPLAN", **extra: Any
) -> OrderRequest:
    """A valid request; ``extra`` are camelCase contract fields."""
    product: dict[str, Any] = (
        {"dataProductId": UP42_PRODUCT}
        if provider == "up42"
        else {"mission": mission, "programmingType": programming_type}
    )
    data: dict[str, Any] = {
        "requestId": "req-1",
        "provider": provider,
        "product": product,
        "aoi": AOI,
        "window": {"start": WINDOW_START.isoformat(), "end": WINDOW_END.isoformat()},
        **extra,
    }
    return OrderRequest.model_validate(data)


def command(name: str, command_id: str = "cmd-1", **extra: Any) -> Command:
    return Command.model_validate({"requestId": "req-1", "commandId": command_id, "command": name, **extra})


def feasibility(
    automation: Automation = Automation.AUTOMATIC,
    *,
    available: bool = True,
    expires_at: datetime | None = None,
    programming_type: str = "ONEPLAN",
) -> FeasibilityResult:
    return FeasibilityResult(
        programming_type=programming_type,
        automation=automation,
        classification=Classification.EASY,
        available=available,
        expires_at=expires_at,
    )


def attempt(id_: str, *, incidence: float | None = 10.0, deadline: datetime | None = None) -> Attempt:
    return Attempt(
        id=id_,
        segment_key=f"key-{id_}",
        incidence_angle=incidence,
        order_deadline=deadline or at(60 * 24),
        acquisition_start=WINDOW_START,
    )


def quote(amount: float = 1000.0, currency: str = "EUR", *, indicative: bool = False) -> PriceQuote:
    return PriceQuote(amount=amount, currency=currency, area_km2=100.0, indicative=indicative)


def placed(key: str = "SO-1", **refs: str) -> PlacedOrder:
    return PlacedOrder(tracking_key=key, refs={"salesOrderId": key, **refs})


def quotation(
    id_: str = "QUO-1",
    amount: float = 1000.0,
    currency: str = "EUR",
    decision: QuotationDecision = QuotationDecision.NOT_DECIDED,
    valid_until: datetime | None = None,
) -> Quotation:
    return Quotation(id=id_, amount=amount, currency=currency, decision=decision, valid_until=valid_until)


def study(
    *,
    automation: Automation = Automation.MANUAL,
    decision: StudyDecision = StudyDecision.NOT_DECIDED,
    options: tuple[str, ...] = ("opt-1", "opt-2"),
    deadline: datetime | None = None,
) -> FeasibilityStudy:
    return FeasibilityStudy(
        id="study-1",
        automation=automation,
        decision=decision,
        deadline=deadline,
        options=[StudyOption(id=o, description=f"option {o}") for o in options],
    )


def snapshot(phase: RemotePhase, key: str = "SO-1", **extra: Any) -> OrderSnapshot:
    return OrderSnapshot(tracking_key=key, refs={}, provider_status=phase.value, phase=phase, **extra)


def counts(proposed: int = 0, validated: int = 0, refused: int = 0) -> AcquisitionCounts:
    return AcquisitionCounts(proposed=proposed, validated=validated, refused=refused)


def acquisition(
    id_: str,
    status: AcquisitionStatus = AcquisitionStatus.PROPOSED,
    *,
    cloud: float | None = 5.0,
    incidence: float | None = 10.0,
) -> Acquisition:
    return Acquisition(
        id=id_,
        status=status,
        provider_status=status.value,
        cloud_cover=cloud,
        incidence_angle=incidence,
        acquired_at=WINDOW_START,
        refs={"segmentId": id_},
    )


def product(item_id: str, key: str = "SO-1", *sources: str) -> DeliveredProduct:
    """A delivered product of the order tracked by ``key``, made from the ``sources`` ids."""
    return DeliveredProduct(
        item_id=item_id,
        tracking_key=key,
        datetime=WINDOW_START,
        source_ids=list(sources),
        assets=[ProductAsset(key="data", href=f"https://provider.example/items/{item_id}", roles=["data"])],
    )


def deliver(order: Order, item_id: str, minutes: float, *sources: str) -> list[Effect]:
    """Feed the order a delivered product (its tracking key is the placed order's)."""
    key = order.s.placed.tracking_key if order.s.placed else "SO-1"
    return order.send(DeliveryFound(product=product(item_id, key, *sources), at=at(minutes)))


class Order:
    """One order driven through ``decide`` as the runner drives it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.state: OrderState | None = None
        self.events: list[OrderStatusEvent] = []
        self.acquisition_events: list[tuple[AcquisitionEvent, int]] = []
        self.deliveries: list[DeliveryEvent] = []
        self.calls: list[CallProvider] = []

    def send(self, event: DomainEvent) -> list[Effect]:
        """Apply ``event``; drain the outbox; check the JSON round trip; return the effects."""
        new, effects = decide(self.state, event, self.settings)
        if new is not None:
            assert OrderState.model_validate_json(new.model_dump_json()) == new
            for item in new.outbox:
                if isinstance(item, OutboxStatus):
                    self.events.append(item.event)
                elif isinstance(item, OutboxAcquisition):
                    self.acquisition_events.append((item.event, item.n))
                elif isinstance(item, OutboxDelivery):
                    self.deliveries.append(item.event)
            if new.outbox:
                new = new.model_copy(update={"outbox": []})
        self.state = new
        self.calls.extend(e for e in effects if isinstance(e, CallProvider))
        return effects

    @property
    def s(self) -> OrderState:
        assert self.state is not None
        return self.state

    def statuses(self) -> list[OrderStatus]:
        return [e.status for e in self.events]

    def transitions(self) -> list[OrderStatus]:
        """The statuses without the events that repeat the previous one (progress repeats)."""
        return [e.status for e in self.events if e.status is not e.previous_status]

    def last(self) -> OrderStatusEvent:
        return self.events[-1]


def must(value: _T | None) -> _T:
    """``value``, which the test expects to be present."""
    assert value is not None
    return value


def idle(order: Order) -> bool:
    """No write in flight (a function, so a test can check it again after checking the opposite)."""
    return order.s.intent is None


def calls(effects: list[Effect]) -> list[CallProvider]:
    return [e for e in effects if isinstance(e, CallProvider)]


def ops(effects: list[Effect]) -> list[str]:
    return [e.op.value for e in calls(effects)]


def schedules(effects: list[Effect]) -> dict[str, datetime]:
    return {e.timer.value: e.at for e in effects if isinstance(e, Schedule)}


def unschedules(effects: list[Effect]) -> set[str]:
    return {e.timer.value for e in effects if isinstance(e, Unschedule)}


# --------------------------------------------------------------------------- drivers


def start(req: OrderRequest, settings: Settings | None = None) -> Order:
    """A new order, received and validated (its first read was asked for)."""
    from worker.domain.model import RequestReceived, Validated

    order = Order(settings)
    order.send(RequestReceived(request=req, at=at(0)))
    order.send(Validated(at=at(1)))
    return order


def to_quoted(req: OrderRequest, amount: float = 1000.0, settings: Settings | None = None) -> Order:
    """A OneAtlas feasibility-flow order driven through an automatic feasibility and a price."""
    from worker.domain.model import FeasibilityAnswered, Priced

    order = start(req, settings)
    order.send(FeasibilityAnswered(result=feasibility(), at=at(2)))
    order.send(Priced(quote=quote(amount), at=at(3)))
    return order


def to_placed(
    req: OrderRequest,
    placement: PlacedOrder | None = None,
    amount: float = 1000.0,
    settings: Settings | None = None,
) -> Order:
    """A OneAtlas feasibility-flow order auto-approved and placed."""
    from worker.domain.model import OrderPlaced

    order = to_quoted(req, amount, settings)
    order.send(OrderPlaced(placed=placement or placed(), at=at(4)))
    return order
