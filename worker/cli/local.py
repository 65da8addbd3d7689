"""``tasking-worker simulate`` and ``tasking-worker demo``: everything on this machine."""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
from typing import Annotated

import typer

from worker.cli.base import EXIT_BAD_INPUT, EXIT_INTERRUPTED, command, errors, escape

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.

# ``worker.demo``'s defaults (DEFAULT_TIMEOUT, DEFAULT_SPEED), repeated so that ``--help`` does
# not import the demo (tests/unit/test_cli_lazy.py keeps them equal).
DEMO_TIMEOUT = 110.0


DEMO_SPEED = 2 * 86_400.0


# --------------------------------------------------------------------------- simulate
@command(
    "simulate",
    "$ tasking-worker simulate                                  # real-time clock, free ports",
    "$ tasking-worker simulate --speed 3600 --oneatlas-port 8701 --up42-port 8702",
    "$ tasking-worker simulate > sim.env   # then, in another shell: set -a; . ./sim.env; tasking-worker run",
)
def simulate_command(
    speed: Annotated[
        float, typer.Option(min=0.001, help="Simulated seconds per real second (3600: an hour per second).")
    ] = 1.0,
    oneatlas_port: Annotated[
        int, typer.Option(min=0, max=65535, help="OneAtlas simulator port (0: a free one).")
    ] = 0,
    up42_port: Annotated[
        int, typer.Option(min=0, max=65535, help="UP42 simulator port (0: a free one).")
    ] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run only the OneAtlas and UP42 simulators as HTTP servers, until Ctrl-C.

    Prints the TASKING_* variables (URLs and the simulators' own test credentials) that point a
    worker at them, one KEY=value line each on stdout, so the output can be sourced. Operator
    controls (studies, quotations, faults, clock) are under /_sim/ on each server.
    """
    import asyncio

    try:
        asyncio.run(_simulate(speed, host, oneatlas_port, up42_port))
    except OSError as exc:
        errors().print(f"[red]cannot listen:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        pass


async def _simulate(speed: float, host: str, oneatlas_port: int, up42_port: int) -> None:
    from worker.simulators.server import start_simulators

    sims = await start_simulators(speed, host, oneatlas_port, up42_port)
    try:
        errors().print(
            f"OneAtlas simulator on {sims.oneatlas_url}, UP42 simulator on {sims.up42_url} "
            f"(clock x{speed:g}); Ctrl-C stops them"
        )
        for name, value in sims.worker_env().items():
            typer.echo(f"{name}={shlex.quote(value)}")
        sys.stdout.flush()
        await _until_signal()
    finally:
        await sims.stop()


async def _until_signal() -> None:
    """Wait for SIGINT or SIGTERM (Ctrl-C stops the servers cleanly, not with a traceback)."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --------------------------------------------------------------------------- demo
@command(
    "demo",
    "$ tasking-worker demo                       # live table; asks you at every decision",
    "$ tasking-worker demo --auto-approve        # answers like an automated client (make demo)",
    "$ tasking-worker demo --plain --auto-approve --timeout 110   # one line per event (CI)",
)
def demo_command(
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve",
            help="Answer decisions like an automated client: approve prices within budget, reject "
            "the over-budget one, choose the first feasibility option, accept proposed "
            "acquisitions. Implied without a terminal.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up (exit 3) after this many seconds.")
    ] = DEMO_TIMEOUT,
    speed: Annotated[
        float,
        typer.Option(
            min=1,
            help="Time-lapse: simulated seconds per real second while every open order "
            "waits on its provider (172800: two days per second).",
        ),
    ] = DEMO_SPEED,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain progress lines instead of the live table; never prompts.")
    ] = False,
) -> None:
    """Run everything on this machine: embedded broker, both provider simulators, the worker and
    the sample orders of worker/samples/, with a live view and a final summary.

    Exits 0 when every sample ends in its expected status (docs/demo.md lists them), 1 when one
    does not, 3 on --timeout. Logs of the worker and the broker are kept in a temporary directory
    printed at the end.
    """
    from rich.console import Console

    from worker.demo import run
    from worker.demo.samples import DemoOptions

    options = DemoOptions(auto_approve=auto_approve, timeout=timeout, speed=speed, plain=plain)
    terminal = sys.stdout.isatty()
    # Without a terminal rich would wrap the summary at 80 columns; wide lines read better in logs.
    demo_console = Console(highlight=False, width=None if terminal else 200)
    try:
        code = run(options, demo_console)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)
