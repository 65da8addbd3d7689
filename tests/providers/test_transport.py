"""The provider clients' transport: small pools behind one client, cheap idle checks, and the
same behaviour as httpx's own transport (limits, connection reuse, server-side closes)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from worker.config import HttpClientSettings
from worker.providers.http import build_client
from worker.providers.transport import PooledStream, ShardedTransport, pool_transport, readable, transport


@dataclass
class Server:
    """A keep-alive HTTP/1.1 server on loopback that answers every request after ``delay``."""

    delay: float = 0.0
    close_after_response: bool = False  # close the connection without saying so
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    in_progress: int = 0
    most_in_progress: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.in_progress += 1
                self.most_in_progress = max(self.most_in_progress, self.in_progress)
                await asyncio.sleep(self.delay)
                self.in_progress -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
                if self.close_after_response:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@asynccontextmanager
async def serving(server: Server, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """The server on loopback; its base URL (``https://localhost`` with ``tls``)."""
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    finally:
        for writer in server.writers:
            writer.close()
        listener.close()


def limits(connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def test_readable_tells_an_idle_socket_from_one_the_peer_closed() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert not readable(ours)
        theirs.close()
        assert readable(ours)  # the next read returns the end of the stream at once
    finally:
        ours.close()
    assert readable(ours)  # closed here: no descriptor
    assert readable(None)


def test_the_connections_are_split_over_pools_of_four() -> None:
    sharded = transport(limits(30))
    assert isinstance(sharded, ShardedTransport)
    sizes = [pool._pool._max_connections for pool in sharded.pools]
    assert sizes == [4, 4, 4, 4, 4, 4, 3, 3]
    assert isinstance(transport(limits(4)), httpx.AsyncHTTPTransport)


async def test_a_pool_uses_the_cheap_stream_and_reuses_its_connection() -> None:
    server = Server()
    async with serving(server) as url, httpx.AsyncClient(transport=pool_transport(limits(4))) as client:
        for _ in range(5):
            assert (await client.get(url)).text == "ok"
        pool = client._transport._pool  # type: ignore[attr-defined]
        streams = [connection._connection._network_stream for connection in pool.connections]
    assert server.connections == 1  # kept alive and reused
    assert len(streams) == 1
    assert isinstance(streams[0], PooledStream)


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    """Without the readability check the second request would be written to a dead socket."""
    server = Server(close_after_response=True)
    async with serving(server) as url, httpx.AsyncClient(transport=pool_transport(limits(4))) as client:
        for _ in range(3):
            assert (await client.get(url)).text == "ok"
            await asyncio.sleep(0.05)  # let the close reach us while the connection is idle
    assert server.connections == 3


async def test_concurrent_requests_use_every_pool_and_never_exceed_the_limit() -> None:
    server = Server(delay=0.05)
    sharded = transport(limits(16))
    assert isinstance(sharded, ShardedTransport)
    async with serving(server) as url, httpx.AsyncClient(transport=sharded) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(64)))
        assert [a.status_code for a in answers] == [200] * 64
        assert sharded.busy == [0, 0, 0, 0]  # every response closed released its pool
    assert server.most_in_progress == 16  # every pool full at once...
    assert server.most_open <= 16  # ...and never more connections than the limit


async def test_a_failed_request_releases_its_pool() -> None:
    sharded = transport(limits(16))
    assert isinstance(sharded, ShardedTransport)
    async with httpx.AsyncClient(transport=sharded, timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard port: nothing listens
    assert sharded.busy == [0, 0, 0, 0]


async def test_build_client_keeps_httpx_transport_when_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = HttpClientSettings()
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    async with build_client(settings, 32) as plain:
        assert isinstance(plain._transport, ShardedTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    async with build_client(settings, 32) as proxied:
        assert not isinstance(proxied._transport, ShardedTransport)
        assert any(m is not None for m in proxied._mounts.values())  # httpx mounted the proxy


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


async def test_https_through_the_pools_verifies_the_server_certificate() -> None:
    ca, server = trustme.CA(), Server()
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with serving(server, server_tls(ca)) as url:
        async with httpx.AsyncClient(transport=pool_transport(limits(4), trusted)) as client:
            for _ in range(3):
                assert (await client.get(url)).text == "ok"
            pool = client._transport._pool  # type: ignore[attr-defined]
            (connection,) = pool.connections
            assert connection._connection._network_stream.get_extra_info("ssl_object") is not None
        assert server.connections == 1  # one TLS connection, kept alive
        untrusted = ssl.create_default_context()  # the system's CAs do not know this one
        async with httpx.AsyncClient(transport=pool_transport(limits(4), untrusted)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    """A write that reached the server and got no answer must not look like a failed connect
    (``worker.providers.http`` reconciles the first and may resend only the second)."""
    server = Server(delay=1.0)  # longer than the client waits, short enough to end on its own
    async with (
        serving(server) as url,
        httpx.AsyncClient(transport=transport(limits(8)), timeout=0.2) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(url, json={"order": 1})
        assert server.in_progress == 1  # the request did arrive
