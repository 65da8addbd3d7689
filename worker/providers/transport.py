"""The HTTP transport the provider clients use: httpx's own pools, several small ones instead
of one large one, over a network backend whose connections answer httpcore's "is this idle
socket readable?" cheaply.

Why: httpcore's pool re-examines all its connections at every request start and end, in time
quadratic in their number (a pool of 32 spent a large share of the worker's CPU there under
load); pools of 4 cost a sixty-fourth of that each. And at each of those passes it asks
each idle connection whether the server closed it (``get_extra_info("is_readable")``). The anyio
stream answers by rebuilding its table of socket attributes (with ``getpeername`` and
``getsockname`` system calls) before it polls the socket; answering cheaply alone raised the
worker's throughput by a quarter (``docs/performance.md``). :class:`PooledStream` looks the
socket up once per connection and only polls it; everything else is httpcore's.

The check itself is unchanged: an idle connection whose socket is readable (the server closed
it, or sent something unexpected) is dropped, exactly as httpcore would drop it.
"""

from __future__ import annotations

import math
import select
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
import httpx

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


SHARD_CONNECTIONS = 4
"""Connections per pool: httpcore's pool scans its connections in quadratic time at every request
start and end (``_assign_requests_to_connections``), so many small pools beat one large pool."""


def transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """A transport with ``limits``: :class:`ShardedTransport` over pools of
    :data:`SHARD_CONNECTIONS` connections, each built over :class:`PooledBackend`."""
    shards = max(1, math.ceil((limits.max_connections or SHARD_CONNECTIONS) / SHARD_CONNECTIONS))
    context = httpx.create_ssl_context()  # one for all pools: building one costs milliseconds
    if shards == 1:
        return pool_transport(limits, context)
    return ShardedTransport([pool_transport(share, context) for share in _shares(limits, shards)])


def _shares(limits: httpx.Limits, shards: int) -> list[httpx.Limits]:
    """``limits`` split in ``shards`` parts whose connection counts add up to the original."""
    total = limits.max_connections or SHARD_CONNECTIONS * shards
    keep = limits.max_keepalive_connections if limits.max_keepalive_connections is not None else total
    return [
        httpx.Limits(
            max_connections=total // shards + (i < total % shards),
            max_keepalive_connections=keep // shards + (i < keep % shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        for i in range(shards)
    ]


def pool_transport(limits: httpx.Limits, context: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport:
    """httpx's transport with ``limits`` and ``context`` (a default one when ``None``), its pool
    built over :class:`PooledBackend`.

    httpx does not expose the network backend, so the pool it builds is replaced by an identical
    one that uses ours (``tests/providers/test_transport.py`` checks it is in use, so an httpx
    upgrade that changes this fails a test instead of silently losing it).
    """
    context = context or httpx.create_ssl_context()
    http = httpx.AsyncHTTPTransport(verify=context, limits=limits)
    http._pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=PooledBackend(),
    )
    return http


class ShardedTransport(httpx.AsyncBaseTransport):
    """Requests spread over several pools, each to the one with the fewest requests in progress.

    A request is in progress from its start until its response body is closed (when its
    connection goes back to its pool), so a busy pool is never picked over an idle one and the
    total number of connections is the sum of the pools' limits.
    """

    def __init__(self, pools: list[httpx.AsyncHTTPTransport]) -> None:
        self.pools = pools
        self.busy = [0] * len(pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(range(len(self.pools)), key=self.busy.__getitem__)
        self.busy[shard] += 1
        try:
            response = await self.pools[shard].handle_async_request(request)
        except BaseException:
            self.busy[shard] -= 1
            raise
        response.stream = _Release(response.stream, self, shard)
        return response

    def release(self, shard: int) -> None:
        self.busy[shard] -= 1

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


class _Release(httpx.AsyncByteStream):
    """A response body that tells its :class:`ShardedTransport` when it is closed (once)."""

    def __init__(self, inner: Any, owner: ShardedTransport, shard: int) -> None:
        self._inner, self._shard = inner, shard
        self._owner: ShardedTransport | None = owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        if self._owner is not None:
            owner, self._owner = self._owner, None
            owner.release(self._shard)
        await self._inner.aclose()


class PooledBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams wrapped in :class:`PooledStream`."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return PooledStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return PooledStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PooledStream(httpcore.AsyncNetworkStream):
    """A connection's stream: httpcore's, with the raw socket looked up once."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return PooledStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return readable(self._socket)
        return self._inner.get_extra_info(info)


def readable(sock: socket.socket | None) -> bool:
    """Whether a read on ``sock`` would return at once (data, or the end of a closed connection).

    A socket that is gone counts as readable, so the pool drops its connection."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
