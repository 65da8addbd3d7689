"""Constants and small value helpers shared by the OneAtlas adapter modules."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from worker.events.models import (
    AcquisitionStatus,
    Automation,
    Classification,
    Mission,
    ProgrammingType,
    Provider,
)

log = structlog.get_logger("worker.providers.oneatlas")

PROVIDER: Final = Provider.ONEATLAS.value
TOKEN_MARGIN_SECONDS: Final = 60.0
DEFAULT_MAX_CLOUD_COVER: Final = 20.0
DEFAULT_MAX_INCIDENCE_ANGLE: Final = 30.0
DEFAULT_BH: Final = (0.2, 0.8)
AOI_ID: Final = 1

LEGACY_MISSIONS: Final = frozenset({Mission.SPOT, Mission.PLEIADES})
ATTEMPT_TYPES: Final = frozenset(
    {ProgrammingType.ONEDAY, ProgrammingType.ONENOW, ProgrammingType.ONENOWATTEMPTS}
)
PRODUCT_PREFIX: Final = {
    Mission.PLEIADES: "PleiadesTasking",
    Mission.SPOT: "SpotTasking",
    Mission.PLEIADESNEO: "PleiadesNeo",
}
PROG_SUFFIX: Final = {
    ProgrammingType.ONEPLAN: "OnePlan",
    ProgrammingType.ONEDAY: "OneDay",
    ProgrammingType.ONENOW: "OneNow",
    ProgrammingType.ONESERIES: "OneSeries",
    ProgrammingType.ONENOWATTEMPTS: "OneNowAttempts",
    ProgrammingType.ONENOWWEATHER: "OneNowWeather",
}
SPECTRAL: Final = {
    "legacy": frozenset(
        {
            "pansharpened_natural_color",
            "panchromatic",
            "pansharpened",
            "multispectral",
            "pansharpened_false_color",
            "bundle",
        }
    ),
    "neo": frozenset(
        {"panchromatic", "pansharpened", "multispectral", "bundle", "full_bundle", "full_pms", "full_ms"}
    ),
}
# §6 AOI limits for automatic OneDay/OneNow tasking: (min km², max km²); OnePlan: min 5 km².
ATTEMPT_AOI_KM2: Final = {
    Mission.PLEIADESNEO: (24.5, 400.0),
    Mission.PLEIADES: (25.0, 800.0),
    Mission.SPOT: (100.0, 7200.0),
}
ONEPLAN_MIN_AOI_KM2: Final = 5.0
# Item properties a caller may set through ``providerOptions`` (everything else is an option key).
ITEM_PROPERTY_KEYS: Final = frozenset(
    {
        "acquisitionMode",
        "maxCloudCover",
        "notificationThreshold",
        "maxIncidenceAngle",
        "acqPeriod",
        "feasibilityAutomation",
        "feasibilityAutomationName",
        "classification",
        "acquisitionModeMinBH",
        "acquisitionModeMaxBH",
        "extendedAngle",
    }
)
# Operations that change something at the provider: a 5xx there means "outcome unknown".
WRITE_OPERATIONS: Final = frozenset(
    {
        "place_order",
        "decide_quotation",
        "decide_acquisition",
        "cancel",
    }
)
# Error codes (``errors[].code``) that say "no capacity": the request is valid but cannot be tasked.
CAPACITY_CODES: Final = frozenset({"ERR_NO_SENSOR_AVAILABLE", "ERR_OTHER", "ERR_NO_CAPACITY"})

ICR_FEASIBILITY = "feasibility study in progress"
ICR_ACTIVE = frozenset({"in progress", "paused"})
ICR_CANCELLED = frozenset({"canceled", "cancelled"})
ICR_COMPLETED = "completed"

SEGMENT_STATUS: Final = {
    "proposed": AcquisitionStatus.PROPOSED,
    "validated": AcquisitionStatus.VALIDATED,
    "accepted": AcquisitionStatus.ACCEPTED,
    "refused": AcquisitionStatus.REFUSED,
    "rejected": AcquisitionStatus.REJECTED,
    "pending": AcquisitionStatus.PENDING,
    "delivered": AcquisitionStatus.DELIVERED,
}

Sleep = Callable[[float], Awaitable[None]]


def iso_millis(value: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``, the only date format OneAtlas accepts."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """A provider timestamp as an aware datetime; ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def as_float(value: Any) -> float | None:
    """A finite number from a provider field, else ``None`` (``"inf"``, ``NaN`` and numbers too
    large for a float are not numbers any field can mean; the contract models refuse them)."""
    if isinstance(value, bool):
        return None
    number: float | None = None
    try:
        if isinstance(value, int | float | str):
            number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


def as_int(value: Any) -> int:
    number = as_float(value)
    return int(number) if number is not None else 0


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """A list from a list, or a one-element list from an object (``progCapacities`` quirk)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    return []


def product_type_id(mission: Mission, programming_type: ProgrammingType) -> str:
    """The ``productTypeId`` for a mission and programming type (``PleiadesTaskingOneDay``...)."""
    return PRODUCT_PREFIX[mission] + PROG_SUFFIX[programming_type]


def backend_of(mission: Mission) -> str:
    """``legacy`` (SPOT, Pléiades) or ``neo`` (Pléiades Neo)."""
    return "legacy" if mission in LEGACY_MISSIONS else "neo"


def parse_automation(value: Any) -> Automation:
    """``AUTOMATIC``/``MANUAL``; the spec's ``MAUAL`` typo and anything unknown count as MANUAL.

    Unknown values map to MANUAL on purpose: a manual study only delays the order, while treating
    a manual request as automatic would place an order the provider will not run as expected.
    """
    text = str(value or "").strip().upper()
    if text == "AUTOMATIC":
        return Automation.AUTOMATIC
    if text not in ("MANUAL", "MAUAL"):
        log.warning("oneatlas_unknown_automation", value=text)
    return Automation.MANUAL


def parse_classification(value: Any) -> Classification | None:
    text = str(value or "").strip().upper()
    return Classification(text) if text in Classification.__members__ else None


def lucene_escape(value: str) -> str:
    """Escape a value for ``criteria.q`` (Lucene-like syntax)."""
    return re.sub(r'([+\-!(){}\[\]^"~*?:\\/&| ])', r"\\\1", value)


def str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def refs_of(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}
