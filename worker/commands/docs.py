"""``tasking-worker docs``: write (or ``--check``) the generated references (:mod:`worker.reference`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EXIT_FAILED = 1


def register(app: typer.Typer) -> None:
    """Add the ``docs`` command to ``app``."""
    app.command(
        "docs",
        help=(
            "Write docs/reference/ (configuration, metrics, reason codes) and the chart README "
            "from the code, or only check them (--check: exit 1 when one is stale or something "
            "has no meaning). Run in the repository's root."
        ),
        short_help="Write docs/reference/ and the chart README from the code, or only check them (--check).",
        epilog=(
            "Examples:\n\n\b\n$ tasking-worker docs            # regenerate (make docs)\n"
            "$ tasking-worker docs --check    # exit 1 when a reference is out of date (CI)"
        ),
    )(docs_command)


def docs_command(
    root: Annotated[Path, typer.Option(help="The repository's root.")] = Path("."),
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 on a difference.")] = False,
) -> None:
    """Write or check the generated references."""
    from rich.console import Console
    from rich.markup import escape

    from worker import reference

    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    problems = reference.problems()
    for problem in problems:
        errors.print(f"[yellow]{escape(problem)}[/]")
    if not check:
        written = reference.write(root)
        console.print(f"wrote {len(written)} files: {escape(', '.join(str(p) for p in written))}")
        if problems:
            raise typer.Exit(EXIT_FAILED)
        return
    stale = reference.differences(root)
    for line in stale:
        errors.print(f"[red]{escape(line)}[/]")
    if stale:
        errors.print("run `tasking-worker docs` (make docs) and commit the result")
    if stale or problems:
        raise typer.Exit(EXIT_FAILED)
    console.print("the generated references are up to date")
