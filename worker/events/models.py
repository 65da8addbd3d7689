"""Pydantic models of the public contract (CONTRACT §3-4).

Inputs (:class:`OrderRequest`, :class:`Command`) reject unknown fields and enforce every rule of
the contract; outputs (:class:`OrderStatusEvent`, :class:`AcquisitionEvent`, :class:`DeadLetter`)
are what the worker publishes. All JSON field names are camelCase; Python attributes are snake_case and the
models are populated and dumped by alias.

This package does no I/O.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StringConstraints,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from worker.events.geometry import validate_polygon_rings
from worker.events.status import OrderStatus, StapiStatus

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


def _utc_text(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z`` (what both providers expect too)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[
    AwareDatetime,
    PlainSerializer(_utc_text, return_type=str),
    # Keep the ``date-time`` format in the serialization JSON Schema of the outputs.
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]

#: Schema key marking an output field the contract makes optional. Output schemas list every
#: other field as required (the worker always writes it); ``worker.events.schemas`` leaves a
#: marked field out of ``required`` and drops the key, so it never reaches a published schema.
OPTIONAL_OUTPUT_FIELD: Final = "x-tasking-optional"


class ContractModel(BaseModel):
    """Base of every contract model: camelCase aliases, no unknown fields, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        ser_json_inf_nan="null",
        # ``1e999`` parses as infinity and a number of hundreds of digits overflows to it: neither
        # is a number any field of the contract can mean, so every float field refuses them.
        allow_inf_nan=False,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form (camelCase keys, RFC 3339 times) as plain Python values."""
        return self.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------- inputs


class Provider(StrEnum):
    ONEATLAS = "oneatlas"
    UP42 = "up42"
    AUTO = "auto"  # the worker chooses among the request's candidates (CONTRACT §3.3)


class Mission(StrEnum):
    PLEIADES = "PLEIADES"
    SPOT = "SPOT"
    PLEIADESNEO = "PLEIADESNEO"


class ProgrammingType(StrEnum):
    ONEPLAN = "ONEPLAN"
    ONEDAY = "ONEDAY"
    ONENOW = "ONENOW"
    ONESERIES = "ONESERIES"
    ONENOWATTEMPTS = "ONENOWATTEMPTS"
    ONENOWWEATHER = "ONENOWWEATHER"


_PROG_TYPES_BY_MISSION: dict[Mission, frozenset[ProgrammingType]] = {
    Mission.PLEIADES: frozenset(
        {ProgrammingType.ONEPLAN, ProgrammingType.ONEDAY, ProgrammingType.ONENOW, ProgrammingType.ONESERIES}
    ),
    Mission.SPOT: frozenset(
        {ProgrammingType.ONEPLAN, ProgrammingType.ONEDAY, ProgrammingType.ONENOW, ProgrammingType.ONESERIES}
    ),
    Mission.PLEIADESNEO: frozenset(
        {
            ProgrammingType.ONEPLAN,
            ProgrammingType.ONEDAY,
            ProgrammingType.ONENOWATTEMPTS,
            ProgrammingType.ONENOWWEATHER,
        }
    ),
}


class OneAtlasProduct(ContractModel):
    """What to task at Airbus OneAtlas: a mission and a programming type valid for it."""

    mission: Mission
    programming_type: ProgrammingType

    @model_validator(mode="after")
    def _type_fits_mission(self) -> Self:
        if self.programming_type not in _PROG_TYPES_BY_MISSION[self.mission]:
            raise ValueError(f"programmingType {self.programming_type} is not offered for {self.mission}")
        return self


class Up42Product(ContractModel):
    """What to task at UP42: one data product id."""

    data_product_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{36}$")]


def _product_tag(value: Any) -> str:
    """Which product model a raw ``product`` value is: its fields decide, not ``provider``.

    Validating each product on its own (instead of re-dispatching in a model validator) keeps
    error locations exact (``product.up42.dataProductId``); the provider/product fit is then
    checked on the ``product`` field.
    """
    if isinstance(value, dict):
        return "up42" if "dataProductId" in value or "data_product_id" in value else "oneatlas"
    return "up42" if isinstance(value, Up42Product) else "oneatlas"


Product = Annotated[
    Annotated[OneAtlasProduct, Tag("oneatlas")] | Annotated[Up42Product, Tag("up42")],
    Discriminator(_product_tag),
]


Position = tuple[float, float]

STORED = "stored"
"""Validation context key: ``{STORED: True}`` marks a value the worker validated before storing
it (its own changelog). The schema is still checked; the AOI's geometric checks are skipped."""


class Polygon(ContractModel):
    """A GeoJSON Polygon in WGS84: one closed ring of 4..999 positions, simple, no holes."""

    type: Literal["Polygon"]
    coordinates: list[list[Position]]

    @field_validator("coordinates")
    @classmethod
    def _valid_rings(cls, rings: list[list[Position]], info: ValidationInfo) -> list[list[Position]]:
        # A value the worker stored itself was checked when it came in: the geometric checks
        # (shapely, half the cost of decoding a stored order) are not run again.
        if not (info.context and info.context.get(STORED)):
            validate_polygon_rings(rings)
        return rings

    def ring(self) -> list[Position]:
        """The exterior ring (the only one)."""
        return self.coordinates[0]


class Window(ContractModel):
    start: UtcDatetime
    end: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("window.end must be after window.start")
        return self


class AcquisitionMode(StrEnum):
    MONO = "MONO"
    STEREO = "STEREO"
    TRISTEREO = "TRISTEREO"


class Constraints(ContractModel):
    max_cloud_cover: Annotated[float, Field(ge=0, le=100)] | None = None
    max_incidence_angle: Annotated[float, Field(ge=0, le=90)] | None = None
    acquisition_mode: AcquisitionMode = AcquisitionMode.MONO
    min_bh: Annotated[float, Field(ge=0.2, le=0.8)] | None = Field(None, alias="minBH")
    max_bh: Annotated[float, Field(ge=0.2, le=0.8)] | None = Field(None, alias="maxBH")

    @model_validator(mode="after")
    def _bh_for_stereo_only(self) -> Self:
        has_bh = self.min_bh is not None or self.max_bh is not None
        if has_bh and self.acquisition_mode is AcquisitionMode.MONO:
            raise ValueError("minBH/maxBH apply to STEREO and TRISTEREO only")
        if self.min_bh is not None and self.max_bh is not None and self.min_bh > self.max_bh:
            raise ValueError("minBH must not exceed maxBH")
        return self


class Processing(ContractModel):
    """Provider-neutral production options; each adapter maps them to its own names."""

    processing_level: Literal["primary", "projected", "ortho"] | None = None
    spectral_processing: str | None = None
    radiometric_processing: Literal["basic", "reflectance", "display"] | None = None
    pixel_coding: Literal["8bits", "12bits"] | None = None
    image_format: str | None = None
    projection: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,5}(_[A-Z])?$")] | None = None
    dem: str | None = None
    priority: str | None = None
    licence: str | None = None


#: The largest budget a request may state, and its precision (decimal places): within these a
#: budget is an exact decimal that survives the JSON round trip and every comparison with a price.
BUDGET_MAX: Final = 1_000_000_000_000
BUDGET_DECIMALS: Final = 2
#: The largest integer a ``providerOptions`` value may be (a JSON number any client reads exactly).
OPTION_INT_MAX: Final = 2**53


def _budget_decimal(value: Any, info: ValidationInfo) -> Any:
    """A budget is a decimal of at most ``BUDGET_DECIMALS`` places and at most ``BUDGET_MAX``
    (``12.345`` is refused, not rounded: the producer meant something the worker cannot keep).
    A stored budget is not checked again: states written before these bounds must still load."""
    if info.context and info.context.get(STORED):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # the type check reports it
    if isinstance(value, float) and not math.isfinite(value):
        return value  # allow_inf_nan reports it
    if abs(value) > BUDGET_MAX:
        raise ValueError(f"must be at most {BUDGET_MAX}")
    exponent = Decimal(repr(value) if isinstance(value, float) else value).as_tuple().exponent
    if isinstance(exponent, int) and exponent < -BUDGET_DECIMALS:
        raise ValueError(f"must have at most {BUDGET_DECIMALS} decimal places")
    return value


def finite_values(value: Any, path: str = "") -> Any:
    """``value`` (free-form JSON) unchanged when every number in it is finite and an integer
    within ±``OPTION_INT_MAX``; raises ``ValueError`` naming the first offending path."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'}: not a finite number")
    if isinstance(value, int) and abs(value) > OPTION_INT_MAX:
        raise ValueError(f"{path or 'value'}: integer out of range (at most {OPTION_INT_MAX} in magnitude)")
    if isinstance(value, dict):
        for key, item in value.items():
            finite_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            finite_values(item, f"{path}[{n}]")
    return value


class Budget(ContractModel):
    """A ceiling for the price: a decimal above 0 and at most 1000000000000, with at most 2
    decimal places (a non-finite or overflowing number is refused)."""

    max_amount: Annotated[
        float,
        Field(
            gt=0,
            description="a decimal of at most 2 decimal places, at most 1000000000000",
            json_schema_extra={"maximum": BUDGET_MAX},
        ),
        BeforeValidator(_budget_decimal),
    ]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3,10}$")]


class AutoAccept(ContractModel):
    max_cloud_cover: Annotated[float, Field(ge=0, le=100)] | None = None
    max_incidence_angle: Annotated[float, Field(ge=0, le=90)] | None = None


class AcquisitionPolicy(ContractModel):
    auto_accept: AutoAccept | None = None
    auto_refuse: bool = False


# --------------------------------------------------------------------------- provider choice


class RoutingPrefer(StrEnum):
    """How offers are ranked (CONTRACT §3.3)."""

    CHEAPEST = "cheapest"
    EARLIEST = "earliest"
    LISTED = "listed"


class Routing(ContractModel):
    prefer: RoutingPrefer = RoutingPrefer.CHEAPEST
    fallback: bool = True


class Candidate(ContractModel):
    """One way to buy the image: a provider and a complete product of it."""

    provider: Provider
    product: Product
    provider_options: Annotated[dict[str, Any], AfterValidator(finite_values)] = Field(default_factory=dict)

    @field_validator("provider", mode="after")
    @classmethod
    def _concrete(cls, provider: Provider) -> Provider:
        if provider is Provider.AUTO:
            raise ValueError("a candidate names a provider, oneatlas or up42")
        return provider

    @field_validator("product", mode="after")
    @classmethod
    def _product_fits_provider(cls, product: Product, info: ValidationInfo) -> Product:
        expected = _PRODUCT_BY_PROVIDER.get(info.data.get("provider"))  # type: ignore[arg-type]
        if expected is not None and not isinstance(product, expected):
            raise ValueError(f"product does not fit provider {info.data['provider']}")
        return product


CandidateList = Annotated[list[Candidate], Field(min_length=2, max_length=6)]


class OrderRequest(ContractModel):
    """A request to task a satellite (CONTRACT §3.1); ``requestId`` is the idempotency key."""

    request_id: RequestId
    provider: Provider
    product: Product | None = Field(default=None, validate_default=True)
    aoi: Polygon
    window: Window
    constraints: Constraints = Constraints()
    processing: Processing = Processing()
    provider_options: Annotated[dict[str, Any], AfterValidator(finite_values)] = Field(default_factory=dict)
    budget: Budget | None = None
    auto_approve: bool = True
    dry_run: bool = False
    customer_reference: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    acquisition_policy: AcquisitionPolicy | None = None
    display_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    comments: Annotated[str, StringConstraints(max_length=2000)] | None = None
    # Provider choice (CONTRACT §3.3): only with ``provider: "auto"``.
    candidates: CandidateList | None = Field(default=None, validate_default=True)
    routing: Routing | None = None

    @field_validator("product", mode="after")
    @classmethod
    def _product_fits_provider(cls, product: Product | None, info: ValidationInfo) -> Product | None:
        # ``provider`` is declared before ``product``, so it is already validated (when valid).
        provider = info.data.get("provider")
        if provider is Provider.AUTO:
            if product is not None:
                raise ValueError("with provider auto the product is given by each candidate")
            return None
        if product is None:
            if provider is None:
                return None  # the provider's own error is reported
            raise ValueError("product is required unless provider is auto")
        expected = _PRODUCT_BY_PROVIDER.get(provider)  # type: ignore[arg-type]
        if expected is not None and not isinstance(product, expected):
            raise ValueError(f"product does not fit provider {provider}")
        return product

    @field_validator("provider_options", mode="after")
    @classmethod
    def _options_per_candidate(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if options and info.data.get("provider") is Provider.AUTO:
            raise ValueError("with provider auto, providerOptions are given by each candidate")
        return options

    @field_validator("candidates", mode="after")
    @classmethod
    def _candidates_with_auto(
        cls, candidates: list[Candidate] | None, info: ValidationInfo
    ) -> list[Candidate] | None:
        provider = info.data.get("provider")
        if provider is Provider.AUTO and candidates is None:
            raise ValueError("candidates are required with provider auto")
        if provider is not Provider.AUTO and candidates is not None:
            raise ValueError("candidates are only allowed with provider auto")
        for later, candidate in enumerate(candidates or []):
            for earlier in range(later):
                if (candidates or [])[earlier] == candidate:
                    raise ValueError(f"candidates[{later}] repeats candidates[{earlier}]")
        return candidates

    @field_validator("routing", mode="after")
    @classmethod
    def _routing_with_auto(cls, routing: Routing | None, info: ValidationInfo) -> Routing | None:
        if routing is not None and info.data.get("provider") is not Provider.AUTO:
            raise ValueError("routing is only allowed with provider auto")
        return routing

    @property
    def reference(self) -> str:
        """The provider correlation field: ``customerReference``, else ``requestId``."""
        return self.customer_reference or self.request_id

    def oneatlas_product(self) -> OneAtlasProduct:
        """The product as OneAtlas; ``TypeError`` for a UP42 request (a programming error)."""
        if not isinstance(self.product, OneAtlasProduct):
            raise TypeError("not a OneAtlas request")
        return self.product

    def up42_product(self) -> Up42Product:
        """The product as UP42; ``TypeError`` for a OneAtlas request (a programming error)."""
        if not isinstance(self.product, Up42Product):
            raise TypeError("not a UP42 request")
        return self.product


_PRODUCT_BY_PROVIDER: dict[Provider, type[ContractModel]] = {
    Provider.ONEATLAS: OneAtlasProduct,
    Provider.UP42: Up42Product,
}


class CommandName(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    SELECT_FEASIBILITY_OPTION = "select-feasibility-option"
    SELECT_OFFER = "select-offer"
    ACCEPT_ACQUISITION = "accept-acquisition"
    REFUSE_ACQUISITION = "refuse-acquisition"


class Command(ContractModel):
    """A customer decision about one request (CONTRACT §3.2); ``commandId`` makes it idempotent."""

    request_id: RequestId
    command_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    command: CommandName
    option_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    acquisition_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
    issued_by: Annotated[str, StringConstraints(max_length=256)] | None = None

    @model_validator(mode="after")
    def _required_arguments(self) -> Self:
        option_commands = (CommandName.SELECT_FEASIBILITY_OPTION, CommandName.SELECT_OFFER)
        if self.command in option_commands and not self.option_id:
            raise ValueError(f"optionId is required for {self.command}")
        acq_commands = (CommandName.ACCEPT_ACQUISITION, CommandName.REFUSE_ACQUISITION)
        if self.command in acq_commands and not self.acquisition_id:
            raise ValueError(f"acquisitionId is required for {self.command}")
        return self


# --------------------------------------------------------------------------- outputs


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


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the only clock the models know)."""
    return datetime.now(UTC)
