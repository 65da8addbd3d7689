"""The output models of the contract (CONTRACT §4), re-exported by :mod:`worker.events.models`:
status events and what they carry (attempt, feasibility, price, decision, progress, reason,
offers), acquisition events and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from worker.events.base import (
    OPTIONAL_OUTPUT_FIELD,
    ContractModel,
    Product,
    Provider,
    UtcDatetime,
)
from worker.events.status import OrderStatus, StapiStatus


class Automation(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


class Classification(StrEnum):
    EASY = "EASY"
    CHALLENGING = "CHALLENGING"


class AttemptInfo(ContractModel):
    """One acquisition opportunity offered by the provider (OneAtlas ``/attempts``)."""

    id: str
    acquisition_start: UtcDatetime | None = None
    acquisition_end: UtcDatetime | None = None
    order_deadline: UtcDatetime | None = None
    incidence_angle: float | None = None
    chosen: bool = False


class Feasibility(ContractModel):
    automation: Automation
    classification: Classification | None = None
    programming_type: str | None = None
    attempts: list[AttemptInfo] = Field(default_factory=list)


class Price(ContractModel):
    amount: Annotated[float, Field(ge=0)]
    currency: str
    area_km2: float | None = None


class DecisionKind(StrEnum):
    APPROVE_PRICE = "approve-price"
    SELECT_FEASIBILITY_OPTION = "select-feasibility-option"
    SELECT_OFFER = "select-offer"
    CONFIRM_ORDER = "confirm-order"


class DecisionOption(ContractModel):
    id: str
    description: str


class Decision(ContractModel):
    kind: DecisionKind
    options: list[DecisionOption] = Field(default_factory=list)
    deadline: UtcDatetime | None = None


class AcquisitionCounts(ContractModel):
    proposed: int = 0
    validated: int = 0
    refused: int = 0


class Progress(ContractModel):
    """``deliveries``: products published so far on ``tasking.deliveries`` (CONTRACT §4.1)."""

    acquisitions: AcquisitionCounts = AcquisitionCounts()
    coverage_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    # Added after the first release: optional in the schema, absent means 0.
    deliveries: Annotated[
        int,
        Field(
            ge=0,
            description="Added after the first release; absent means 0.",
            json_schema_extra={OPTIONAL_OUTPUT_FIELD: True},
        ),
    ] = 0


class Reason(ContractModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- offers (provider "auto")


class OfferStatus(StrEnum):
    OFFERED = "OFFERED"
    DROPPED = "DROPPED"


class Money(ContractModel):
    amount: Annotated[float, Field(ge=0)]
    currency: str


class Offer(ContractModel):
    """One candidate of a ``provider: "auto"`` request once its non-paying steps ran.

    ``price`` is the provider's indicative price (OneAtlas price, UP42 estimate);
    ``comparablePrice`` the same in the budget currency (else EUR), ``null`` when it cannot be
    converted (no price, unknown rate); ``firstOpportunity`` the earliest acquisition the provider
    stated, when it stated one.
    """

    id: str
    provider: Provider
    product: Product
    price: Price | None = None
    comparable_price: Money | None = None
    feasibility: Feasibility | None = None
    first_opportunity: UtcDatetime | None = None
    status: OfferStatus
    reason: Reason | None = None


class OrderStatusEvent(ContractModel):
    """One transition of one request (CONTRACT §4.1); ``sequence`` is contiguous from 1."""

    request_id: str
    provider: Provider
    sequence: Annotated[int, Field(ge=1)]
    status: OrderStatus
    previous_status: OrderStatus | None
    stapi_status: StapiStatus
    occurred_at: UtcDatetime
    provider_refs: dict[str, str] = Field(default_factory=dict)
    feasibility: Feasibility | None = None
    price: Price | None = None
    decision: Decision | None = None
    progress: Progress | None = None
    reason: Reason | None = None
    # Provider "auto" (CONTRACT §3.3). Added after the first release: optional in the schema,
    # absent means null (a direct request).
    offers: list[Offer] | None = Field(
        None,
        description="Added after the first release; absent means null.",
        json_schema_extra={OPTIONAL_OUTPUT_FIELD: True},
    )

    @property
    def ce_id(self) -> str:
        """Deterministic CloudEvents id: ``{requestId}:{sequence}``."""
        return f"{self.request_id}:{self.sequence}"


class AcquisitionStatus(StrEnum):
    PROPOSED = "PROPOSED"
    VALIDATED = "VALIDATED"
    ACCEPTED = "ACCEPTED"
    REFUSED = "REFUSED"
    REJECTED = "REJECTED"
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"


class DecidedBy(StrEnum):
    PROVIDER = "provider"
    POLICY = "policy"
    COMMAND = "command"


class AcquisitionEvent(ContractModel):
    """An acquisition seen for the first time, or a change of its status (CONTRACT §4.3).

    ``n`` is not part of the payload: it numbers the events of one acquisition for the ``ce_id``.
    """

    request_id: str
    provider: Provider
    acquisition_id: str
    status: AcquisitionStatus
    decided_by: DecidedBy | None = None
    acquired_at: UtcDatetime | None = None
    cloud_cover: Annotated[float, Field(ge=0, le=100)] | None = None
    incidence_angle: float | None = None
    footprint: dict[str, Any] | None = None
    provider_refs: dict[str, str] = Field(default_factory=dict)
    occurred_at: UtcDatetime

    def ce_id(self, n: int) -> str:
        """Deterministic CloudEvents id: ``{requestId}:{acquisitionId}:{n}``."""
        return f"{self.request_id}:{self.acquisition_id}:{n}"


class DeadLetterError(ContractModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class MessageSource(ContractModel):
    topic: str
    partition: int
    offset: int
    key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class DeadLetter(ContractModel):
    """A message that could not be processed, with the reason and the original bytes."""

    error: DeadLetterError
    source: MessageSource
    payload: str | None
    # Optional in the contract (§4.5): a dead letter written without it has a text payload. The
    # worker always writes it; readers must accept its absence.
    payload_encoding: Literal["utf-8", "base64"] = Field(
        "utf-8",
        description='"base64" when payload is base64; absent or "utf-8" when payload is text.',
        json_schema_extra={OPTIONAL_OUTPUT_FIELD: True},
    )
    received_at: UtcDatetime
