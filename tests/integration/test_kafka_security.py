"""Every security mode the settings offer, for real: aiokafka's own TLS handshakes and SASL
exchanges against the gateway of ``kafka_gateway.py`` (TLS and SASL terminated in asyncio in front
of a plaintext tansu that advertises the gateway), tokens from a real OIDC endpoint, certificates
from a throwaway CA. The worker runs orders end to end over each mode; the failures an operator
makes each come back as one reason.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
import trustme
from cryptography.hazmat.primitives import serialization
from harness import Collector, Stack, oneatlas_request, running_worker, topic_env
from kafka_gateway import KafkaGateway, Mode
from oidc_server import OidcServer

from worker.config import Settings, TopicSettings, settings_from
from worker.errors import KafkaConnectError
from worker.kafka.broker import EmbeddedBroker, free_port
from worker.kafka.connection import connect_with_retry, probe
from worker.kafka.security import client_options, token_provider
from worker.kafka.topics import ensure_topics
from worker.simulators.server import start_simulators

pytestmark = pytest.mark.integration

KEY_PASSWORD = "key-pass-3141"


@dataclass
class Pki:
    dir: Path
    ca: trustme.CA
    other_ca: trustme.CA
    server: trustme.LeafCert
    expired: trustme.LeafCert
    client: trustme.LeafCert

    def write(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def server_context(
        self, leaf: trustme.LeafCert | None = None, *, require_client: bool = False
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or self.server).configure_cert(context)
        if require_client:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context


@dataclass
class Secured:
    broker: EmbeddedBroker
    gateway: KafkaGateway
    oidc: OidcServer
    pki: Pki
    files: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"


@pytest.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Secured]:
    """One tansu behind one gateway (reconfigured per test), one OIDC endpoint, one PKI."""
    directory = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    pki = Pki(
        directory,
        ca,
        other,
        ca.issue_cert("127.0.0.1", "localhost"),
        ca.issue_cert("127.0.0.1", not_before=past, not_after=past + datetime.timedelta(days=30)),
        ca.issue_cert("tasking-worker@example.test", common_name="tasking-worker"),
    )
    key = serialization.load_pem_private_key(pki.client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
    )
    files = {
        "ca": pki.write("ca.pem", ca.cert_pem.bytes()),
        "other_ca": pki.write("other-ca.pem", other.cert_pem.bytes()),
        "client_cert": pki.write("client.pem", b"".join(b.bytes() for b in pki.client.cert_chain_pems)),
        "client_key": pki.write("client-key.pem", encrypted),
        "key_password": pki.write("key-password", KEY_PASSWORD.encode() + b"\n"),
        "sasl_password": pki.write("sasl-password", b"scram-secret-512\n"),
    }
    port = free_port()
    gateway = KafkaGateway(port, upstream_port=0)
    await gateway.start()  # first, open: the broker's readiness probe comes through it
    oidc = OidcServer()
    await oidc.start()
    async with EmbeddedBroker(advertised_port=port) as broker:
        gateway.upstream_port = broker.port
        await broker._wait_ready(20)
        files["oidc_secret"] = pki.write("oidc-secret", oidc.client_secret.encode())
        yield Secured(broker, gateway, oidc, pki, files)
    await gateway.stop()
    await oidc.stop()


USERS = {"alice": "plain-secret", "bob": "scram-secret-256", "carol": "scram-secret-512"}


def _modes(s: Secured) -> dict[str, tuple[Mode, dict[str, str]]]:
    """name -> (what the gateway requires, the worker's TASKING_KAFKA__* variables)."""
    f, k = s.files, "TASKING_KAFKA__"
    tls = {f"{k}SSL_CAFILE": f["ca"]}
    oauth = {
        f"{k}SASL_MECHANISM": "OAUTHBEARER",
        f"{k}OAUTH__TOKEN_URL": s.oidc.url,
        f"{k}OAUTH__CLIENT_ID": s.oidc.client_id,
        f"{k}OAUTH__CLIENT_SECRET_FILE": f["oidc_secret"],
        f"{k}OAUTH__SCOPE": s.oidc.scope,
        f"{k}OAUTH__EXTENSIONS": '{"logicalCluster": "lkc-test", "identityPoolId": "pool-1"}',
    }
    return {
        "ssl": (Mode(tls=s.pki.server_context()), {f"{k}SECURITY_PROTOCOL": "SSL", **tls}),
        "ssl-mutual-encrypted-key": (
            Mode(tls=s.pki.server_context(require_client=True)),
            {
                f"{k}SECURITY_PROTOCOL": "SSL",
                **tls,
                f"{k}SSL_CERTFILE": f["client_cert"],
                f"{k}SSL_KEYFILE": f["client_key"],
                f"{k}SSL_KEY_PASSWORD_FILE": f["key_password"],
            },
        ),
        "sasl-plaintext-plain": (
            Mode(mechanisms=("PLAIN",), users=USERS),
            {
                f"{k}SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                f"{k}SASL_MECHANISM": "PLAIN",
                f"{k}SASL_USERNAME": "alice",
                f"{k}SASL_PASSWORD": "plain-secret",
            },
        ),
        "sasl-plaintext-scram-sha-256": (
            Mode(mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512"), users=USERS),
            {
                f"{k}SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                f"{k}SASL_MECHANISM": "SCRAM-SHA-256",
                f"{k}SASL_USERNAME": "bob",
                f"{k}SASL_PASSWORD": "scram-secret-256",
            },
        ),
        "sasl-ssl-scram-sha-512": (
            Mode(tls=s.pki.server_context(), mechanisms=("SCRAM-SHA-512",), users=USERS),
            {
                f"{k}SECURITY_PROTOCOL": "SASL_SSL",
                **tls,
                f"{k}SASL_MECHANISM": "SCRAM-SHA-512",
                f"{k}SASL_USERNAME": "carol",
                f"{k}SASL_PASSWORD_FILE": f["sasl_password"],
            },
        ),
        "sasl-ssl-plain": (  # Confluent Cloud API keys, Event Hubs connection strings
            Mode(tls=s.pki.server_context(), mechanisms=("PLAIN", "SCRAM-SHA-512"), users=USERS),
            {
                f"{k}SECURITY_PROTOCOL": "SASL_SSL",
                **tls,
                f"{k}SASL_MECHANISM": "PLAIN",
                f"{k}SASL_USERNAME": "alice",
                f"{k}SASL_PASSWORD": "plain-secret",
            },
        ),
        "sasl-ssl-scram-sha-256-mutual": (
            Mode(tls=s.pki.server_context(require_client=True), mechanisms=("SCRAM-SHA-256",), users=USERS),
            {
                f"{k}SECURITY_PROTOCOL": "SASL_SSL",
                **tls,
                f"{k}SSL_CERTFILE": f["client_cert"],
                f"{k}SSL_KEYFILE": f["client_key"],
                f"{k}SSL_KEY_PASSWORD": KEY_PASSWORD,
                f"{k}SASL_MECHANISM": "SCRAM-SHA-256",
                f"{k}SASL_USERNAME": "bob",
                f"{k}SASL_PASSWORD": "scram-secret-256",
            },
        ),
        "sasl-plaintext-oauthbearer-post": (
            Mode(mechanisms=("OAUTHBEARER",), token_check=s.oidc.check),
            {
                f"{k}SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                **{n: v for n, v in oauth.items() if not n.endswith("EXTENSIONS")},
                f"{k}OAUTH__AUTH_METHOD": "post",
            },
        ),
        "sasl-ssl-oauthbearer": (
            Mode(
                tls=s.pki.server_context(),
                mechanisms=("OAUTHBEARER",),
                token_check=s.oidc.check,
                required_extensions={"logicalCluster": "lkc-test", "identityPoolId": "pool-1"},
            ),
            {f"{k}SECURITY_PROTOCOL": "SASL_SSL", **tls, **oauth},
        ),
    }


MODES = [
    "ssl",
    "ssl-mutual-encrypted-key",
    "sasl-plaintext-plain",
    "sasl-plaintext-scram-sha-256",
    "sasl-ssl-scram-sha-512",
    "sasl-ssl-oauthbearer",
]


def _settings(s: Secured, env: dict[str, str], topics: TopicSettings | None = None) -> Settings:
    return settings_from(
        {
            "TASKING_KAFKA__BOOTSTRAP_SERVERS": s.bootstrap_servers,
            **env,
            **topic_env(topics or TopicSettings()),
        }
    )


# Each of these completes its handshake (not a full order run: the code paths are the ones above).
HANDSHAKE_ONLY = ["sasl-ssl-plain", "sasl-ssl-scram-sha-256-mutual", "sasl-plaintext-oauthbearer-post"]


@pytest.mark.parametrize("name", MODES + HANDSHAKE_ONLY)
async def test_each_mode_handshakes_and_reads_the_topics(
    secured: Secured, name: str, unique_topics: TopicSettings
) -> None:
    mode, env = _modes(secured)[name]
    secured.gateway.configure(mode)
    settings = _settings(secured, {**env, "TASKING_KAFKA__CREATE_TOPICS": "true"}, unique_topics)
    await probe(settings.kafka)
    layout = await ensure_topics(settings.kafka, settings.topics)  # the admin client, same security
    assert set(layout.partitions) == set(unique_topics.all())
    assert secured.gateway.stats.tls_failures == 0
    assert secured.gateway.stats.refused == 0
    if mode.mechanisms:
        assert set(secured.gateway.stats.mechanisms_used) == {settings.kafka.sasl_mechanism}
        assert secured.gateway.stats.authenticated >= 2  # the probe and the admin client


@pytest.mark.parametrize("name", MODES)
async def test_the_worker_runs_orders_over(secured: Secured, name: str, unique_topics: TopicSettings) -> None:
    mode, env = _modes(secured)[name]
    secured.gateway.configure(mode)
    kafka_env = {**env, "TASKING_KAFKA__CREATE_TOPICS": "true", "TASKING_KAFKA__PARTITIONS": "2"}
    settings = _settings(secured, kafka_env, unique_topics)
    options = {k: v for k, v in client_options(settings.kafka).items() if k != "bootstrap_servers"}
    sims = await start_simulators()
    stack = Stack(
        secured, sims, unique_topics, group_id=f"g-sec-{name}", extra_env=kafka_env, client_options=options
    )  # type: ignore[arg-type]
    events = Collector(secured.bootstrap_servers, unique_topics, options)
    try:
        async with running_worker(stack):
            await events.start()
            await stack.publish(oneatlas_request(f"sec-{name}", dryRun=True))
            await events.wait_status(f"sec-{name}", "QUOTED", timeout=60)
        assert [e["status"] for e in events.status[f"sec-{name}"]][-1] == "QUOTED"
        assert secured.gateway.stats.refused == 0
        if mode.mechanisms:
            assert secured.gateway.stats.mechanisms_used
            assert set(secured.gateway.stats.mechanisms_used) == {settings.kafka.sasl_mechanism}
    finally:
        await events.stop()
        await sims.stop()


async def test_an_expiring_token_is_renewed_without_a_reconnect_storm(
    secured: Secured, unique_topics: TopicSettings
) -> None:
    """Tokens live 4 s; the gateway ends every session when its token expires. Over three token
    lifetimes the worker keeps working, presents no expired token, and fetches about one token
    per half-lifetime: not one per connection, not one per retry."""
    mode, env = _modes(secured)["sasl-ssl-oauthbearer"]
    secured.gateway.configure(mode)
    secured.oidc.lifetime = 4.0
    requests_before = secured.oidc.requests
    kafka_env = {**env, "TASKING_KAFKA__CREATE_TOPICS": "true", "TASKING_KAFKA__PARTITIONS": "1"}
    settings = _settings(secured, kafka_env, unique_topics)
    options = {k: v for k, v in client_options(settings.kafka).items() if k != "bootstrap_servers"}
    sims = await start_simulators()
    stack = Stack(
        secured, sims, unique_topics, group_id="g-sec-renewal", extra_env=kafka_env, client_options=options
    )  # type: ignore[arg-type]
    events = Collector(secured.bootstrap_servers, unique_topics, options)
    loop = asyncio.get_running_loop()
    try:
        async with running_worker(stack):
            started = loop.time()
            await events.start()
            await stack.publish(oneatlas_request("renew-1", dryRun=True))
            await events.wait_status("renew-1", "QUOTED", timeout=60)
            # three lifetimes: sessions end, tokens renew
            await asyncio.sleep(max(0.0, 12.5 - (loop.time() - started)))
            await stack.publish(oneatlas_request("renew-2", dryRun=True))
            await events.wait_status("renew-2", "QUOTED", timeout=60)
            elapsed = loop.time() - started
        stats = secured.gateway.stats
        fetched = secured.oidc.requests - requests_before
        print(  # figures, not assertions on time
            f"renewal: {elapsed:.1f}s, {fetched} token fetches, {stats.expired_sessions} sessions ended on "
            f"expiry, {stats.authenticated} authentications, {stats.connections} connections"
        )
        assert stats.expired_sessions >= 2  # sessions did end on expiry: reconnection really ran
        assert stats.refused == 0  # no connection ever presented an expired token
        # Renewed at half-life (2 s), shared: about elapsed / 2 fetches (+ the test clients' own).
        assert fetched <= 2 * (elapsed / 2 + 2)
        assert stats.authenticated >= stats.expired_sessions
    finally:
        secured.oidc.lifetime = 300.0
        await events.stop()
        await sims.stop()


def _failing(s: Secured) -> dict[str, tuple[Mode, dict[str, str], str]]:
    modes = _modes(s)
    k = "TASKING_KAFKA__"
    scram = modes["sasl-ssl-scram-sha-512"]
    oauth = modes["sasl-ssl-oauthbearer"]
    return {
        "wrong password": (
            scram[0],
            {**scram[1], f"{k}SASL_PASSWORD_FILE": s.files["oidc_secret"]},
            "AUTHENTICATION_FAILED",
        ),
        "mechanism not enabled": (
            modes["sasl-plaintext-plain"][0],
            {**modes["sasl-plaintext-scram-sha-256"][1]},
            "AUTHENTICATION_FAILED",
        ),
        "unknown CA": (scram[0], {**scram[1], f"{k}SSL_CAFILE": s.files["other_ca"]}, "TLS_UNTRUSTED"),
        "expired certificate": (
            Mode(tls=s.pki.server_context(s.pki.expired)),
            modes["ssl"][1],
            "TLS_EXPIRED",
        ),
        "client certificate missing": (
            modes["ssl-mutual-encrypted-key"][0],
            modes["ssl"][1],
            "TLS_HANDSHAKE",
        ),
        "token refused by the endpoint": (
            oauth[0],
            {**oauth[1], f"{k}OAUTH__CLIENT_SECRET_FILE": s.files["sasl_password"]},
            "TOKEN_REFUSED",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong password",
        "mechanism not enabled",
        "unknown CA",
        "expired certificate",
        "client certificate missing",
        "token refused by the endpoint",
    ],
)
async def test_a_failed_connection_says_why(secured: Secured, case: str) -> None:
    mode, env, reason = _failing(secured)[case]
    secured.gateway.configure(mode)
    settings = _settings(secured, env)
    with pytest.raises(KafkaConnectError) as raised:
        await probe(settings.kafka, timeout=5)
    assert raised.value.reason == reason, raised.value.message
    for secret in settings.secret_values():
        assert secret not in raised.value.message


async def test_an_unreachable_bootstrap_server_says_so() -> None:
    settings = settings_from({"TASKING_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    with pytest.raises(KafkaConnectError) as raised:
        await probe(settings.kafka, timeout=3)
    assert raised.value.reason == "UNREACHABLE"
    assert "127.0.0.1" in raised.value.message


class _Readiness:
    def __init__(self) -> None:
        self.problems: list[str | None] = []

    def set_kafka_problem(self, problem: str | None) -> None:
        self.problems.append(problem)


async def test_start_retries_with_backoff_one_line_and_a_readiness_reason_per_failure(
    secured: Secured,
) -> None:
    """A wrong password is fixed while the worker waits: each failure was one log line (no
    stack trace) and the readiness reason; the next attempt connects and clears it."""
    mode, env = _modes(secured)["sasl-ssl-scram-sha-512"]
    users = dict(USERS, carol="rotated-later")
    secured.gateway.configure(Mode(tls=mode.tls, mechanisms=mode.mechanisms, users=users))
    settings = _settings(secured, {**env, "TASKING_KAFKA__CONNECT_BACKOFF_MAX_SECONDS": "1"})
    readiness = _Readiness()
    attempts = 0

    async def attempt(kafka: Any) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:  # the operator fixed the Secret
            secured.gateway.mode.users["carol"] = "scram-secret-512"
        await probe(kafka, timeout=5)

    with structlog.testing.capture_logs() as logs:
        assert await connect_with_retry(settings.kafka, readiness, attempt=attempt)
    failures = [e for e in logs if e["event"] == "kafka_connect_failed"]
    assert [e["reason"] for e in failures] == ["AUTHENTICATION_FAILED"] * 2
    assert all("exc_info" not in e and "scram-secret" not in str(e) for e in failures)
    assert [e["retry_in"] for e in failures] == [1.0, 1.0]
    assert readiness.problems[:2] == [readiness.problems[0]] * 2
    assert readiness.problems[0] is not None
    assert readiness.problems[0].startswith("AUTHENTICATION_FAILED")
    assert readiness.problems[-1] is None


async def test_one_token_serves_every_client_of_the_process(secured: Secured) -> None:
    mode, env = _modes(secured)["sasl-ssl-oauthbearer"]
    secured.gateway.configure(mode)
    settings = _settings(secured, env)
    before = secured.oidc.requests
    provider: Callable[[], Any] = lambda: token_provider(settings.kafka.oauth)  # noqa: E731
    assert provider() is provider()
    await probe(settings.kafka)
    await probe(settings.kafka)
    assert secured.oidc.requests - before == 1


async def test_the_service_process_says_why_in_readyz_and_one_line_per_attempt(
    secured: Secured, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    """``tasking-worker run`` with a CA that did not sign the server certificate: not ready with
    the reason, one log line per attempt and no stack trace, and SIGTERM still stops it (0)."""
    import httpx
    from harness import spawn_worker

    mode, env, _ = _failing(secured)["unknown CA"]
    secured.gateway.configure(mode)
    sims = await start_simulators()
    stack = Stack(secured, sims, unique_topics, group_id="g-sec-proc", extra_env=env)  # type: ignore[arg-type]
    process = spawn_worker(stack, tmp_path / "worker.log")
    try:
        reason = ""
        async with httpx.AsyncClient() as client:
            for _ in range(300):  # up to a minute for the process to start on a loaded machine
                await asyncio.sleep(0.2)
                try:
                    answer = await client.get(f"http://127.0.0.1:{process.http_port}/readyz")
                except httpx.TransportError:
                    continue
                reason = answer.json()["checks"].get("kafka", "")
                if reason:
                    assert answer.status_code == 503
                    break
        await asyncio.sleep(1.5)  # a second attempt (backoff 1 s)
        assert reason.startswith("TLS_UNTRUSTED: ")
        assert await asyncio.to_thread(process.terminate, 30) == 0
    finally:
        if process.process.poll() is None:
            process.kill()
        await sims.stop()
    lines = process.log_text().splitlines()
    failures = [line for line in lines if '"kafka_connect_failed"' in line]
    assert len(failures) >= 2
    assert all('"reason":"TLS_UNTRUSTED"' in line.replace(" ", "") for line in failures), failures[:1]
    assert not [line for line in lines if "Traceback" in line]
