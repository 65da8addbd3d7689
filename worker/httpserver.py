"""An ASGI app served by uvicorn inside the running event loop, on a socket bound first (port 0:
a free port), for the probes, the simulators, the demo and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the worker that embeds it.

    ``uvicorn.Server.serve`` replaces the SIGTERM/SIGINT handlers and re-raises captured signals
    when it stops; inside the worker the composition root owns shutdown, so this is disabled.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ServerHandle:
    """A running HTTP server: its bound :attr:`port` and :meth:`stop`."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], port: int) -> None:
        self._server = server
        self._task = task
        self.port = port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting connections, let open requests finish (up to ``grace`` s), and return."""
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._server.force_exit = True
            await self._task


async def serve(app: Starlette, host: str, port: int) -> ServerHandle:
    """Start serving ``app`` on ``host:port`` in the running event loop.

    ``port`` 0 binds a free port; read it back from :attr:`ServerHandle.port`. The socket is
    bound here, before uvicorn starts, so a busy port raises :class:`OSError` to the caller
    (uvicorn itself would call ``sys.exit``).

    Raises:
        OSError: the address cannot be bound.
        RuntimeError: the server stopped before it started listening.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=False, server_header=False)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # surfaces the failure, if any
            raise RuntimeError("the HTTP server stopped before it started")
        await asyncio.sleep(0.01)
    return ServerHandle(server, task, sock.getsockname()[1])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP (not 0) so asyncio sets TCP_NODELAY on accepted connections; without it
    # every small response waits for Nagle's algorithm (~40 ms on loopback).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
