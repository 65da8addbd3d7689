"""The one HTTP layer both provider adapters use.

It owns what must be identical for every provider call: the bearer token (renewed once on 401),
a per-provider concurrency limit and rate limit, timeouts, retries with exponential backoff and
full jitter for reads, the translation of every failure into the project's error tree, and metrics.

Reads and writes differ on purpose:

* :meth:`ProviderHttp.read` retries 5xx, 429 (waiting at least ``Retry-After``), timeouts and
  connection errors, up to ``max_retries`` times.
* :meth:`ProviderHttp.write` retries only when the request certainly did not take effect (the
  connection was never made, 429, 401 before a renewed token). When it may have taken effect (a
  read timeout, a dropped connection after sending, a 5xx, a 2xx whose body cannot be read: an
  HTML maintenance page, a truncated answer), it raises :class:`OutcomeUnknown`: a paid call is
  never re-sent blindly, the caller reconciles. The re-send after a 401 passes the caller's
  ownership check again (``before_write``), as the first send did.

``Retry-After`` is read in both of its forms (delay-seconds and HTTP-date) and capped by
``HttpPolicy.retry_after_max`` (``TASKING_HTTP_CLIENT__RETRY_AFTER_MAX_SECONDS``), infinity
included; a value that is neither a number nor a date is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson
import structlog

from worker.config import HttpClientSettings
from worker.errors import (
    OutcomeUnknown,
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from worker.providers.scope import CredentialScope
from worker.providers.transport import transport
from worker.tokens import TokenSource

log = structlog.get_logger(__name__)

# The request never left this machine: safe to send again, even for a write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ProviderMetrics(Protocol):
    """What the HTTP layer reports (implemented by ``WorkerMetrics``)."""

    def provider_request(
        self, provider: str, operation: str, outcome: str, duration_seconds: float
    ) -> None: ...

    def provider_retry(self, provider: str, operation: str) -> None: ...

    def provider_in_flight(self, provider: str) -> contextlib.AbstractContextManager[None]: ...


class NullMetrics:
    """Metrics sink that records nothing (for tools and tests that do not look at metrics)."""

    def provider_request(self, provider: str, operation: str, outcome: str, duration_seconds: float) -> None:
        return None

    def provider_retry(self, provider: str, operation: str) -> None:
        return None

    @contextlib.contextmanager
    def provider_in_flight(self, provider: str) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class HttpPolicy:
    """Retry, pacing and concurrency settings of one provider."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    rate_per_second: float = 10.0
    max_concurrency: int = 32
    retry_after_max: float = 300.0


def http_policy(settings: HttpClientSettings, rate_per_second: float, max_concurrency: int) -> HttpPolicy:
    """The retry and pacing policy of one provider from the shared HTTP settings."""
    return HttpPolicy(
        max_retries=settings.max_retries,
        backoff_base=settings.backoff_base_seconds,
        backoff_max=settings.backoff_max_seconds,
        rate_per_second=rate_per_second,
        max_concurrency=max_concurrency,
        retry_after_max=settings.retry_after_max_seconds,
    )


def build_client(settings: HttpClientSettings, max_concurrency: int) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` an adapter uses when none is injected: the configured timeouts and
    as many pooled connections as the provider's concurrency limit allows.

    Its transport is :func:`worker.providers.transport.transport` (cheap idle-connection checks),
    unless a proxy is configured in the environment (``HTTPS_PROXY``...): httpx honours those
    only with its default transport, so that one is kept."""
    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
        limits=limits,
        transport=None if urllib.request.getproxies() else transport(limits),
        headers={"User-Agent": "tasking-worker"},
    )


class RateLimiter:
    """Token bucket: at most ``rate`` request starts per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request may start."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)


BeforeWrite = Callable[[], Awaitable[None]]
#: Set by the runner around a paid call (a context variable of the call's task): awaited right
#: before each write request is sent, after the rate limiter, the concurrency slot and the token,
#: so the caller's last check (the ownership fence) is as close to the send as the client allows.
#: It raises to stop the send (``OwnershipLost``), which then propagates unchanged.
before_write: ContextVar[BeforeWrite | None] = ContextVar("before_write", default=None)

Translate = Callable[[httpx.Response, str], ProviderError | None]
"""Adapter hook: turn a non-2xx response into a specific error, or ``None`` for the default."""


def json_body(response: httpx.Response) -> Any:
    """The response body as JSON (``None`` when empty); never raises."""
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``: delay-seconds (``120``) or an HTTP-date
    (``Wed, 21 Oct 2026 07:28:00 GMT``); ``None`` when absent or unreadable (``nan``, garbage).
    Not capped here (``HttpPolicy.retry_after_max`` is applied to every ``RateLimited``)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or seconds == -math.inf:
        return None
    return max(0.0, seconds)  # ``inf`` ("1e999") stays: the cap applies to it


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("Retry-After"))


@dataclass
class ProviderHttp:
    """HTTP access to one provider.

    Args:
        provider: ``oneatlas`` or ``up42`` (metrics label and error attribute).
        client: the injected ``httpx.AsyncClient`` (base URL, timeouts, transport).
        tokens: bearer token source, or ``None`` for unauthenticated calls.
        translate: the adapter's error mapping for its documented error bodies.
        scope: where the bearer token may go (``worker.providers.scope``); a request to any other
            origin (a ``next`` link naming another host, plain http) is refused with
            :class:`ProviderProtocolError` before anything is sent.
    """

    provider: str
    client: httpx.AsyncClient
    tokens: TokenSource | None
    policy: HttpPolicy = HttpPolicy()
    metrics: ProviderMetrics = field(default_factory=NullMetrics)
    translate: Translate | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    scope: CredentialScope | None = None
    _limiter: RateLimiter = field(init=False)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(self.policy.rate_per_second)
        self._slots = asyncio.Semaphore(self.policy.max_concurrency)

    async def read(self, operation: str, method: str, url: str, **kw: Any) -> Any:
        """A call without side effects; retried on every retriable failure.

        Returns the parsed JSON body (``None`` when empty).

        Raises:
            ProviderUnavailable: still failing after ``max_retries`` retries.
            ProviderRejected / ProviderAuthError / ProviderProtocolError: not retriable.
        """
        attempt = 0
        while True:
            try:
                return await self._once(operation, method, url, write=False, **kw)
            except ProviderError as exc:
                if not exc.retriable or attempt >= self.policy.max_retries:
                    raise
                await self._backoff(operation, attempt, exc)
                attempt += 1

    async def write(self, operation: str, method: str, url: str, **kw: Any) -> Any:
        """A call with side effects (possibly a paid one).

        Retried only when it certainly did not take effect (connection refused, 429).

        Raises:
            OutcomeUnknown: it may have taken effect (timeout after sending, 5xx, lost answer).
            ProviderRejected / ProviderAuthError / ProviderProtocolError: refused, nothing done.
        """
        attempt = 0
        while True:
            try:
                return await self._once(operation, method, url, write=True, **kw)
            except ProviderError as exc:
                if isinstance(exc, OutcomeUnknown) or not exc.retriable:
                    raise
                if attempt >= self.policy.max_retries:
                    raise
                await self._backoff(operation, attempt, exc)
                attempt += 1

    async def _backoff(self, operation: str, attempt: int, exc: ProviderError) -> None:
        delay = random.uniform(0, min(self.policy.backoff_max, self.policy.backoff_base * 2**attempt))
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        self.metrics.provider_retry(self.provider, operation)
        log.info(
            "provider_retry",
            operation=operation,
            attempt=attempt + 1,
            delay_s=round(delay, 3),
            error=exc.message,
        )
        await self.sleep(delay)

    async def _once(self, operation: str, method: str, url: str, *, write: bool, **kw: Any) -> Any:
        await self._limiter.acquire()
        async with self._slots:
            with self.metrics.provider_in_flight(self.provider):
                started = time.perf_counter()
                outcome = "timeout"
                try:
                    response = await self._send_authenticated(operation, method, url, write, kw)
                    outcome = _outcome(response.status_code)
                except ProviderError as exc:
                    timed_out = isinstance(exc.__cause__, httpx.TimeoutException)
                    outcome = "timeout" if timed_out else "server_error"
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    self.metrics.provider_request(self.provider, operation, outcome, elapsed)
        return self._result(operation, response, write)

    async def _send_authenticated(
        self, operation: str, method: str, url: str, write: bool, kw: Mapping[str, Any]
    ) -> httpx.Response:
        if self.tokens is not None and self.scope is not None and not self.scope.allows(url):
            raise ProviderProtocolError(f"{operation}: {self.scope.refusal(url)}", **self._ids(operation))
        token = await self.tokens.get() if self.tokens is not None else None
        guard = before_write.get() if write else None
        if guard is not None:
            await guard()
        response = await self._send(operation, method, url, write, kw, token)
        if response.status_code == 401 and self.tokens is not None and token is not None:
            # An expired or revoked token: the request was refused, so it is safe to resend once,
            # but only while this instance still owns the order: the token renewal may have taken
            # long enough for the partition to move (the guard raises OwnershipLost then).
            self.tokens.invalidate(token)
            token = await self.tokens.get()
            if guard is not None:
                await guard()
            response = await self._send(operation, method, url, write, kw, token)
        return response

    async def _send(
        self,
        operation: str,
        method: str,
        url: str,
        write: bool,
        kw: Mapping[str, Any],
        token: str | None,
    ) -> httpx.Response:
        headers = dict(kw.get("headers") or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        args = {k: v for k, v in kw.items() if k != "headers"}
        try:
            return await self.client.request(method, url, headers=headers, **args)
        except _NOT_SENT as exc:
            raise ProviderUnavailable(
                f"{operation}: cannot connect ({type(exc).__name__})", **self._ids(operation)
            ) from exc
        except httpx.TimeoutException as exc:
            raise self._lost(operation, write, "timed out", exc) from exc
        except httpx.TransportError as exc:
            raise self._lost(operation, write, "connection lost", exc) from exc

    def _lost(self, operation: str, write: bool, what: str, exc: Exception) -> ProviderError:
        if write:
            return OutcomeUnknown(
                f"{operation}: {what} after sending; outcome unknown", **self._ids(operation)
            )
        return ProviderUnavailable(f"{operation}: {what} ({type(exc).__name__})", **self._ids(operation))

    def _ids(self, operation: str) -> dict[str, Any]:
        return {"provider": self.provider, "operation": operation}

    def _result(self, operation: str, response: httpx.Response, write: bool) -> Any:
        if response.is_success:
            body = json_body(response)
            if isinstance(body, str):
                if write:
                    # A 2xx says the write may well have taken effect; its body cannot say what.
                    raise OutcomeUnknown(
                        f"{operation}: HTTP {response.status_code} with an unreadable body "
                        f"({_content_type(response)}); outcome unknown",
                        status_code=response.status_code,
                        **self._ids(operation),
                    )
                raise ProviderProtocolError(
                    f"{operation}: answer is not JSON",
                    status_code=response.status_code,
                    **self._ids(operation),
                )
            return body
        raise self._error(operation, response, write)

    def _error(self, operation: str, response: httpx.Response, write: bool) -> ProviderError:
        error: ProviderError | None = None
        if self.translate is not None:
            error = self.translate(response, operation)
            if error is not None:
                error.provider, error.operation = self.provider, operation
                error.status_code = response.status_code
        if error is None:
            error = default_error(self.provider, operation, response, write)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            error.retry_after = min(error.retry_after, self.policy.retry_after_max)
        return error


def default_error(provider: str, operation: str, response: httpx.Response, write: bool) -> ProviderError:
    """The generic mapping of an HTTP error status to the error tree."""
    status = response.status_code
    ids: dict[str, Any] = {"provider": provider, "operation": operation, "status_code": status}
    message = f"{operation}: HTTP {status}"
    if status == 429:
        return RateLimited(message + " (rate limited)", retry_after=_retry_after(response), **ids)
    if status >= 500:
        if write:
            return OutcomeUnknown(message + "; outcome unknown", **ids)
        return ProviderUnavailable(message, **ids)
    if status in (401, 403):
        return ProviderAuthError(message + " (not authorised)", **ids)
    return ProviderRejected(message, details={"body": json_body(response)}, **ids)


def _content_type(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    return kind[:40] or "no content type"


def _outcome(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"
