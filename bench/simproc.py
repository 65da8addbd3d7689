"""The provider simulators in a process of their own, for the benchmark.

A real provider is another machine; running the simulators in a child process keeps their CPU out
of the worker's event loop, so the worker's figures are the worker's. The child prints one JSON
line (URLs and the ``TASKING_*`` variables that point a worker at it) and serves until its standard
input closes. Every call is delayed by the configured latency (a ``latency`` fault on every path).

The listening socket is created with ``IPPROTO_TCP`` so that asyncio disables Nagle's algorithm
on every accepted connection (it only does so for sockets whose ``proto`` is TCP; a socket from
``socket.create_server`` has ``proto`` 0). Without it, uvicorn's separate writes of the response
head and body meet the client's delayed ACK and every call costs about 40 ms more on loopback
(``--nagle`` keeps that behaviour, to measure it).

Usage (by :class:`bench.stack.SimProcess`): ``python -m bench.simproc --latency 0.05``
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import orjson
import uvicorn
from starlette.applications import Starlette

from worker.httpserver import serve
from worker.simulators.common import Fault, SimClock, SimulatorCore
from worker.simulators.oneatlas import OneAtlasSimulator
from worker.simulators.server import RunningSimulators
from worker.simulators.up42 import Up42Simulator


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the parent ends us through standard input
        return None


async def _serve_nodelay(app: Starlette) -> tuple[_Server, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    config = uvicorn.Config(
        app, log_config=None, lifespan="off", access_log=False, server_header=False, backlog=1024
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, int(sock.getsockname()[1])


async def _start(nagle: bool) -> tuple[RunningSimulators, list[_Server]]:
    clock = SimClock(speed=1.0)
    oneatlas = OneAtlasSimulator(SimulatorCore(clock=clock), raise_on_lost_response=False)
    up42 = Up42Simulator(SimulatorCore(clock=clock))
    servers: list[_Server] = []
    if nagle:  # the project's own embedded server (worker.httpserver.serve)
        handles = [await serve(oneatlas.app, "127.0.0.1", 0), await serve(up42.app, "127.0.0.1", 0)]
        return RunningSimulators(oneatlas, up42, handles[0], handles[1]), servers
    ports = []
    for app in (oneatlas.app, up42.app):
        server, port = await _serve_nodelay(app)
        servers.append(server)
        ports.append(port)
    sims = RunningSimulators(oneatlas, up42, _Port(ports[0]), _Port(ports[1]))  # type: ignore[arg-type]
    return sims, servers


class _Port:
    """Stands in for a ``ServerHandle`` where only ``port`` is read."""

    def __init__(self, port: int) -> None:
        self.port = port


async def _run(latency: float, nagle: bool) -> None:
    sims, servers = await _start(nagle)
    if latency > 0:
        for core in (sims.oneatlas.core, sims.up42.core):
            core.inject(Fault(kind="latency", delay=latency, times=None))
    hello = {"oneatlas_url": sims.oneatlas_url, "up42_url": sims.up42_url, "env": sims.worker_env()}
    sys.stdout.buffer.write(orjson.dumps(hello) + b"\n")
    sys.stdout.flush()
    # Standard input closing (the parent calling stop, or exiting) ends the process.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    for server in servers:
        server.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every call")
    parser.add_argument(
        "--nagle", action="store_true", help="serve through worker.httpserver.serve (Nagle left on)"
    )
    args = parser.parse_args()
    asyncio.run(_run(args.latency, args.nagle))


if __name__ == "__main__":
    main()
