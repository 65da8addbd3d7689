"""The first connection to the cluster, with a reason an operator can act on.

aiokafka reports every failed bootstrap as ``KafkaConnectionError("Unable to bootstrap")`` and
logs the cause separately. Before the process's clients start, :func:`probe` opens one connection
per bootstrap server with the configured security (TLS handshake, SASL exchange, token) and turns
the first failure into a :class:`KafkaConnectError` whose ``reason`` says which:

====================== =====================================================================
reason                 cause
====================== =====================================================================
AUTHENTICATION_FAILED  wrong user or password, or a mechanism the cluster does not enable
TLS_UNTRUSTED          the server certificate is not signed by the configured CA (or names
                       another host)
TLS_EXPIRED            a certificate outside its validity period
TLS_HANDSHAKE          any other TLS failure (a client certificate refused or missing, a
                       plaintext listener)
TLS_CONFIG             a CA, certificate or key file that cannot be loaded
TOKEN_REFUSED          the OAUTHBEARER token endpoint, or the cluster, refused the token
TOKEN_UNAVAILABLE      the token endpoint cannot be reached
UNREACHABLE            no bootstrap server accepts a connection in time
====================== =====================================================================

:func:`connect_with_retry` runs the probe until it passes: each failure is one log line
(``kafka_connect_failed`` with the reason, never a stack trace or a secret) and the readiness
check ``kafka`` carries the reason; attempts are spaced 1, 2, 4, ... seconds apart, at most
``TASKING_KAFKA__CONNECT_BACKOFF_MAX_SECONDS``. The process stays up (not ready) so the reason is
visible in ``/readyz``; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from worker.config import KafkaSettings
from worker.errors import KafkaConnectError
from worker.kafka.security import client_options

log = structlog.get_logger(__name__)


class ReadinessSink(Protocol):
    def set_kafka_problem(self, problem: str | None) -> None: ...


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    servers = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        servers.append((host.strip("[]") or item.strip(), int(port) if port.isdigit() else 9092))
    return servers


async def probe(kafka: KafkaSettings, timeout: float = 10.0) -> None:
    """One authenticated connection to a bootstrap server, closed again.

    Raises:
        KafkaConnectError: the classified failure of the last server tried (every server failed).
    """
    options = client_options(kafka)
    sasl: dict[str, Any] = {k: v for k, v in options.items() if k.startswith("sasl_")}
    failure: KafkaConnectError | None = None
    for host, port in _servers(kafka.bootstrap_servers):
        try:
            async with asyncio.timeout(timeout):
                conn = await create_conn(
                    host,
                    port,
                    client_id="tasking-worker-probe",
                    request_timeout_ms=int(timeout * 1000),
                    ssl_context=options.get("ssl_context"),
                    security_protocol=options["security_protocol"],
                    **sasl,
                )
            conn.close()
            return
        except Exception as exc:  # every failure is classified, none escapes raw
            failure = classify(exc, f"{host}:{port}", kafka.sasl_mechanism, tls="ssl_context" in options)
    assert failure is not None
    raise failure


def classify(
    exc: BaseException, server: str, mechanism: str | None = None, *, tls: bool = False
) -> KafkaConnectError:
    """The :class:`KafkaConnectError` for a failed connection attempt to ``server``.

    With TLS 1.3 a server that refuses the client certificate does so after the client's side of
    the handshake is complete: the client only sees the connection closed on its first request.
    On a TLS connection that is reported as ``TLS_HANDSHAKE``, naming that likely cause.
    """
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, KafkaConnectError):
            return error
        if isinstance(error, SaslAuthenticationFailed):
            if mechanism == "OAUTHBEARER":
                return KafkaConnectError("TOKEN_REFUSED", f"{server} refused the OAuth token: {_text(error)}")
            return KafkaConnectError(
                "AUTHENTICATION_FAILED", f"{server} refused the credentials: {_text(error)}"
            )
        if isinstance(error, UnsupportedSaslMechanismError):
            return KafkaConnectError(
                "AUTHENTICATION_FAILED", f"{server} does not enable this SASL mechanism: {_text(error)}"
            )
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = error.verify_message or str(error)
            reason = "TLS_EXPIRED" if "expired" in detail or "not yet valid" in detail else "TLS_UNTRUSTED"
            return KafkaConnectError(reason, f"{server} certificate not accepted: {detail}")
        if isinstance(error, ssl.SSLError):
            return KafkaConnectError(
                "TLS_HANDSHAKE", f"TLS handshake with {server} failed: {error.reason or error}"
            )
    closed = any(isinstance(e, KafkaConnectionError) and "closed" in str(e) for e in chain)
    if tls and closed:
        return KafkaConnectError(
            "TLS_HANDSHAKE",
            f"{server} closed the connection after the TLS handshake (client certificate refused?)",
        )
    for error in chain:
        if isinstance(error, OSError | TimeoutError | KafkaError):
            return KafkaConnectError(
                "UNREACHABLE", f"{server} unreachable: {type(error).__name__}: {_text(error)}"
            )
    return KafkaConnectError("UNREACHABLE", f"{server}: {type(exc).__name__}")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _text(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text[:300]


async def connect_with_retry(
    kafka: KafkaSettings,
    health: ReadinessSink,
    stop: asyncio.Event | None = None,
    attempt: Callable[[KafkaSettings], Awaitable[None]] = probe,
) -> bool:
    """Probe until a connection succeeds (``True``) or ``stop`` is set (``False``).

    Each failure: one ``kafka_connect_failed`` log line and the readiness reason, then a wait of
    1, 2, 4, ... seconds (at most ``connect_backoff_max_seconds``). Success clears the reason.
    """
    delay = 1.0
    number = 0
    while True:
        number += 1
        try:
            await attempt(kafka)
        except KafkaConnectError as exc:
            health.set_kafka_problem(f"{exc.reason}: {exc.message}")
            log.error(  # noqa: TRY400 - one line with the reason, never a stack trace
                "kafka_connect_failed", reason=exc.reason, detail=exc.message, attempt=number, retry_in=delay
            )
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with_stop = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({with_stop}, timeout=delay)
                with_stop.cancel()
                if done:
                    return False
            delay = min(delay * 2, kafka.connect_backoff_max_seconds)
            continue
        health.set_kafka_problem(None)
        if number > 1:
            log.info("kafka_connected", attempts=number)
        return True
