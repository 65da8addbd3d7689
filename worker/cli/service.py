"""``tasking-worker run``: the service."""

from __future__ import annotations

import asyncio

import typer
from aiokafka.errors import KafkaError
from rich.markup import escape

from worker.cli.base import EXIT_FAILED, _settings, command, errors


# --------------------------------------------------------------------------- run
@command(
    "run",
    "$ TASKING_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 TASKING_ONEATLAS__API_KEY=... tasking-worker run",
    "$ TASKING_LOG_FORMAT=console TASKING_HTTP__PORT=9090 tasking-worker run",
)
def run_command() -> None:
    """Run the worker service (configuration from TASKING_* variables).

    Exits 0 after a graceful drain on SIGTERM/SIGINT, 2 on invalid configuration, 1 on a fatal
    error. Logs one JSON object per line to stdout.

    """
    from worker.app import run

    settings = _settings()
    try:
        code = asyncio.run(run(settings))
    except KafkaError as exc:
        errors.print(f"[red]fatal:[/] Kafka: {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit(code)
