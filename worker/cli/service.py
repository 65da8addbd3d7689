"""``tasking-worker run``: the service."""

from __future__ import annotations

import typer

from worker.cli.base import EXIT_FAILED, _settings, command, errors, escape

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.


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
    import asyncio

    from aiokafka.errors import KafkaError

    from worker.app import run
    from worker.errors import WorkerError

    settings = _settings()
    try:
        code = asyncio.run(run(settings))
    except WorkerError as exc:  # topics not usable, an unusable TLS file: the one line says which
        errors().print(f"[red]fatal:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_FAILED) from None
    except KafkaError as exc:
        errors().print(f"[red]fatal:[/] Kafka: {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit(code)
