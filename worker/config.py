"""Settings: the only place that reads the environment.

Every variable of the public contract (CONTRACT §5) is here with its default, read once at start
through pydantic-settings (prefix ``TASKING_``, nesting with ``__``). :func:`load_settings` turns any
validation failure into a :class:`ConfigError` whose message is one line naming the variable, so the
process can stop with a clear message instead of a traceback.

Secrets are :class:`pydantic.SecretStr`: their ``repr`` and ``str`` are masked, and the logging
redaction processor (``worker.observability.logging``) learns their values from
:meth:`Settings.secret_values`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.errors import ConfigError

ENV_PREFIX = "TASKING_"
NESTED_DELIMITER = "__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSettings(_Section):
    """Connection to the Kafka cluster (or the embedded broker)."""

    bootstrap_servers: str = Field("localhost:9092", min_length=1)
    group_id: str = Field("tasking-worker", min_length=1)
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    enable_idempotence: bool = True
    create_topics: bool = False
    # Used only when the worker creates topics itself (create_topics=true).
    partitions: int = Field(6, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1, le=10)
    # A member that misses this many ms of heartbeats is removed from the group.
    session_timeout_ms: int = Field(10_000, ge=1_000)
    max_poll_interval_ms: int = Field(300_000, ge=10_000)


class TopicSettings(_Section):
    """Topic names (CONTRACT §1); requests, commands and state are co-partitioned."""

    requests: str = Field("tasking.order-requests", min_length=1)
    commands: str = Field("tasking.commands", min_length=1)
    status: str = Field("tasking.order-status", min_length=1)
    acquisitions: str = Field("tasking.acquisitions", min_length=1)
    deliveries: str = Field("tasking.deliveries", min_length=1)
    dead_letter: str = Field("tasking.dead-letter", min_length=1)
    state: str = Field("tasking.worker-state", min_length=1)

    def all(self) -> list[str]:
        """Every topic name, inputs first."""
        return [
            self.requests,
            self.commands,
            self.state,
            self.status,
            self.acquisitions,
            self.deliveries,
            self.dead_letter,
        ]


class EndUser(_Section):
    """An end user declared on OneAtlas orders (name and ISO 3166 alpha-2 country)."""

    endUserName: str = Field(min_length=1)  # noqa: N815 - the provider's own field name
    country: str = Field(pattern=r"^[A-Z]{2}$")


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
    end_users: list[EndUser] = Field(
        default_factory=lambda: [EndUser(endUserName="tasking-worker", country="FR")]
    )
    notification_emails: list[str] = Field(default_factory=list)
    delivery_type: str = "network"
    rate_limit_per_second: float = Field(10.0, gt=0)
    max_concurrency: int = Field(32, ge=1)

    @property
    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())


class Up42Settings(_Section):
    """UP42: password-grant credentials, hosts and workspace."""

    username: str | None = None
    password: SecretStr | None = None
    workspace_id: str | None = None
    auth_url: HttpUrl = HttpUrl("https://auth.up42.com/realms/public/protocol/openid-connect/token")
    userinfo_url: HttpUrl | None = None
    client_id: str = "up42-api"
    base_url: HttpUrl = HttpUrl("https://api.up42.com")
    rate_limit_per_second: float = Field(10.0, gt=0)
    max_concurrency: int = Field(32, ge=1)

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


class TrackingSettings(_Section):
    """Tracking polls and the delivery harvest.

    ``delivery_interval_seconds`` is the period of the per-provider delivery harvest (default: the
    poll interval). ``delivery_grace_seconds``: after the provider finished, how long more products
    may still appear (UP42 extracts STAC items after ``FULFILLED``) before ``COMPLETED``.
    ``delivery_timeout_seconds``: after the provider finished, how long to wait for the products
    of every validated acquisition before ``COMPLETED`` with ``DELIVERY_INCOMPLETE``.
    ``finished_retention_seconds``: how long a finished order (``COMPLETED``, ``CANCELLED``,
    ``REJECTED``, ...) keeps its full state after its terminal status, for late deliveries and
    commands; after it the state is replaced by a compact finished record (its last event, for
    answering a re-sent request), in memory and in the changelog. Default 7 days.
    """

    poll_interval_seconds: float = Field(300.0, gt=0)
    # Consecutive failures to follow one order before it is published with TRACKING_ERROR.
    error_threshold: int = Field(5, ge=1)
    page_size: int = Field(100, ge=1, le=1000)
    delivery_interval_seconds: float | None = Field(None, gt=0)
    delivery_grace_seconds: float = Field(600.0, ge=0)
    delivery_timeout_seconds: float = Field(1209600.0, gt=0)
    finished_retention_seconds: float = Field(604800.0, ge=0)

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
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ValueError("must be a JSON object of currency -> rate") from None
        if not isinstance(value, dict):
            raise PydanticCustomError("rates", "must be a JSON object of currency -> rate")
        for currency, rate in value.items():
            if isinstance(rate, bool) or not isinstance(rate, int | float):
                raise PydanticCustomError(
                    "rates", "the rate of {currency} must be a positive number", {"currency": repr(currency)}
                )
        return value

    @field_validator("rates", mode="after")
    @classmethod
    def _positive(cls, rates: dict[str, float]) -> dict[str, float]:
        for currency, rate in rates.items():
            if not currency or not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"the rate of {currency!r} must be a positive number")
        return rates


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


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """The whole configuration of one worker process (CONTRACT §5)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    oneatlas: OneAtlasSettings = OneAtlasSettings()
    up42: Up42Settings = Up42Settings()
    http_client: HttpClientSettings = HttpClientSettings()
    tracking: TrackingSettings = TrackingSettings()
    routing: RoutingSettings = RoutingSettings()
    http: HttpServerSettings = HttpServerSettings()
    health: HealthSettings = HealthSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Annotated[LogFormat | None, Field(description="json or console")] = None
    ce_source: str = Field("urn:tasking-worker", min_length=1)
    shutdown_grace_seconds: float = Field(20.0, gt=0)

    def secret_values(self) -> list[str]:
        """Every configured secret in clear, for the log redaction processor only."""
        secrets = [self.kafka.sasl_password, self.oneatlas.api_key, self.up42.password]
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]

    def resolved_log_format(self) -> LogFormat:
        """``console`` on a terminal unless a format was set explicitly."""
        if self.log_format is not None:
            return self.log_format
        return LogFormat.CONSOLE if sys.stdout.isatty() else LogFormat.JSON


def _variable_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc)


def settings_from(values: Mapping[str, str]) -> Settings:
    """Settings from exactly ``values`` (``TASKING_*`` variables), for a worker embedded in
    another program (the demo, tests, benchmarks): the process's own ``TASKING_*`` variables are
    hidden while they are read, so an embedded worker never picks up a configured cluster.

    Settings are read from the environment only, so ``values`` are put there for the call (under
    a lock, and restored after).

    Raises:
        ConfigError: as :func:`load_settings`.
    """
    with _ENVIRON_LOCK:
        saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        for key in saved:
            del os.environ[key]
        os.environ.update(values)
        try:
            return load_settings()
        finally:
            for key in values:
                os.environ.pop(key, None)
            os.environ.update(saved)


_ENVIRON_LOCK = threading.Lock()


def load_settings() -> Settings:
    """Read the environment once.

    Raises:
        ConfigError: one line naming the first invalid variable and what is wrong with it. The
            message never contains the rejected value, which may be a secret.
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise ConfigError(f"{_variable_name(first['loc'])}: {first['msg']}") from None
    except ValueError as exc:  # pydantic-settings raises this for unparsable nested JSON
        raise ConfigError(f"invalid configuration: {exc}") from None
