"""Settings: the only place that reads the environment.

Every variable of the public contract (CONTRACT §5) is here with its default, read once at start
through pydantic-settings (prefix ``TASKING_``, nesting with ``__``). :func:`load_settings` turns any
validation failure into a :class:`ConfigError` whose message is one line naming the variable, so the
process can stop with a clear message instead of a traceback.

Secrets are :class:`pydantic.SecretStr`: their ``repr`` and ``str`` are masked, and the logging
redaction processor (``worker.observability.logging``) learns their values from
:meth:`Settings.secret_values`.

The sections live in :mod:`worker.config.kafka` and :mod:`worker.config.sections`; every name
is importable from this package.
"""

from __future__ import annotations

import difflib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.config.kafka import (
    KafkaOAuthSettings,
    KafkaSettings,
    SecurityProtocol,
    TopicSettings,
)
from worker.config.sections import (
    ApprovalSettings,
    EndUser,
    HealthSettings,
    HttpClientSettings,
    HttpServerSettings,
    IntakeSettings,
    LogFormat,
    OneAtlasSettings,
    RoutingSettings,
    StacSettings,
    TrackingSettings,
    Up42Settings,
    is_loopback,
)
from worker.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "NESTED_DELIMITER",
    "ApprovalSettings",
    "EndUser",
    "HealthSettings",
    "HttpClientSettings",
    "HttpServerSettings",
    "IntakeSettings",
    "KafkaOAuthSettings",
    "KafkaSettings",
    "LogFormat",
    "OneAtlasSettings",
    "RoutingSettings",
    "SecurityProtocol",
    "Settings",
    "StacSettings",
    "TopicSettings",
    "TrackingSettings",
    "Up42Settings",
    "check_required",
    "is_loopback",
    "known_variables",
    "load_settings",
    "setting_fields",
    "settings_from",
    "unknown_variables",
    "variable_of",
]

ENV_PREFIX = "TASKING_"
NESTED_DELIMITER = "__"


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
