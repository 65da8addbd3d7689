"""Kafka security settings: combinations that cannot connect stop the start with one line naming
the variable; secrets come from files; the OAUTHBEARER token provider speaks RFC 6749 and never
shows a secret."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from worker.config import settings_from
from worker.errors import ConfigError, KafkaConnectError
from worker.kafka.connection import classify
from worker.kafka.security import OAuthTokenProvider, client_options

K = "TASKING_KAFKA__"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({f"{K}SECURITY_PROTOCOL": "SASL_SSL"}, f"{K}SASL_MECHANISM is required"),
        ({f"{K}SASL_MECHANISM": "PLAIN"}, f"{K}SASL_MECHANISM needs {K}SECURITY_PROTOCOL"),
        (
            {f"{K}SECURITY_PROTOCOL": "SASL_SSL", f"{K}SASL_MECHANISM": "SCRAM-SHA-512"},
            f"{K}SASL_USERNAME is required",
        ),
        (
            {f"{K}SECURITY_PROTOCOL": "SASL_SSL", f"{K}SASL_MECHANISM": "PLAIN", f"{K}SASL_USERNAME": "u"},
            f"{K}SASL_PASSWORD (or {K}SASL_PASSWORD_FILE) is required",
        ),
        (
            {f"{K}SECURITY_PROTOCOL": "SASL_SSL", f"{K}SASL_MECHANISM": "OAUTHBEARER"},
            f"{K}OAUTH__TOKEN_URL is required",
        ),
        ({f"{K}SSL_CAFILE": "/etc/hostname"}, f"{K}SSL_CAFILE needs {K}SECURITY_PROTOCOL SSL or SASL_SSL"),
        (
            {f"{K}SECURITY_PROTOCOL": "SSL", f"{K}SSL_CAFILE": "/no/such/ca.pem"},
            f"{K}SSL_CAFILE: no readable file",
        ),
        ({f"{K}SECURITY_PROTOCOL": "SSL", f"{K}SSL_CERTFILE": "/etc/hostname"}, "go together"),
        ({f"{K}OAUTH__EXTENSIONS": '{"a": 1}'}, f"{K}OAUTH__EXTENSIONS: must be a JSON object of strings"),
    ],
)
def test_settings_that_cannot_connect_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from(env)
    assert message in raised.value.message
    assert "\n" not in raised.value.message


def test_secrets_come_from_files_and_are_redacted(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("from-the-file\n")
    (tmp_path / "client-secret").write_text("oidc-secret")
    settings = settings_from(
        {
            f"{K}SECURITY_PROTOCOL": "SASL_SSL",
            f"{K}SASL_MECHANISM": "SCRAM-SHA-512",
            f"{K}SASL_USERNAME": "u",
            f"{K}SASL_PASSWORD": "ignored-the-file-wins",
            f"{K}SASL_PASSWORD_FILE": str(tmp_path / "password"),
            f"{K}OAUTH__CLIENT_SECRET_FILE": str(tmp_path / "client-secret"),
        }
    )
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "from-the-file"
    assert {"from-the-file", "oidc-secret"} <= set(settings.secret_values())
    assert "from-the-file" not in repr(settings)
    assert client_options(settings.kafka)["sasl_plain_password"] == "from-the-file"


def test_an_unreadable_secret_file_names_the_variable_not_the_path_content(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from({f"{K}SSL_KEY_PASSWORD_FILE": str(tmp_path / "missing")})
    assert raised.value.message.startswith(f"{K}SSL_KEY_PASSWORD_FILE: cannot read the file")


def test_a_wrong_key_password_is_a_tls_config_error(tmp_path: Path) -> None:
    import trustme
    from cryptography.hazmat.primitives import serialization

    leaf = trustme.CA().issue_cert("client")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right"),
    )
    (tmp_path / "c.pem").write_bytes(leaf.cert_chain_pems[0].bytes())
    (tmp_path / "k.pem").write_bytes(encrypted)
    settings = settings_from(
        {
            f"{K}SECURITY_PROTOCOL": "SSL",
            f"{K}SSL_CERTFILE": str(tmp_path / "c.pem"),
            f"{K}SSL_KEYFILE": str(tmp_path / "k.pem"),
            f"{K}SSL_KEY_PASSWORD": "wrong",
        }
    )
    with pytest.raises(KafkaConnectError) as raised:
        client_options(settings.kafka)
    assert raised.value.reason == "TLS_CONFIG"
    assert "wrong" not in raised.value.message.replace("or wrong TASKING", "")


def _provider(handler: httpx.MockTransport, **env: str) -> OAuthTokenProvider:
    settings = settings_from(
        {
            f"{K}SECURITY_PROTOCOL": "SASL_SSL",
            f"{K}SASL_MECHANISM": "OAUTHBEARER",
            f"{K}OAUTH__TOKEN_URL": "https://idp.example/realms/kafka/protocol/openid-connect/token",
            f"{K}OAUTH__CLIENT_ID": "tasking-worker",
            f"{K}OAUTH__CLIENT_SECRET": "s3cret-value",
            f"{K}OAUTH__SCOPE": "kafka",
            f"{K}OAUTH__EXTENSIONS": '{"logicalCluster": "lkc-1"}',
            **env,
        }
    )
    return OAuthTokenProvider(settings.kafka.oauth, transport=handler)


async def test_the_token_provider_uses_client_credentials_and_caches_the_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        # RFC 6749 §5.1 successful response
        return httpx.Response(
            200, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": "3600"}
        )

    provider = _provider(httpx.MockTransport(answer))
    assert await provider.token() == "tok-1"
    assert await provider.token() == "tok-1"
    assert len(seen) == 1
    body = seen[0].content.decode()
    assert "grant_type=client_credentials" in body
    assert "scope=kafka" in body
    assert "s3cret-value" not in body  # HTTP Basic by default
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert provider.extensions() == {"logicalCluster": "lkc-1"}
    assert 3500 < (provider.tokens.seconds_left() or 0) <= 3540  # renewed 60 s before expiry


async def test_the_post_method_sends_the_credentials_in_the_form() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 300})

    await _provider(httpx.MockTransport(answer), **{f"{K}OAUTH__AUTH_METHOD": "post"}).token()
    assert "client_secret=s3cret-value" in seen[0].content.decode()
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (401, {"error": "invalid_client"}, "TOKEN_REFUSED"),
        (400, {"error": "invalid_scope"}, "TOKEN_REFUSED"),
        (200, {"token_type": "Bearer"}, "TOKEN_REFUSED"),
        (503, {}, "TOKEN_UNAVAILABLE"),
    ],
)
async def test_a_refused_token_says_why_without_the_secret(
    status: int, body: dict[str, str], reason: str
) -> None:
    provider = _provider(httpx.MockTransport(lambda _: httpx.Response(status, json=body)))
    with pytest.raises(KafkaConnectError) as raised:
        await provider.token()
    assert raised.value.reason == reason
    assert "s3cret-value" not in raised.value.message
    if "error" in body:
        assert body["error"] in raised.value.message


def test_certificate_failures_are_told_apart() -> None:
    expired = ssl.SSLCertVerificationError(1, "certificate verify failed")
    expired.verify_message = "certificate has expired"
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert classify(expired, "k:9093").reason == "TLS_EXPIRED"
    assert classify(untrusted, "k:9093").reason == "TLS_UNTRUSTED"
    assert classify(ConnectionRefusedError(111, "refused"), "k:9093").reason == "UNREACHABLE"


async def test_a_failing_token_endpoint_is_not_hammered_by_reconnects() -> None:
    """aiokafka reconnects every 100 ms; after a refusal the provider answers the same error
    without a request until its backoff (1, 2, 4, ... s) has passed."""
    now = [0.0]
    calls: list[int] = []

    def answer(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(401, json={"error": "invalid_client"})
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 300})

    provider = _provider(httpx.MockTransport(answer))
    provider._clock = lambda: now[0]
    provider.tokens.clock = lambda: now[0]
    for tenth in range(11):  # reconnects every 100 ms for a second
        now[0] = tenth / 10
        with pytest.raises(KafkaConnectError):
            await provider.token()
    assert len(calls) == 2  # at 0 s, and at 1 s once the first backoff passed
    now[0] = 2.9  # the second backoff (2 s from 1 s) has not passed
    with pytest.raises(KafkaConnectError):
        await provider.token()
    now[0] = 3.0
    assert await provider.token() == "tok"
    assert len(calls) == 3
