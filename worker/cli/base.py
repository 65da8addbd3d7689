"""The command-line application every command registers on, and what commands share: the consoles,
the exit codes, settings and Kafka client arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

# --------------------------------------------------------------------------- commands in their own modules

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). rich too: ``--help`` is click's plain text, and the consoles
# are made on first use. Names below are for the type checker only.
if TYPE_CHECKING:
    from rich.console import Console

    from worker.config import KafkaSettings, Settings

F = TypeVar("F", bound=Callable[..., Any])


# ``--help`` in click's plain format: typer's rich format imports rich, markdown-it and pygments
# (about a third of the start of every command). ``default_map``: the group's own ``--help``
# flag, when not given, is False rather than None, which typer would coerce through a pydantic
# adapter (importing pydantic for ``status --help`` too).
HELP_SETTINGS: dict[str, Any] = {"max_content_width": 100, "default_map": {"help": False}}


app = typer.Typer(
    name="tasking-worker",
    help="Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings=HELP_SETTINGS,
)


@functools.cache
def console() -> Console:
    """The console of a command's output (standard output), made on first use."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@functools.cache
def errors() -> Console:
    """The console of a command's errors (standard error), made on first use."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """``text`` with rich markup escaped (:func:`rich.markup.escape`, imported on first use)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


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
        text = prose(function.__doc__ or "")
        # The list of commands shows the whole first paragraph (click would cut it at a width).
        short = text.split("\n\n", 1)[0]
        app.command(name, help=text, short_help=short, epilog=examples(*example_lines))(function)
        return function

    return register


def examples(*lines: str) -> str:
    """An ``Examples:`` epilog, one example a line: click's ``\\b`` marks the block as not to be
    rewrapped (the plain help formatter would join the lines into one paragraph)."""
    return "Examples:\n\n\b\n" + "\n".join(lines)


def _settings() -> Settings:
    from worker.config import load_settings
    from worker.errors import ConfigError

    try:
        return load_settings()
    except ConfigError as exc:
        errors().print(f"[red]invalid configuration:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _kafka_kwargs(kafka: KafkaSettings, bootstrap_servers: str | None) -> dict[str, Any]:
    """aiokafka client arguments for the configured cluster; ``bootstrap_servers`` overrides."""
    from worker.kafka.security import client_options

    options: dict[str, Any] = client_options(kafka)
    if bootstrap_servers:
        options["bootstrap_servers"] = bootstrap_servers
    return options
