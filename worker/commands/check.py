"""``tasking-worker check``: can this configuration run the worker? (Helm test hook, init container)

Connects with the configured settings (``TASKING_*``: the same security as the worker), then
checks the contract topics exactly as the worker does before it joins its group
(``worker.kafka.topics``). Prints one line per check and exits 0 when all pass, 1 when one fails
(the connection included), 2 on invalid configuration. Never creates a topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

# Imported when the command runs, not when the command line is built (``--help`` stays quick:
# rich too).
if TYPE_CHECKING:
    from worker.config import Settings
    from worker.kafka.topics import Check

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to ``app``."""
    app.command(
        "check",
        help=(
            "Connect with the configured settings and check the contract topics as the worker does "
            "at start: every topic exists (unless TASKING_KAFKA__CREATE_TOPICS), requests, commands "
            "and state have the same partition count, the state topic is compacted (where readable). "
            "One line per check; exit 0 when every check passes, 1 when one fails, 2 on invalid "
            "configuration. Usable as a Helm test hook or an init container."
        ),
        short_help=(
            "Connect with the configured settings and check the contract topics as the worker does "
            "at start (one line per check)."
        ),
        epilog="Examples:\n\n\b\n$ tasking-worker check    # one line per check; exit 1 when one fails",
    )(check_command)


def check_command() -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    lines, ok = check(_load_settings())
    for line in lines:
        console.print(escape(line))
    raise typer.Exit(0 if ok else EXIT_FAILED)


def _load_settings() -> Settings:
    """The settings, or exit 2 with the one line naming the variable (as every command does)."""
    from rich.console import Console
    from rich.markup import escape

    from worker.config import load_settings
    from worker.errors import ConfigError

    try:
        return load_settings()
    except ConfigError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[red]invalid configuration:[/] {escape(exc.message)}"
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None


async def run_checks(settings: Settings) -> list[Check]:
    """Every check, in order; stops after a failed connection (nothing else can be read)."""
    from aiokafka.errors import KafkaError

    from worker.errors import KafkaConnectError
    from worker.kafka.connection import probe
    from worker.kafka.topics import Check, admin_client, inspect_layout, layout_checks

    kafka = settings.kafka
    try:
        await probe(kafka)
    except KafkaConnectError as exc:
        return [Check("connect", False, f"{exc.reason}: {exc.message}")]
    checks = [Check("connect", True, f"{kafka.bootstrap_servers} ({kafka.security_protocol.value})")]
    admin = admin_client(kafka)
    try:
        await admin.start()
        layout = await inspect_layout(admin, settings.topics)
    except (KafkaError, OSError) as exc:
        return [*checks, Check("metadata", False, f"cannot read topic metadata: {type(exc).__name__}")]
    finally:
        await admin.close()
    return checks + layout_checks(layout, settings.topics, create_topics=kafka.create_topics)


def check(settings: Settings) -> tuple[list[str], bool]:
    """The lines to print and whether every check passed."""
    import asyncio

    checks = asyncio.run(run_checks(settings))
    return [c.line() for c in checks], all(c.ok for c in checks)
