"""The command-line application every command registers on, and what commands share: the consoles,
the exit codes, settings and Kafka client arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

# --------------------------------------------------------------------------- commands in their own modules

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.
if TYPE_CHECKING:
    from worker.config import KafkaSettings, Settings

F = TypeVar("F", bound=Callable[..., Any])


app = typer.Typer(
    name="tasking-worker",
    help="Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


console = Console(highlight=False, soft_wrap=True)


errors = Console(stderr=True, highlight=False, soft_wrap=True)


EXIT_FAILED = 1


EXIT_BAD_INPUT = 2


EXIT_TIMEOUT = 3


EXIT_INTERRUPTED = 130


def prose(text: str) -> str:
    """A docstring as ``--help`` text: paragraphs kept, the line breaks inside them removed (the
    help renderer would keep them and wrap the lines a second time)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def command(name: str, *example_lines: str) -> Callable[[F], F]:
    """Register a command whose ``--help`` is its docstring followed by ``Examples:``."""

    def register(function: F) -> F:
        epilog = "Examples:\n\n" + "\n\n".join(example_lines)
        app.command(name, help=prose(function.__doc__ or ""), epilog=epilog)(function)
        return function

    return register


def _settings() -> Settings:
    from worker.config import load_settings
    from worker.errors import ConfigError

    try:
        return load_settings()
    except ConfigError as exc:
        errors.print(f"[red]invalid configuration:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _kafka_kwargs(kafka: KafkaSettings, bootstrap_servers: str | None) -> dict[str, Any]:
    """aiokafka client arguments for the configured cluster; ``bootstrap_servers`` overrides."""
    from worker.kafka.publisher import producer_options

    options: dict[str, Any] = producer_options(kafka)
    if bootstrap_servers:
        options["bootstrap_servers"] = bootstrap_servers
    return options
