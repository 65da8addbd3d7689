"""The Kafka settings sections: the connection and its security (TLS, SASL, OAUTHBEARER, secrets
read from files) and the topic names (re-exported by :mod:`worker.config`)."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode

from worker.config.sections import _Section


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
