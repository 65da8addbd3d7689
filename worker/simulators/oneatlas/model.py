"""Constants, error answers and the records (contracts, orders, acquisitions) of the OneAtlas simulator."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

AUTH_PATH = "/auth/realms/IDP/protocol/openid-connect/token"
DAY = 86_400.0

LEGACY_PROG_TYPES = ("ONEPLAN", "ONEDAY", "ONENOW", "ONESERIES")
NEO_PROG_TYPES = ("ONEPLAN", "ONEDAY", "ONENOWATTEMPTS", "ONENOWWEATHER")
ATTEMPT_PROG_TYPES = {"legacy": ("ONEDAY", "ONENOW"), "neo": ("ONEDAY", "ONENOWATTEMPTS")}
ATTEMPT_TYPES = frozenset({"ONEDAY", "ONENOW", "ONENOWATTEMPTS"})
CAMEL = {
    "ONEPLAN": "OnePlan",
    "ONEDAY": "OneDay",
    "ONENOW": "OneNow",
    "ONESERIES": "OneSeries",
    "ONENOWATTEMPTS": "OneNowAttempts",
    "ONENOWWEATHER": "OneNowWeather",
}
PREFIX = {"PLEIADES": "PleiadesTasking", "SPOT": "SpotTasking", "PLEIADESNEO": "PleiadesNeo"}
SATELLITE = {"PLEIADES": "PHR", "SPOT": "SPOT", "PLEIADESNEO": "PNEO"}
RATE_PER_KM2 = {"PLEIADES": 56.0, "SPOT": 6.9, "PLEIADESNEO": 23.0}
MIN_KM2 = {"PLEIADES": 100.0, "SPOT": 500.0, "PLEIADESNEO": 100.0}
ATTEMPT_AOI_KM2 = {"PLEIADESNEO": (24.5, 400.0), "PLEIADES": (25.0, 800.0), "SPOT": (100.0, 7200.0)}
SPECTRAL = {
    "legacy": {
        "pansharpened_natural_color",
        "panchromatic",
        "pansharpened",
        "multispectral",
        "pansharpened_false_color",
        "bundle",
    },
    "neo": {"panchromatic", "pansharpened", "multispectral", "bundle", "full_bundle", "full_pms", "full_ms"},
}

ICR_STUDY = "Feasibility study in progress"
ICR_ACTIVE = "In Progress"
ICR_PAUSED = "Paused"
ICR_CANCELED = "Canceled"
ICR_COMPLETED = "Completed"
ICR_OPEN = (ICR_STUDY, ICR_ACTIVE, ICR_PAUSED)


class SimError(Exception):
    """An HTTP error answer (status and body) raised inside a handler."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def api_error(status: int, message: str, internal_code: str = "SIM") -> SimError:
    """The foundation ApiError family."""
    return SimError(
        status,
        {
            "correlationId": f"sim-{abs(hash(message)) % 10**8:08d}",
            "hint": message,
            "internalCode": internal_code,
            "message": message,
            "timestamp": 0,
        },
    )


def code_error(status: int, code: str, message: str) -> SimError:
    """The order.api ``{errorCode, message}`` family (``E2203``...)."""
    return SimError(status, {"errorCode": code, "message": message})


def errors_error(status: int, code: str, locator: str, message: str | None = None) -> SimError:
    """The ``{errors: [{code, locator, message}]}`` family (feasibility, attempts)."""
    error: dict[str, Any] = {"code": code, "locator": locator}
    if message is not None:
        error["message"] = message
    return SimError(status, {"errors": [error]})


@dataclass(frozen=True)
class SimContract:
    """One contract: ``legacy`` (SPOT/PHR) or ``neo`` (PNEO), with its delivery workspace."""

    contract_id: str
    backend: str
    workspace: str
    currency: str = "EUR"
    name: str = ""
    # The delivery workspace's name; ``/api/v1/contracts`` lists the name instead of the id when
    # ``workspace_listed_by_name`` (both forms are seen at the real API).
    workspace_name: str = ""
    workspace_listed_by_name: bool = False


DEFAULT_CONTRACTS = (
    SimContract("CTR21000001", "legacy", "7b1a0c1e-0000-4000-8000-00000000a001", name="Legacy"),
    SimContract("CTR21000002", "neo", "7b1a0c1e-0000-4000-8000-00000000b002", name="Neo"),
)


@dataclass
class SimAcquisition:
    """A legacy segment or a PNEO coverage item."""

    id: str
    status: str
    clear_sky: float
    incidence: float
    acquired_at: datetime
    footprint: dict[str, Any]
    catalog_id: str
    validated_at: datetime | None = None  # when it became VALIDATED (deliveries follow)


@dataclass
class SimOrder:
    """One order: a legacy ICR or a PNEO order line, with its acquisitions."""

    seq: int
    backend: str
    contract_id: str
    customer_ref: str
    mission: str
    prog_type: str
    product_type: str
    aoi: dict[str, Any]
    area_km2: float
    start: datetime
    end: datetime
    max_cloud: float
    threshold: float
    max_incidence: float
    mode: str
    automation: str
    created: datetime
    amount: float
    currency: str
    rng: random.Random
    attempt: dict[str, Any] | None = None
    status: str = ""
    sales_order_id: str | None = None
    so: str | None = None
    tasking_id: str | None = None
    quotation_id: str | None = None
    quotation_status: str = ""
    order_item_id: str | None = None
    quote_at: datetime | None = None
    quotation_valid_until: datetime | None = None
    study_until: datetime | None = None
    next_acq_at: datetime | None = None
    validated_fraction: float = 0.0
    last_change: datetime | None = None
    acquisitions: list[SimAcquisition] = field(default_factory=list)
    listed_from: float = 0.0  # monotonic seconds: out of the listings before (``listing_lag``)

    def listed(self) -> bool:
        """Whether the listings show this order yet (a lagging search index hides new ones)."""
        return time.monotonic() >= self.listed_from

    def ids(self) -> set[str]:
        """Every id an operator may use to name this order."""
        ids = {self.sales_order_id, self.tasking_id, self.quotation_id, self.order_item_id, self.customer_ref}
        return {i for i in ids if i}
