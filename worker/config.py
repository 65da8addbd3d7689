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

import difflib
import ipaddress
import json
import math
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
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


def _secret_file(path: str | None, variable: str) -> SecretStr | None:
    """The content of a secret file (one trailing newline dropped), or None when no path is set.

    Raises:
        PydanticCustomError: naming ``variable`` when the file cannot be read (never its content).
    """
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise PydanticCustomError(
            "secret_file",
            "{variable}: cannot read the file ({error})",
            {"variable": variable, "error": exc.strerror},
        ) from None
    return SecretStr(text[:-1] if text.endswith("\n") else text)


class KafkaOAuthSettings(_Section):
    """OAUTHBEARER through OIDC client credentials (``TASKING_KAFKA__OAUTH__*``).

    ``extensions`` are SASL extensions sent with every authentication (Confluent Cloud's
    ``logicalCluster`` and ``identityPoolId``), read as a JSON object of strings.
    """

    token_url: HttpUrl | None = Field(None, description="OIDC token endpoint (client credentials grant).")
    client_id: str | None = Field(None, description="OAuth client id.")
    client_secret: SecretStr | None = Field(None, description="OAuth client secret (secret).")
    client_secret_file: str | None = Field(
        None, description="File holding the OAuth client secret (a mounted Secret); wins over the variable."
    )
    scope: str | None = Field(None, description="Scope requested with the token (space-separated).")
    extensions: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="SASL extensions, a JSON object of strings (Confluent Cloud: `logicalCluster`, "
        "`identityPoolId`).",
    )
    # How the client authenticates at the token URL: HTTP Basic (RFC 6749 §2.3.1, required of
    # every server) or client_id/client_secret in the form body.
    auth_method: Literal["basic", "post"] = Field(
        "basic", description="`basic` (HTTP Basic) or `post` (client id and secret in the form body)."
    )
    # Renew this long before the token expires (capped at half its lifetime).
    refresh_margin_seconds: float = Field(
        60.0, ge=0, description="Renew the token this long before it expires (at most half its lifetime)."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one token request.")

    @field_validator("extensions", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ValueError("must be a JSON object of strings") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise PydanticCustomError("extensions", "must be a JSON object of strings")
        return value

    @model_validator(mode="after")
    def _secret_from_file(self) -> KafkaOAuthSettings:
        secret = _secret_file(self.client_secret_file, "TASKING_KAFKA__OAUTH__CLIENT_SECRET_FILE")
        if secret is not None:
            object.__setattr__(self, "client_secret", secret)
        return self


class KafkaSettings(_Section):
    """Connection to the Kafka cluster (or the embedded broker).

    Every secret can instead be read from a file (``*_FILE``: a mounted Kubernetes Secret); the
    file wins over the variable. Certificates and keys are PEM files. Combinations that cannot
    connect are refused at start with one line naming the variable (:meth:`_consistent`).
    """

    bootstrap_servers: str = Field("localhost:9092", min_length=1)
    group_id: str = Field("tasking-worker", min_length=1)
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: str | None = Field(
        None, description="File holding the SASL password (a mounted Secret); wins over the variable."
    )
    ssl_cafile: str | None = None
    # Mutual TLS: the client certificate (chain) and its private key, optionally encrypted.
    ssl_certfile: str | None = Field(
        None, description="Mutual TLS: PEM file of the client certificate (chain)."
    )
    ssl_keyfile: str | None = Field(None, description="Mutual TLS: PEM file of the client private key.")
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client key (secret)."
    )
    ssl_key_password_file: str | None = Field(
        None, description="File holding the client key's password; wins over the variable."
    )
    ssl_check_hostname: bool = Field(
        True, description="The broker certificate must name the host connected to."
    )
    oauth: KafkaOAuthSettings = Field(default_factory=KafkaOAuthSettings)
    enable_idempotence: bool = True
    create_topics: bool = False
    # Used only when the worker creates topics itself (create_topics=true).
    partitions: int = Field(6, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1, le=10)
    # A member that misses this many ms of heartbeats is removed from the group.
    session_timeout_ms: int = Field(10_000, ge=1_000)
    max_poll_interval_ms: int = Field(300_000, ge=10_000)
    # While running, the topic layout (partition counts) is read again this often.
    topic_check_interval_seconds: float = Field(
        30.0, gt=0, description="Period of the running re-check of the topics' partition counts."
    )
    # A failed connection at start is retried after 1, 2, 4, ... seconds, at most this long.
    connect_backoff_max_seconds: float = Field(
        30.0, gt=0, description="Longest wait between two connection attempts at start (1, 2, 4, ... s)."
    )

    @model_validator(mode="after")
    def _secrets_from_files(self) -> KafkaSettings:
        for name in ("sasl_password", "ssl_key_password"):
            path = getattr(self, f"{name}_file")
            secret = _secret_file(path, f"TASKING_KAFKA__{name.upper()}_FILE") if path else None
            if secret is not None:
                object.__setattr__(self, name, secret)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        problem = _security_problem(self)
        if problem is not None:
            raise PydanticCustomError("kafka_security", problem)
        return self


def _security_problem(kafka: KafkaSettings) -> str | None:
    """The first setting that makes the configured security mode unable to connect, or None."""
    protocol = kafka.security_protocol.value
    mechanism = kafka.sasl_mechanism
    var = "TASKING_KAFKA__"
    if protocol.startswith("SASL_") and mechanism is None:
        return f"{var}SASL_MECHANISM is required with {var}SECURITY_PROTOCOL={protocol}"
    if mechanism is not None and not protocol.startswith("SASL_"):
        return f"{var}SASL_MECHANISM needs {var}SECURITY_PROTOCOL SASL_SSL or SASL_PLAINTEXT, not {protocol}"
    return _credentials_problem(kafka) or _tls_problem(kafka)


def _credentials_problem(kafka: KafkaSettings) -> str | None:
    mechanism = kafka.sasl_mechanism
    var = "TASKING_KAFKA__"
    if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        if not kafka.sasl_username:
            return f"{var}SASL_USERNAME is required with {var}SASL_MECHANISM={mechanism}"
        if kafka.sasl_password is None:
            return f"{var}SASL_PASSWORD (or {var}SASL_PASSWORD_FILE) is required with {mechanism}"
    if mechanism == "OAUTHBEARER":
        oauth = kafka.oauth
        for name, value in (("TOKEN_URL", oauth.token_url), ("CLIENT_ID", oauth.client_id)):
            if not value:
                return f"{var}OAUTH__{name} is required with {var}SASL_MECHANISM=OAUTHBEARER"
        if oauth.client_secret is None:
            return f"{var}OAUTH__CLIENT_SECRET (or ..._FILE) is required with {var}SASL_MECHANISM=OAUTHBEARER"
    return None


def _tls_problem(kafka: KafkaSettings) -> str | None:
    protocol = kafka.security_protocol.value
    var = "TASKING_KAFKA__"
    tls = protocol in ("SSL", "SASL_SSL")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, name)
        if path is not None and not tls:
            return f"{var}{name.upper()} needs {var}SECURITY_PROTOCOL SSL or SASL_SSL, not {protocol}"
        if path is not None and not os.path.isfile(path):
            return f"{var}{name.upper()}: no readable file at that path"
    if (kafka.ssl_certfile is None) != (kafka.ssl_keyfile is None):
        return f"{var}SSL_CERTFILE and {var}SSL_KEYFILE go together (mutual TLS needs both)"
    return None


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
    answering a re-sent request), in memory and in the changelog. Default 7 days.
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
    def _grace_within_timeout(self) -> TrackingSettings:
        if self.delivery_grace_seconds > self.delivery_timeout_seconds:
            raise PydanticCustomError(
                "grace",
                "TASKING_TRACKING__DELIVERY_GRACE_SECONDS must not exceed "
                "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS (a complete order would wait longer "
                "than an incomplete one)",
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
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ValueError("must be a JSON object of currency -> amount") from None
        if not isinstance(value, dict):
            raise PydanticCustomError("ceiling", "must be a JSON object of currency -> amount")
        for currency, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise PydanticCustomError(
                    "ceiling", "the amount of {currency} must be a number >= 0", {"currency": repr(currency)}
                )
        return value

    @field_validator("unbudgeted_ceiling", mode="after")
    @classmethod
    def _finite(cls, ceiling: dict[str, float]) -> dict[str, float]:
        for currency, amount in ceiling.items():
            if not currency or not math.isfinite(amount) or amount < 0:
                raise ValueError(f"the amount of {currency!r} must be a number >= 0")
        return ceiling


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
    approval: ApprovalSettings = ApprovalSettings()
    intake: IntakeSettings = IntakeSettings()
    http: HttpServerSettings = HttpServerSettings()
    health: HealthSettings = HealthSettings()
    stac: StacSettings = StacSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Annotated[LogFormat | None, Field(description="json or console")] = None
    ce_source: str = Field("urn:tasking-worker", min_length=1)
    shutdown_grace_seconds: float = Field(20.0, gt=0)

    def secret_values(self) -> list[str]:
        """Every configured secret in clear, for the log redaction processor only."""
        secrets = [
            self.kafka.sasl_password,
            self.kafka.ssl_key_password,
            self.kafka.oauth.client_secret,
            self.oneatlas.api_key,
            self.up42.password,
        ]
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
            message never contains the rejected value, which may be a secret. Also when OneAtlas
            is configured without its end users (:func:`check_required`).
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["msg"].startswith(ENV_PREFIX):  # a check across variables names its own
            raise ConfigError(first["msg"]) from None
        raise ConfigError(f"{_variable_name(first['loc'])}: {first['msg']}") from None
    except ValueError as exc:  # pydantic-settings raises this for unparsable nested JSON
        raise ConfigError(f"invalid configuration: {exc}") from None
    check_required(settings)
    return settings


def check_required(settings: Settings) -> None:
    """Refuse settings that would make the worker declare, or buy, what the operator did not say.

    Raises:
        ConfigError: ``TASKING_ONEATLAS__END_USERS`` is empty while the OneAtlas API key is set
            (every OneAtlas order declares its end users to Airbus, a legal statement).
    """
    if settings.oneatlas.configured and not settings.oneatlas.end_users:
        raise ConfigError(
            "TASKING_ONEATLAS__END_USERS: required when TASKING_ONEATLAS__API_KEY is set: the end users "
            'declared on every OneAtlas order, as JSON, e.g. [{"endUserName": "Acme SAS", "country": "FR"}]'
        )


# --------------------------------------------------------------------------- the variables


def setting_fields(
    model: type[BaseModel] = Settings, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """Every leaf setting as ``(path, field)``, in declaration order: ``("kafka",
    "bootstrap_servers")`` is ``TASKING_KAFKA__BOOTSTRAP_SERVERS`` (:func:`variable_of`)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from setting_fields(annotation, (*path, name))
        else:
            yield (*path, name), field


def variable_of(path: tuple[str, ...]) -> str:
    """The environment variable of a setting path."""
    return _variable_name(path)


def known_variables() -> list[str]:
    """Every ``TASKING_*`` variable the settings read: the leaves, and the sections (which
    pydantic-settings also reads whole, as JSON)."""
    leaves = [variable_of(path) for path, _ in setting_fields()]
    sections = {variable_of(path[:1]) for path, _ in setting_fields() if len(path) > 1}
    return leaves + sorted(sections)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``TASKING_*`` names in ``environ`` that no setting reads, each with the closest known
    variable (``None`` when nothing is close): a misspelt variable is otherwise ignored silently."""
    known = known_variables()
    # Compared without the shared prefix, which would make every name look close.
    suffixes = {name[len(ENV_PREFIX) :]: name for name in known}
    unknown = sorted(name for name in environ if name.upper().startswith(ENV_PREFIX))
    result: list[tuple[str, str | None]] = []
    for name in unknown:
        if name.upper() in known:
            continue
        closest = difflib.get_close_matches(name.upper()[len(ENV_PREFIX) :], suffixes, n=1, cutoff=0.6)
        result.append((name, suffixes[closest[0]] if closest else None))
    return result
