"""Logging: one structured line per event, secrets never written.

:func:`configure_logging` is called once at start. Both structlog loggers and the stdlib
``logging`` records of libraries (aiokafka, httpx, uvicorn, apscheduler) go through the same
processors and the same handler on stdout, so every line has one format:

* ``json``: one JSON object per line with ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
  ``event``, the context bound with :mod:`structlog.contextvars` (``requestId``, ``provider``,
  ``topic``, ``partition``, ``offset``, ...) and the call's own keys;
* ``console``: structlog's aligned, human-readable lines (for a terminal).

The libraries' routine (apscheduler's two lines per job run, httpx's line per request, ...) shows
only at ``DEBUG``: at the default ``INFO`` they write warnings and errors, the worker its events.

Exceptions are rendered as tracebacks *without local variables* (locals may hold credentials or
whole payloads): structured frames in JSON, plain text on the console.

Redaction runs last, after the traceback is rendered and before the line is serialised, on every
value recursively: the configured secret values, ``Bearer`` tokens, ``Authorization`` header values
and the values of keys that name a credential (``access_token``, ``apikey``, ``password``, ...) are
replaced by ``[REDACTED]``. Objects that are not plain JSON values are turned into their ``str``
before redaction, so nothing reaches the renderer unchecked.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Final, TextIO

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from worker.config import LogFormat

REDACTED: Final = "[REDACTED]"

# Keys (compared lower-case, without "-" and "_") whose values are always credentials.
SENSITIVE_KEYS: Final = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "token",
        "apikey",
        "xapikey",
        "password",
        "passwd",
        "saslpassword",
        "secret",
        "clientsecret",
    }
)

# ``Bearer <token>`` anywhere in a string.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
# ``Authorization: <scheme> <credentials>`` (and API-key headers) up to the end of the value.
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key)([\"']?\s*[:=]\s*[\"']?)([^\"'\r\n,;}]+)"
)
# ``access_token=...``, ``"password": "..."``, ``'apikey': ...`` inside text (JSON, forms, reprs).
_KEY_VALUE = re.compile(
    r"(?i)([\"']?\b(?:access_token|refresh_token|id_token|api_?key|client_secret|password)"
    r"[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;'\"}\]]+)"
)


def _hide_value(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{quote}{REDACTED}{quote}"


_HANDLER_MARK: Final = "_tasking_worker_handler"
#: Third-party loggers: routed through the worker's handler, and held at WARNING or above unless
#: the level is DEBUG. At INFO they would drown the worker's own events (apscheduler alone writes
#: two lines for every timer run: "Running job ..." and "... executed successfully").
LIBRARY_LOGGERS: Final = ("aiokafka", "kafka", "httpx", "httpcore", "uvicorn", "apscheduler", "asyncio")
LIBRARY_MIN_LEVEL: Final = logging.WARNING


class Redactor:
    """A structlog processor that replaces secrets with ``[REDACTED]`` in every value.

    Args:
        secrets: values that must never be written (API keys, passwords). Empty values are ignored;
            longer ones are matched first so a secret containing another is hidden whole.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, unique))) if unique else None

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return {key: self._value(key, value) for key, value in event_dict.items()}

    def redact_text(self, text: str) -> str:
        """``text`` with every secret, bearer token and credential assignment hidden."""
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        text = _AUTH_HEADER.sub(rf"\1\2{REDACTED}", text)
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        return _KEY_VALUE.sub(_hide_value, text)

    def _value(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and _is_sensitive_key(key) and value is not None:
            return REDACTED
        return self._redact(value)

    def _redact(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | datetime | date):
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {str(k): self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redact(item) for item in value]
        if isinstance(value, bytes):
            return self.redact_text(value.decode("utf-8", "backslashreplace"))
        # Anything else is written through its str(): check that text, not the object.
        return self.redact_text(str(value))


def _is_sensitive_key(key: str) -> bool:
    return key.lower().replace("-", "").replace("_", "") in SENSITIVE_KEYS


def _json_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def shared_processors() -> list[Processor]:
    """What both structlog and stdlib records go through before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]


def render_processors(fmt: LogFormat, redactor: Redactor) -> list[Processor]:
    """The formatter's tail: traceback without locals, redaction, then the renderer."""
    if fmt is LogFormat.CONSOLE:
        # Rendered to text first so the redactor sees it; the console prints it as it is.
        return [
            structlog.processors.format_exc_info,
            redactor,
            structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()),
        ]
    return [
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        redactor,
        _leading_keys,
        structlog.processors.JSONRenderer(serializer=_json_dumps),
    ]


_LEADING: Final = ("timestamp", "level", "logger", "event")


def _leading_keys(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Put the keys every line has first, so lines read well before any tool parses them."""
    lead = {key: event_dict[key] for key in _LEADING if key in event_dict}
    return {**lead, **{k: v for k, v in event_dict.items() if k not in lead}}


def configure_logging(
    level: str | int = "INFO",
    fmt: LogFormat | str = LogFormat.JSON,
    secrets: Iterable[str] = (),
    *,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging for the whole process.

    Args:
        level: minimum level (name or number) of the worker's own events; third-party libraries
            (:data:`LIBRARY_LOGGERS`) log at WARNING or above unless ``level`` is DEBUG.
        fmt: ``json`` (one object per line) or ``console``.
        secrets: values to hide everywhere (``Settings.secret_values()``).
        stream: where lines go; ``sys.stdout`` (as it is at call time) by default.

    Calling it again replaces the previous configuration (tests do). Raises ``ValueError`` for an
    unknown ``fmt`` or level name.
    """
    log_format = LogFormat(fmt)
    numeric = _level_number(level)
    redactor = Redactor(secrets)
    _configure_stdlib(numeric, log_format, redactor, stream or sys.stdout)
    structlog.configure(
        processors=[*shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )


class _QuietHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose failures never print the record.

    The stdlib default (``handleError``) dumps the unformatted record, secrets and all, to stderr
    when a write fails (a closed pipe, a full disk); this one only says that a line was lost.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        with contextlib.suppress(Exception):
            sys.stderr.write("logging: a log line could not be written\n")


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    return numeric


def _configure_stdlib(level: int, fmt: LogFormat, redactor: Redactor, stream: TextIO) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *render_processors(fmt, redactor),
        ],
    )
    handler = _QuietHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        # Libraries log through the root handler, never through handlers of their own.
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.setLevel(library_level(level))


def library_level(level: int) -> int:
    """The level of third-party loggers for the worker's ``level``: the same at DEBUG (everything
    is wanted), else at least WARNING (their problems, not their routine)."""
    return level if level <= logging.DEBUG else max(level, LIBRARY_MIN_LEVEL)
