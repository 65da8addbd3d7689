"""The HTTP transport the provider clients use: httpx's own pools, several small ones instead
of one large one, over a network backend of plain asyncio streams.

Why (each measured in ``docs/performance.md``, decision in ``docs/adr/0005``):

* httpcore's pool re-examines all its connections at every request start and end, in time
  quadratic in their number; pools of 4 cost a sixty-fourth of one pool of 32 each.
* At each of those passes it asks each idle connection whether the server closed it
  (``get_extra_info("is_readable")``). httpcore's anyio stream answers by rebuilding its table of
  socket attributes with system calls; :class:`PooledStream` polls a socket looked up once.
* anyio wraps every read and write in a cancel scope and a checkpoint; asyncio's streams with
  ``asyncio.timeout`` do the same work with less.

Behaviour is httpcore's: the same pool, limits and keep-alive; an idle connection whose socket is
readable is dropped; failures are httpcore's exceptions (connect, read, write; timeout or error),
which httpx maps to its own as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import select
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Protocol

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
    """TCP connections as asyncio streams (:class:`PooledStream`), with nothing between httpcore
    and the event loop: anyio's stream wraps every read and write in a cancel scope and a
    checkpoint, which measured ~10 % of the worker's throughput (``docs/performance.md``). Unix
    sockets are not offered (the provider clients never use them)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        stream = PooledStream(reader, writer)  # asyncio sets TCP_NODELAY on TCP connections
        for option in socket_options or ():
            writer.get_extra_info("socket").setsockopt(*option)
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class PooledStream(httpcore.AsyncNetworkStream):
    """One connection over asyncio's streams, its failures as httpcore's exceptions (which httpx
    turns into its own: a failed connect is a ``ConnectError``, so a write that never left is
    known not to have taken effect).

    ``read`` returns ``b""`` at the end of the stream, as httpcore expects. The raw socket is
    looked up once, for the pool's readability checks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._socket: _HasFileno | None = writer.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return readable(self._socket)
        if info == "socket":
            return self._socket
        extra = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername"}
        return self._writer.get_extra_info(extra[info]) if info in extra else None


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


@contextlib.contextmanager
def _mapped(on_timeout: type[Exception], on_error: type[Exception]) -> Iterator[None]:
    """Timeouts and socket (or TLS) errors as the given httpcore exceptions."""
    try:
        yield
    except TimeoutError as exc:
        raise on_timeout(str(exc) or "timed out") from exc
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        raise on_error(str(exc) or type(exc).__name__) from exc


def readable(sock: _HasFileno | None) -> bool:
    """Whether a read on ``sock`` would return at once (data, or the end of a closed connection).

    A socket that is gone counts as readable, so the pool drops its connection."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
