"""Types of the pure domain core: the durable order state, the events that drive it, the effects
it asks the shell to perform.

``decide(state, event) -> (state, effects)`` (``worker.domain.decide``) is a pure function over
these types: no I/O, no clock (times arrive inside events), no randomness. The effect runner
(``worker.runtime.runner``) persists the new state, performs the effects, publishes its outbox
(while the provider calls run), and feeds the calls' results back as events.

Everything here is a pydantic model so the whole :class:`OrderState` is one JSON document in the
``tasking.worker-state`` changelog.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.domain.ports import (
    Acquisition,
    Attempt,
    FeasibilityResult,
    FeasibilityStudy,
    OrderSnapshot,
    PlacedOrder,
    PriceQuote,
    Quotation,
)
from worker.events.delivery import DeliveryEvent
from worker.events.models import (
    AcquisitionEvent,
    AcquisitionStatus,
    Candidate,
    Command,
    DecidedBy,
    Decision,
    Money,
    OrderRequest,
    OrderStatusEvent,
    Progress,
    Reason,
)
from worker.events.products import DeliveredProduct
from worker.events.status import OrderStatus


class DomainModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- operations


class Op(StrEnum):
    """Provider operations the core can ask for (one per ``TaskingProvider`` method)."""

    VALIDATE = "validate"
    FEASIBILITY = "feasibility"
    ATTEMPTS = "attempts"
    PRICE = "price"
    PLACE_ORDER = "place_order"  # paid (intent first)
    FIND_ORDER = "find_order"  # reconciliation by customer reference
    GET_ORDER = "get_order"
    LIST_ACQUISITIONS = "list_acquisitions"
    DECIDE_ACQUISITION = "decide_acquisition"  # intent first
    DECIDE_QUOTATION = "decide_quotation"  # paid when accepting (intent first)
    CHOOSE_OPTION = "choose_option"  # paid (intent first)
    CANCEL = "cancel"


PAID_OPS = frozenset({Op.PLACE_ORDER, Op.DECIDE_QUOTATION, Op.CHOOSE_OPTION, Op.DECIDE_ACQUISITION})


class TimerKind(StrEnum):
    RETRY = "retry"  # re-run the current step after a retriable failure
    RECONCILE = "reconcile"  # look again for an order whose placement outcome is unknown
    DECISION_DEADLINE = "decision_deadline"  # a customer decision's deadline
    WINDOW_END = "window_end"  # the acquisition window ended
    DELIVERY_CHECK = "delivery_check"  # the delivery grace period or the delivery timeout ended


# --------------------------------------------------------------------------- state


class Phase(StrEnum):
    """Internal step of the sequence (finer than the contract status)."""

    VALIDATING = "VALIDATING"
    FEASIBILITY = "FEASIBILITY"
    ATTEMPTS = "ATTEMPTS"
    PRICING = "PRICING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"  # DECISION_REQUIRED approve-price before ordering
    PLACING = "PLACING"  # intent recorded, PLACE_ORDER in flight
    RECONCILING = "RECONCILING"  # placement outcome unknown: FIND_ORDER after settle
    AWAITING_PROVIDER = "AWAITING_PROVIDER"  # polling: study, quotation, activation, acquisitions
    AWAITING_OPTION = "AWAITING_OPTION"  # DECISION_REQUIRED select-feasibility-option
    CHOOSING_OPTION = "CHOOSING_OPTION"  # intent recorded, CHOOSE_OPTION in flight
    AWAITING_QUOTATION_DECISION = "AWAITING_QUOTATION_DECISION"  # DECISION_REQUIRED on a quotation
    DECIDING_QUOTATION = "DECIDING_QUOTATION"  # intent recorded, DECIDE_QUOTATION in flight
    CANCELLING = "CANCELLING"  # CANCEL in flight
    AWAITING_DELIVERY = "AWAITING_DELIVERY"  # the provider finished; products still to come (IN_PROGRESS)
    OFFERS = "OFFERS"  # provider "auto": the candidates' reads run (``OrderState.routing``)
    AWAITING_OFFER = "AWAITING_OFFER"  # DECISION_REQUIRED select-offer
    # DECISION_REQUIRED CUSTOMER_REFERENCE_IN_USE: an order found by the customer reference does
    # not match the request (``OrderState.found_order``); adopted by ``approve``, else declined.
    AWAITING_ADOPTION = "AWAITING_ADOPTION"
    DONE = "DONE"  # terminal (or dry run ended at QUOTED)


class IntentKind(StrEnum):
    PLACE_ORDER = "place_order"
    ACCEPT_QUOTATION = "accept_quotation"
    REFUSE_QUOTATION = "refuse_quotation"
    CHOOSE_OPTION = "choose_option"
    DECIDE_ACQUISITION = "decide_acquisition"
    CANCEL = "cancel"


class Intent(DomainModel):
    """A write recorded durably *before* it is sent, so a restart reconciles instead of repeating.

    ``outcome_unknown_at`` is set when the write was sent and no answer came back.
    """

    kind: IntentKind
    started_at: datetime
    attempt: int = 1
    target: str | None = None  # quotation id, option id or acquisition id
    accept: bool | None = None
    decided_by: DecidedBy | None = None
    outcome_unknown_at: datetime | None = None
    # An owner stopped (crash, rebalance) with this write in flight: whether it was sent at all is
    # unknown. Such a write is read back and re-sent without counting an attempt (attempts bound
    # writes the provider answered ambiguously); ``interrupted`` bounds restarts of one write.
    from_resume: bool = False
    interrupted: int = 0
    # Sends of this write whose outcome was unknown (a lost answer, a 5xx, an unreadable 2xx, an
    # owner stopped mid-call). Never reset by a re-send: while it is above zero, no refusal is
    # definitive (docs/adr/0008-outcome-of-paid-writes.md).
    unknown_sends: int = 0
    # A refusal came after an unknown outcome: from then on only the provider's record decides.
    # Reads repeat with backoff (``reads``) until ``refused_at`` + ``Settings.outcome_timeout_seconds``,
    # then the request goes to DECISION_REQUIRED ``OUTCOME_UNKNOWN`` (``undecided``).
    refused_at: datetime | None = None
    reads: int = 0
    undecided: bool = False
    # What the worker saw of this write, oldest first (bounded): the status event's evidence.
    evidence: list[str] = Field(default_factory=list)
    # PLACE_ORDER: the request's product/AOI/window fingerprint (``worker.domain.identity``),
    # compared with an order found by customer reference before it is adopted.
    identity: dict[str, str] = Field(default_factory=dict)


class AcquisitionRecord(DomainModel):
    """What the worker knows and has said about one acquisition."""

    status: AcquisitionStatus
    events: int = 0  # AcquisitionEvents published so far (the ``n`` of the next ce_id is events+1)
    decided_by: DecidedBy | None = None
    decision_sent: bool = False  # a decision reached the provider (never sent twice)
    # The latest data the provider gave (the source of the next AcquisitionEvent's fields).
    acquisition: Acquisition | None = None
    # A command's decision waiting for its turn (one acquisition decision in flight per order).
    pending_accept: bool | None = None


class OutboxStatus(DomainModel):
    kind: Literal["status"] = "status"
    event: OrderStatusEvent


class OutboxAcquisition(DomainModel):
    kind: Literal["acquisition"] = "acquisition"
    event: AcquisitionEvent
    n: int


class OutboxDelivery(DomainModel):
    kind: Literal["delivery"] = "delivery"
    event: DeliveryEvent


OutboxItem = Annotated[OutboxStatus | OutboxAcquisition | OutboxDelivery, Field(discriminator="kind")]


class DeliveryRecord(DomainModel):
    """A delivered product already published (its item id is the key in ``OrderState.deliveries``).

    ``acquisition_ids`` are the acquisitions it was joined to when it was published.
    """

    acquisition_ids: list[str] = Field(default_factory=list)
    source_ids: list[str] = Field(default_factory=list)  # the product's join keys (re-joined later)
    at: datetime
    # Published without an asset the provider could not be read for (UP42: the collection's
    # original archive); the product is published again, complete, when that read succeeds.
    partial: bool = False


class ProviderFinished(DomainModel):
    """The provider finished the order (a ``COMPLETED`` snapshot) while products were still to come."""

    at: datetime
    provider_status: str


class OrderState(DomainModel):
    """The durable state of one request (the value of its ``tasking.worker-state`` record).

    Invariants: ``sequence`` equals the number of status events ever emitted; ``last_event`` is
    the latest of them; ``outbox`` holds events not yet confirmed published (the runner publishes
    them after the state is durable and clears them); ``intent`` is set only between recording a
    write and learning its outcome.
    """

    request: OrderRequest
    received_at: datetime
    # The deployment's ceiling for a request without a budget, fixed when the request was
    # received (ADR 0007); None: no ceiling (also every state written before it existed).
    unbudgeted_ceiling: dict[str, float] | None = None
    status: OrderStatus | None = None
    status_since: datetime | None = None
    sequence: int = 0
    phase: Phase = Phase.VALIDATING
    step_retries: int = 0
    placed: PlacedOrder | None = None
    feasibility: FeasibilityResult | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    chosen_attempt: Attempt | None = None
    price: PriceQuote | None = None
    approved_amount: float | None = None  # a price a customer approved by command
    study: FeasibilityStudy | None = None
    quotation: Quotation | None = None
    decision: Decision | None = None
    progress: Progress | None = None
    reason: Reason | None = None
    intent: Intent | None = None
    cancel_requested_by: str | None = None  # commandId of a cancel waiting for an in-flight write
    # The audit reason of the accepted cancel command, for the event that ends (or refuses) it.
    cancel_audit: Reason | None = None
    # The audit reason of a fitting command, attached to the next status transition, then cleared.
    audit: Reason | None = None
    change_marker: str | None = None
    commands_seen: list[str] = Field(default_factory=list)  # last commandIds (bounded)
    acquisitions: dict[str, AcquisitionRecord] = Field(default_factory=dict)
    # Delivered products published so far, by item id: each is published exactly once.
    deliveries: dict[str, DeliveryRecord] = Field(default_factory=dict)
    # Products that joined no known acquisition, held until the acquisitions are listed again
    # (or until the harvest brings them a second time), then published.
    held_products: list[DeliveredProduct] = Field(default_factory=list)
    finished: ProviderFinished | None = None  # set in AWAITING_DELIVERY
    # UP42: the item ids of the whole delivery, as the provider's storage last showed it
    # complete (DeliverySettled); None before. Added after the first release of the state.
    settled_items: list[str] | None = None
    # An acquisition listing asked for by a moved change marker has not answered yet: completion
    # waits for it (an acquisition validated at the end must not be missed).
    listing_due: bool = False
    last_event: OrderStatusEvent | None = None
    outbox: list[OutboxItem] = Field(default_factory=list)
    routing: RoutingState | None = None  # provider "auto" only (see the routing block below)
    # The order found by customer reference that does not match this request (AWAITING_ADOPTION).
    found_order: PlacedOrder | None = None

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def terminal(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def tracking(self) -> bool:
        """Whether the batched poller should follow this order."""
        return self.placed is not None and self.phase in TRACKED_PHASES

    @property
    def awaiting_delivery(self) -> bool:
        """Whether the delivery harvest should look for this order's products."""
        return awaiting_delivery(self.placed is not None, self.phase)


def awaiting_delivery(placed: bool, phase: Phase) -> bool:
    """Products may come for any order placed at the provider and not finished: also one whose
    state still shows an earlier status (a poll not yet seen: the provider may deliver before the
    worker learns that the order is active), so the harvest never skips a product of an order it
    owns."""
    return placed and phase is not Phase.DONE


TRACKED_PHASES = frozenset(
    {
        Phase.AWAITING_PROVIDER,
        Phase.AWAITING_OPTION,
        Phase.AWAITING_QUOTATION_DECISION,
    }
)


# --------------------------------------------------------------------------- events (inputs)


class ErrorInfo(DomainModel):
    """A provider failure, as the core needs to see it (translated from the error tree)."""

    reason_code: str
    message: str
    retriable: bool = False
    outcome_unknown: bool = False
    not_feasible: bool = False
    rejected: bool = False  # the provider refused (4xx / documented refusal)
    provider_code: str | None = None
    retry_after: float | None = None


class RequestReceived(DomainModel):
    kind: Literal["request_received"] = "request_received"
    request: OrderRequest
    at: datetime


class CommandReceived(DomainModel):
    kind: Literal["command_received"] = "command_received"
    command: Command
    at: datetime


class Validated(DomainModel):
    kind: Literal["validated"] = "validated"
    at: datetime


class FeasibilityAnswered(DomainModel):
    kind: Literal["feasibility_answered"] = "feasibility_answered"
    result: FeasibilityResult
    at: datetime


class AttemptsFound(DomainModel):
    kind: Literal["attempts_found"] = "attempts_found"
    attempts: list[Attempt]
    at: datetime


class Priced(DomainModel):
    kind: Literal["priced"] = "priced"
    quote: PriceQuote
    at: datetime


class OrderPlaced(DomainModel):
    """PLACE_ORDER answered, or FIND_ORDER found the order (``found=True``)."""

    kind: Literal["order_placed"] = "order_placed"
    placed: PlacedOrder
    found: bool = False
    at: datetime


class OrderNotFound(DomainModel):
    """FIND_ORDER found no order for the customer reference."""

    kind: Literal["order_not_found"] = "order_not_found"
    at: datetime


class Polled(DomainModel):
    """A tracking snapshot (batched poll or GET_ORDER)."""

    kind: Literal["polled"] = "polled"
    snapshot: OrderSnapshot
    at: datetime


class AcquisitionsListed(DomainModel):
    kind: Literal["acquisitions_listed"] = "acquisitions_listed"
    acquisitions: list[Acquisition]
    at: datetime


class WriteDone(DomainModel):
    """A write succeeded: DECIDE_QUOTATION, CHOOSE_OPTION, DECIDE_ACQUISITION or CANCEL."""

    kind: Literal["write_done"] = "write_done"
    op: Op
    target: str | None = None
    at: datetime


class StepFailed(DomainModel):
    kind: Literal["step_failed"] = "step_failed"
    op: Op
    error: ErrorInfo
    target: str | None = None
    at: datetime


class TimerFired(DomainModel):
    kind: Literal["timer_fired"] = "timer_fired"
    timer: TimerKind
    at: datetime


class DeliveryFound(DomainModel):
    """The delivery harvest found a product of this order (maybe one already published)."""

    kind: Literal["delivery_found"] = "delivery_found"
    product: DeliveredProduct
    at: datetime


class DeliverySettled(DomainModel):
    """The provider's storage shows this order's delivery complete (UP42: every storage asset of
    the ``FULFILLED`` order extracted, its items among ``item_ids``, or published as its archive).

    Only the adapter's direct lookup of a finished order reports it; it counts once every item in
    ``item_ids`` is published for the order (some may still wait for an acquisition listing)."""

    kind: Literal["delivery_settled"] = "delivery_settled"
    tracking_key: str
    item_ids: list[str]
    at: datetime


class Resumed(DomainModel):
    """The order's partition was (re)assigned to this instance and its state restored."""

    kind: Literal["resumed"] = "resumed"
    at: datetime


class TrackingFailed(DomainModel):
    """The poller failed to follow this order ``failures`` times in a row since ``since``: one
    of its own reads, the parsing of its snapshot, or the step applying it (``what``: ``read``,
    ``parse`` or ``dispatch``). Sent once when the count reaches the configured threshold."""

    kind: Literal["tracking_failed"] = "tracking_failed"
    failures: int
    what: str
    message: str
    since: datetime
    at: datetime


class TrackingRecovered(DomainModel):
    """A snapshot of an order reported with :class:`TrackingFailed` was applied again."""

    kind: Literal["tracking_recovered"] = "tracking_recovered"
    failures: int
    since: datetime
    at: datetime


# Provider "auto": the answer of a read run for one offer (see the provider-choice block).
CandidateEvent = Annotated[
    Validated | FeasibilityAnswered | AttemptsFound | Priced | StepFailed, Field(discriminator="kind")
]


class OfferAnswered(DomainModel):
    """The answer of a read run for one offer of a ``provider: "auto"`` request."""

    kind: Literal["offer_answered"] = "offer_answered"
    offer: str
    event: CandidateEvent
    at: datetime


DomainEvent = Annotated[
    OfferAnswered
    | RequestReceived
    | CommandReceived
    | Validated
    | FeasibilityAnswered
    | AttemptsFound
    | Priced
    | OrderPlaced
    | OrderNotFound
    | Polled
    | AcquisitionsListed
    | WriteDone
    | StepFailed
    | TimerFired
    | Resumed
    | TrackingFailed
    | TrackingRecovered
    | DeliveryFound
    | DeliverySettled,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- effects (outputs)


class CallProvider(DomainModel):
    """Run one provider operation; its result comes back as an event.

    ``target``/``accept`` carry the arguments of decision operations (quotation id, option id,
    acquisition id). The study id for CHOOSE_OPTION is ``state.study.id``.
    """

    kind: Literal["call"] = "call"
    op: Op
    target: str | None = None
    accept: bool | None = None
    offer: str | None = None  # provider "auto": a read for this offer, on its own provider


class Schedule(DomainModel):
    """Fire ``TimerFired(timer)`` for this order at ``at`` (replaces a timer of the same kind)."""

    kind: Literal["schedule"] = "schedule"
    timer: TimerKind
    at: datetime


class Unschedule(DomainModel):
    kind: Literal["unschedule"] = "unschedule"
    timer: TimerKind


Effect = CallProvider | Schedule | Unschedule


class Settings(DomainModel):
    """The knobs ``decide`` needs (from configuration), passed in explicitly to stay pure."""

    settle_seconds: float = 45.0
    max_step_retries: int = 5
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0
    max_place_attempts: int = 3
    max_interruptions: int = 10
    # After a refusal that follows an unknown outcome, how long reads may take to find the order
    # before the request goes to DECISION_REQUIRED OUTCOME_UNKNOWN
    # (``TASKING_HTTP_CLIENT__OUTCOME_TIMEOUT_SECONDS``).
    outcome_timeout_seconds: float = 1800.0
    commands_remembered: int = 64
    delivery_grace_seconds: float = 0.0
    delivery_timeout_seconds: float = 1209600.0
    harvest_after_completion_seconds: float = 604800.0
    # Provider "auto": currency -> value of one unit in the budget currency (TASKING_ROUTING__RATES).
    rates: dict[str, float] = Field(default_factory=dict)
    # Currency -> highest price auto-approved for a request without a budget
    # (TASKING_APPROVAL__UNBUDGETED_CEILING; ADR 0007). None: no ceiling at all, as before the
    # ceiling existed (the flows' own tests); the service always passes its configured mapping.
    unbudgeted_ceiling: dict[str, float] | None = None


# --------------------------------------------------------------------------- provider choice
# A ``provider: "auto"`` request (CONTRACT §3.3) runs the non-paying steps of each candidate as a
# dry-run direct request of its own (an ``OrderState`` nested in an :class:`OfferRecord`), all at
# once; the answers come back wrapped in :class:`OfferAnswered`. Once an offer is chosen, the
# order's ``request`` becomes the direct request of that offer and the order goes on as one.


class OfferRecord(DomainModel):
    """One candidate: its dry-run state and, once it settled, what it offers.

    ``retry_at`` is when its read is retried after a retriable failure (the order's single
    ``RETRY`` timer fires at the earliest one). ``comparable`` is fixed when every offer is known,
    with the rates of that moment. ``refused`` is the provider's refusal of its placement.
    """

    id: str
    candidate: int
    state: OrderState
    retry_at: datetime | None = None
    comparable: Money | None = None
    refused: Reason | None = None


class RoutingState(DomainModel):
    """The choice of a provider: the request as received, its offers, and the choice so far.

    ``ranking`` holds the offer ids, preferred first, once every offer is known. ``chosen`` is
    the offer whose direct request ``OrderState.request`` now is; ``choices`` counts the choices
    made (a fallback is a new choice), ``chosen_by`` says who made the last one.
    """

    request: OrderRequest
    offers: list[OfferRecord]
    ranking: list[str] = Field(default_factory=list)
    chosen: str | None = None
    chosen_by: Literal["worker", "command", "fallback"] | None = None
    choices: int = 0

    def candidate(self, record: OfferRecord) -> Candidate:
        """The request's candidate behind ``record``."""
        return (self.request.candidates or [])[record.candidate]

    def offer(self, offer_id: str | None) -> OfferRecord | None:
        return next((record for record in self.offers if record.id == offer_id), None)


OrderState.model_rebuild()
OfferRecord.model_rebuild()
