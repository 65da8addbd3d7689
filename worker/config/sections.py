"""The settings sections that are not Kafka's: the providers, the HTTP client, tracking,
routing, approval, intake, the HTTP server, health and STAC (re-exported by :mod:`worker.config`).
"""

from __future__ import annotations

import ipaddress
import json
import math
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndUser(_Section):
    """An end user declared on OneAtlas orders (name and ISO 3166 alpha-2 country)."""

    endUserName: str = Field(min_length=1)  # noqa: N815 - the provider's own field name
    country: str = Field(pattern=r"^[A-Z]{2}$")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _https_unless_loopback(url: HttpUrl | None) -> HttpUrl | None:
    """Provider credentials travel only over https: plain http only to a loopback host."""
    if url is not None and url.scheme == "http" and not is_loopback(url.host or ""):
        raise PydanticCustomError("https", "must use https (plain http only for a loopback host)")
    return url


class OneAtlasSettings(_Section):
    """Airbus OneAtlas: credentials, hosts and the order fields set per deployment."""

    api_key: SecretStr | None = None
    contract_id: str | None = None
    # PNEO is ordered on a ``neo`` contract, SPOT/Pléiades on a ``legacy`` one; falls back to contract_id.
    neo_contract_id: str | None = None
    workspace_id: str | None = None
    auth_url: HttpUrl = HttpUrl(
        "https://authenticate.foundation.api.oneatlas.airbus.com"
        "/auth/realms/IDP/protocol/openid-connect/token"
    )
    base_url: HttpUrl = HttpUrl("https://order.api.oneatlas.airbus.com")
    # Delivered products: opensearch over the delivery workspace, and the account record
    # (``/api/v1/me``) that names the legacy contract's workspace.
    search_url: HttpUrl = HttpUrl("https://search.foundation.api.oneatlas.airbus.com")
    data_url: HttpUrl = HttpUrl("https://data.api.oneatlas.airbus.com")
    primary_market: str = Field("NQUAL", min_length=1)
    # Declared to Airbus on every order: no default, the start is refused without them when the
    # API key is set (nothing is declared that the operator did not say).
    end_users: list[EndUser] = Field(default_factory=list)
    notification_emails: list[str] = Field(default_factory=list)
    delivery_type: str = "network"
    rate_limit_per_second: float = Field(10.0, gt=0)
    max_concurrency: int = Field(32, ge=1)

    _https = field_validator("auth_url", "base_url", "search_url", "data_url")(_https_unless_loopback)

    @property
    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())


class Up42Settings(_Section):
    """UP42: password-grant credentials, hosts and workspace.

    ``delivery_overlap_seconds``: how far behind its high-water mark each storage asset listing
    of the delivery harvest starts again (the listing is eventually consistent: an asset may be
    listed after a newer one); assets seen in that window are deduplicated by id.
    """

    username: str | None = None
    password: SecretStr | None = None
    workspace_id: str | None = None
    auth_url: HttpUrl = HttpUrl("https://auth.up42.com/realms/public/protocol/openid-connect/token")
    userinfo_url: HttpUrl | None = None
    client_id: str = "up42-api"
    base_url: HttpUrl = HttpUrl("https://api.up42.com")
    rate_limit_per_second: float = Field(10.0, gt=0)
    max_concurrency: int = Field(32, ge=1)
    delivery_overlap_seconds: float = Field(3600.0, ge=0)

    _https = field_validator("auth_url", "userinfo_url", "base_url")(_https_unless_loopback)

    @property
    def configured(self) -> bool:
        return bool(self.username) and self.password is not None

    def resolved_userinfo_url(self) -> str:
        """The user-info endpoint: configured, or derived from the token URL (same Keycloak realm)."""
        if self.userinfo_url is not None:
            return str(self.userinfo_url)
        token = str(self.auth_url)
        return token[: -len("token")] + "userinfo" if token.endswith("/token") else token


class HttpClientSettings(_Section):
    """Outbound HTTP behaviour shared by both provider adapters."""

    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_seconds: float = Field(0.5, ge=0)
    backoff_max_seconds: float = Field(60.0, ge=0)
    # An order POST whose answer was lost is looked up again only after this long, so that a
    # request still in flight at the provider has landed (must exceed timeout_seconds).
    settle_seconds: float = Field(45.0, gt=0)
    # After a paid write was refused following a send with an unknown outcome, how long the
    # provider's records are read (with backoff, for a listing that lags) before the request goes
    # to DECISION_REQUIRED OUTCOME_UNKNOWN (reads go on after that, at the longest backoff).
    outcome_timeout_seconds: float = Field(1800.0, gt=0, le=30 * 86400)
    # The longest a provider's Retry-After is honoured (seconds or an HTTP date); a larger or
    # unreadable value waits this long at most, so a call is never parked for ever.
    retry_after_max_seconds: float = Field(300.0, gt=0, le=86400)


def _not_longer(window: float, limit: float, code: str, message: str) -> None:
    """Raises: PydanticCustomError(``code``, ``message``): ``window`` exceeds ``limit``."""
    if window > limit:
        raise PydanticCustomError(code, message)


class TrackingSettings(_Section):
    """Tracking polls and the delivery harvest.

    ``delivery_interval_seconds`` is the period of the per-provider delivery harvest (default: the
    poll interval). ``delivery_grace_seconds``: an optional extra wait after the provider finished
    before ``COMPLETED`` (default 0: completion follows the evidence, the last product and, for
    UP42, every storage asset extracted); it may not exceed ``delivery_timeout_seconds``: after the
    provider finished, how long to wait for the products of every validated acquisition before
    ``COMPLETED`` with ``DELIVERY_INCOMPLETE``. ``harvest_after_completion_seconds``: how long a
    ``COMPLETED`` order is still harvested, so products the provider adds later are published.
    ``finished_retention_seconds``: how long a finished order (``COMPLETED``, ``CANCELLED``,
    ``REJECTED``, ...) keeps its full state after its terminal status, for late deliveries and
    commands; after it the state is replaced by a compact finished record (its last event, for
    answering a re-sent request), in memory and in the changelog. Default 7 days; it may not be
    shorter than ``harvest_after_completion_seconds``.
    """

    poll_interval_seconds: float = Field(300.0, gt=0)
    # Consecutive failures to follow one order before it is published with TRACKING_ERROR.
    error_threshold: int = Field(5, ge=1)
    page_size: int = Field(100, ge=1, le=1000)
    delivery_interval_seconds: float | None = Field(None, gt=0)
    delivery_grace_seconds: float = Field(0.0, ge=0)
    delivery_timeout_seconds: float = Field(1209600.0, gt=0)
    harvest_after_completion_seconds: float = Field(604800.0, ge=0)
    finished_retention_seconds: float = Field(604800.0, ge=0)

    @model_validator(mode="after")
    def _windows_in_order(self) -> TrackingSettings:
        # A grace past the timeout: a complete order would wait longer than an incomplete one.
        # A harvest past the retention: a retired order has no state left to harvest into, so
        # products the provider adds after its retirement would never be published.
        _not_longer(
            self.delivery_grace_seconds,
            self.delivery_timeout_seconds,
            "grace",
            "TASKING_TRACKING__DELIVERY_GRACE_SECONDS must not exceed "
            "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS (a complete order would wait longer "
            "than an incomplete one)",
        )
        _not_longer(
            self.harvest_after_completion_seconds,
            self.finished_retention_seconds,
            "retention",
            "TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS must not exceed "
            "TASKING_TRACKING__FINISHED_RETENTION_SECONDS (a COMPLETED order is harvested "
            "until it is retired, not after)",
        )
        return self

    @property
    def retire_interval(self) -> float:
        """How often finished orders past their retention are looked for (at most hourly)."""
        return min(3600.0, max(1.0, self.finished_retention_seconds / 4))

    @property
    def delivery_interval(self) -> float:
        return self.delivery_interval_seconds or self.poll_interval_seconds


class RoutingSettings(_Section):
    """Provider choice (``provider: "auto"``): how offers in other currencies are compared.

    ``rates`` maps a currency to the value of one of its units in the budget currency (one base
    currency for every budget; a budget in another listed currency is converted through it), read
    from ``TASKING_ROUTING__RATES`` as a JSON object, e.g. ``{"CREDITS": 0.01, "USD": 0.92}``.
    """

    rates: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    @field_validator("rates", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        return _currency_map(value, "rates", "rate", "must be a positive number")

    @field_validator("rates", mode="after")
    @classmethod
    def _positive(cls, rates: dict[str, float]) -> dict[str, float]:
        return _checked_amounts(rates, "rate", "must be a positive number", minimum_allowed=False)


class ApprovalSettings(_Section):
    """What the worker may approve by itself for a request without a ``budget`` (ADR 0007).

    ``unbudgeted_ceiling`` maps a currency to the highest price of a request with ``autoApprove``
    and no ``budget`` that is approved without a human, read from
    ``TASKING_APPROVAL__UNBUDGETED_CEILING`` as a JSON object, e.g. ``{"EUR": 5000, "CREDITS":
    400000}``. Empty (the default), or a price in a currency it does not list: the order waits for
    an ``approve`` command (``DECISION_REQUIRED`` with ``NO_BUDGET``), so nothing is bought at a
    price nobody agreed to.
    """

    unbudgeted_ceiling: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    @field_validator("unbudgeted_ceiling", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        return _currency_map(value, "ceiling", "amount", "must be a number >= 0")

    @field_validator("unbudgeted_ceiling", mode="after")
    @classmethod
    def _finite(cls, ceiling: dict[str, float]) -> dict[str, float]:
        return _checked_amounts(ceiling, "amount", "must be a number >= 0", minimum_allowed=True)


class IntakeSettings(_Section):
    """Failures while processing an input record (an exception, not a bad message) and while
    persisting a step's result.

    A record whose processing raises is tried ``record_attempts`` times in all, waiting
    ``record_backoff_seconds`` doubled after each failure; then it is dead-lettered with
    ``INTERNAL_ERROR`` and its partition goes on. A provider call's result whose state write
    keeps failing is retried for as long as the partition is owned, waiting at most
    ``state_retry_max_seconds`` between tries (the result is never dropped). ``max_state_bytes``
    bounds one order's state record (see ``worker.kafka.statestore``).
    """

    record_attempts: int = Field(3, ge=1, le=20)
    record_backoff_seconds: float = Field(0.5, ge=0, le=60)
    state_retry_max_seconds: float = Field(30.0, gt=0, le=600)
    # One order's state record at most (under the brokers' default 1 MiB message.max.bytes); a
    # new request's first state may take 3/4 of it, the rest is room to grow.
    max_state_bytes: int = Field(1_000_000, ge=10_000, le=16_000_000)


class HttpServerSettings(_Section):
    port: int = Field(8080, ge=0, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - a container serves probes on all interfaces


class HealthSettings(_Section):
    """Probe thresholds: not ready after ``broker_timeout_seconds`` without an answer from Kafka,
    not live after ``stall_timeout_seconds`` (long on purpose: restarting pods does not mend a
    cluster outage, but a wedged client is restarted)."""

    broker_timeout_seconds: float = Field(15.0, gt=0)
    stall_timeout_seconds: float = Field(300.0, gt=0)
    broker_check_interval_seconds: float = Field(2.0, gt=0)


class StacSettings(_Section):
    """Where the project's STAC documents are served, if anywhere: with ``base_url`` set,
    delivered items link ``self``, ``collection``, ``parent`` and ``root`` under it
    (``{base}/collections/{id}/items/{item}``) and the collection documents link ``self``/``root``."""

    base_url: HttpUrl | None = None


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


def _currency_map(value: object, kind: str, noun: str, rule: str) -> object:
    """A ``currency -> number`` map from its variable's JSON text (empty text: ``{}``) or as given.

    Raises:
        ValueError / PydanticCustomError: not a JSON object, or a value that is not a number
            (``kind`` is the error type, ``noun`` and ``rule`` its words: "the rate of 'USD' must
            be a positive number").
    """
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"must be a JSON object of currency -> {noun}") from None
    if not isinstance(value, dict):
        raise PydanticCustomError(kind, f"must be a JSON object of currency -> {noun}")
    for currency, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise PydanticCustomError(
                kind, f"the {noun} of {{currency}} {rule}", {"currency": repr(currency)}
            )
    return value


def _checked_amounts(
    amounts: dict[str, float], noun: str, rule: str, *, minimum_allowed: bool
) -> dict[str, float]:
    """``amounts`` when every currency is named and every number finite and above 0 (or at least
    0 with ``minimum_allowed``); otherwise ValueError naming the currency."""
    for currency, number in amounts.items():
        low = number < 0 if minimum_allowed else number <= 0
        if not currency or not math.isfinite(number) or low:
            raise ValueError(f"the {noun} of {currency!r} {rule}")
    return amounts
