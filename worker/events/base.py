"""The ground of the contract models (re-exported by :mod:`worker.events.models`): the base
model with its camelCase aliases, UTC times, request ids, the provider, mission and product
vocabularies (the products are in requests and in offers), and the models' only clock."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    PlainSerializer,
    StringConstraints,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

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


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the only clock the models know)."""
    return datetime.now(UTC)
