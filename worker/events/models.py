"""Pydantic models of the public contract (CONTRACT §3-4).

Inputs (:class:`OrderRequest`, :class:`Command`) reject unknown fields and enforce every rule of
the contract; outputs (:class:`OrderStatusEvent`, :class:`AcquisitionEvent`, :class:`DeadLetter`)
are what the worker publishes. All JSON field names are camelCase; Python attributes are snake_case and the
models are populated and dumped by alias.

This package does no I/O.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.events.base import (
    OPTIONAL_OUTPUT_FIELD,
    REQUEST_ID_PATTERN,
    ContractModel,
    Mission,
    OneAtlasProduct,
    Product,
    ProgrammingType,
    Provider,
    RequestId,
    Up42Product,
    UtcDatetime,
    utc_now,
)
from worker.events.geometry import validate_polygon_rings
from worker.events.outputs import (
    AcquisitionCounts,
    AcquisitionEvent,
    AcquisitionStatus,
    AttemptInfo,
    Automation,
    Classification,
    DeadLetter,
    DeadLetterError,
    DecidedBy,
    Decision,
    DecisionKind,
    DecisionOption,
    Feasibility,
    MessageSource,
    Money,
    Offer,
    OfferStatus,
    OrderStatusEvent,
    Price,
    Progress,
    Reason,
)

__all__ = [
    "BUDGET_DECIMALS",
    "BUDGET_MAX",
    "OPTIONAL_OUTPUT_FIELD",
    "OPTION_INT_MAX",
    "REQUEST_ID_PATTERN",
    "STORED",
    "AcquisitionCounts",
    "AcquisitionEvent",
    "AcquisitionMode",
    "AcquisitionPolicy",
    "AcquisitionStatus",
    "AttemptInfo",
    "AutoAccept",
    "Automation",
    "Budget",
    "Candidate",
    "CandidateList",
    "Classification",
    "Command",
    "CommandName",
    "Constraints",
    "ContractModel",
    "DeadLetter",
    "DeadLetterError",
    "DecidedBy",
    "Decision",
    "DecisionKind",
    "DecisionOption",
    "Feasibility",
    "MessageSource",
    "Mission",
    "Money",
    "Offer",
    "OfferStatus",
    "OneAtlasProduct",
    "OrderRequest",
    "OrderStatusEvent",
    "Polygon",
    "Position",
    "Price",
    "Processing",
    "Product",
    "ProgrammingType",
    "Progress",
    "Provider",
    "Reason",
    "RequestId",
    "Routing",
    "RoutingPrefer",
    "Up42Product",
    "UtcDatetime",
    "Window",
    "finite_values",
    "utc_now",
]


# --------------------------------------------------------------------------- inputs


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
