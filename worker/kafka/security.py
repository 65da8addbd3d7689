"""How every Kafka client of the process connects: one set of options from the settings.

:func:`client_options` is the only place that turns :class:`worker.config.KafkaSettings` into
aiokafka arguments; the producer, the intake consumer, the state-store reader, the admin client
and the CLI commands all use it, so a security mode that works for one works for all.

Modes (CONTRACT §5, docs/operations.md "Kafka security"):

* ``PLAINTEXT``; ``SSL`` with a CA file (else the system trust store), optionally a client
  certificate and key (mutual TLS) and the key's password;
* ``SASL_PLAINTEXT`` / ``SASL_SSL`` with ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``;
* ``OAUTHBEARER`` with :class:`OAuthTokenProvider`: OIDC client credentials against a token URL,
  the token cached and renewed before it expires (the providers' :class:`TokenSource`).

Secrets are read from the settings only when a client is built; no option, token or password is
ever logged (aiokafka logs neither).
"""

from __future__ import annotations

import ssl
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiokafka.abc import AbstractTokenProvider

from worker.config import KafkaOAuthSettings, KafkaSettings
from worker.errors import KafkaConnectError
from worker.tokens import TokenSource

# httpx and structlog are needed only by OAUTHBEARER's token fetches: imported there, so that a
# command line client (``status``, ``download``) does not pay for them to build its options.
if TYPE_CHECKING:
    import httpx


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka client options (bootstrap, security protocol, TLS context, SASL) from the settings.

    Raises:
        KafkaConnectError: reason ``TLS_CONFIG`` when a certificate, key or CA file cannot be
            loaded (wrong format, wrong key password).
    """
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol.value,
    }
    if kafka.security_protocol.value in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(kafka)
    mechanism = kafka.sasl_mechanism
    if mechanism is None:
        return options
    options["sasl_mechanism"] = mechanism
    if mechanism == "OAUTHBEARER":
        options["sasl_oauth_token_provider"] = token_provider(kafka.oauth)
    else:
        options["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return options


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """A client TLS context: server verified against the CA file (else the system store), host
    name checked unless ``ssl_check_hostname`` is off, client certificate when configured.

    Raises:
        KafkaConnectError: reason ``TLS_CONFIG`` naming the variable whose file is unusable.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=kafka.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaConnectError(
            "TLS_CONFIG", f"TASKING_KAFKA__SSL_CAFILE is not a PEM CA file ({exc})"
        ) from exc
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile is not None:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        try:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile, password=password)
        except (ssl.SSLError, OSError) as exc:
            # The message of a wrong password names no secret ("bad decrypt"): safe to show.
            raise KafkaConnectError(
                "TLS_CONFIG",
                "TASKING_KAFKA__SSL_CERTFILE/SSL_KEYFILE cannot be loaded (not PEM, key not "
                f"matching the certificate, or wrong TASKING_KAFKA__SSL_KEY_PASSWORD): {exc}",
            ) from exc
    return context


# One provider per OAuth settings object: every client of the process shares its token. The key
# is the settings' id; the provider holds the settings, so the id cannot be reused while it lives.
_PROVIDERS: weakref.WeakValueDictionary[int, OAuthTokenProvider] = weakref.WeakValueDictionary()


def token_provider(oauth: KafkaOAuthSettings) -> OAuthTokenProvider:
    """The process's token provider for these OAuth settings (created on first use)."""
    provider = _PROVIDERS.get(id(oauth))
    if provider is None:
        provider = OAuthTokenProvider(oauth)
        _PROVIDERS[id(oauth)] = provider
    return provider


class OAuthTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """SASL/OAUTHBEARER tokens from an OIDC token endpoint (client credentials grant).

    The token is fetched on the first connection, shared by every connection, and renewed
    ``refresh_margin_seconds`` (at most half its lifetime) before it expires, so a new connection
    never presents a token about to die. Concurrent connections share one renewal.

    Failure modes: the endpoint refusing the client (4xx) raises :class:`KafkaConnectError`
    ``TOKEN_REFUSED``; unreachable or 5xx raises ``TOKEN_UNAVAILABLE``; an answer without
    ``access_token`` raises ``TOKEN_REFUSED``. aiokafka fails the connection attempt with it and
    tries again on its next connection, which can be 100 ms later: after a failure the same error
    is raised again without asking the endpoint for 1, 2, 4, ... seconds (at most 30), so a
    refusing or unreachable endpoint is not hammered by every client's reconnects.
    """

    FAILURE_BACKOFF_MAX = 30.0

    def __init__(
        self,
        oauth: KafkaOAuthSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.oauth = oauth
        self._transport = transport
        self._clock = clock
        self.tokens = TokenSource(self._fetch, margin=oauth.refresh_margin_seconds, clock=clock)
        self.fetches = 0
        self._failure: KafkaConnectError | None = None
        self._failed_until = 0.0
        self._backoff = 1.0

    async def token(self) -> str:
        if self._failure is not None and self._clock() < self._failed_until:
            raise self._failure
        try:
            value = await self.tokens.get()
        except KafkaConnectError as exc:
            self._failure, self._failed_until = exc, self._clock() + self._backoff
            self._backoff = min(self._backoff * 2, self.FAILURE_BACKOFF_MAX)
            raise
        self._failure, self._backoff = None, 1.0
        return value

    def extensions(self) -> dict[str, str]:
        return dict(self.oauth.extensions)

    async def _fetch(self) -> tuple[str, float]:
        oauth = self.oauth
        secret = oauth.client_secret.get_secret_value() if oauth.client_secret else ""
        form = {"grant_type": "client_credentials"}
        if oauth.scope:
            form["scope"] = oauth.scope
        basic = oauth.auth_method == "basic"
        if not basic:
            form |= {"client_id": oauth.client_id or "", "client_secret": secret}
        self.fetches += 1
        import httpx

        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=oauth.timeout_seconds, verify=True
            ) as client:
                if basic:
                    auth = httpx.BasicAuth(oauth.client_id or "", secret)
                    response = await client.post(str(oauth.token_url), data=form, auth=auth)
                else:
                    response = await client.post(str(oauth.token_url), data=form)
        except httpx.HTTPError as exc:
            raise KafkaConnectError(
                "TOKEN_UNAVAILABLE", f"token endpoint unreachable ({type(exc).__name__})"
            ) from exc
        return _parse_token(response)


def _parse_token(response: httpx.Response) -> tuple[str, float]:
    """``(access_token, expires_in)`` from a token endpoint answer (RFC 6749 §5.1/§5.2)."""
    if response.status_code >= 500:
        raise KafkaConnectError("TOKEN_UNAVAILABLE", f"token endpoint answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code >= 400:
        # RFC 6749 §5.2 error codes (invalid_client, unauthorized_client, invalid_scope) name no secret.
        code = str(body.get("error", ""))[:64]
        raise KafkaConnectError(
            "TOKEN_REFUSED", f"token endpoint refused the client (HTTP {response.status_code} {code})".strip()
        )
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise KafkaConnectError("TOKEN_REFUSED", "token endpoint answered without an access_token")
    lifetime = _lifetime(body.get("expires_in"))
    import structlog

    structlog.get_logger(__name__).info("kafka_token_renewed", expires_in=lifetime)
    return token, lifetime


def _lifetime(expires_in: object) -> float:
    """Seconds the token lives: ``expires_in`` (a number, or a numeric string as some IdPs send),
    else 300 s (renewed early rather than presented expired)."""
    try:
        value = float(str(expires_in))
    except ValueError:
        return 300.0
    return value if 0 < value < 10**7 else 300.0
