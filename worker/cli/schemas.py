"""``tasking-worker schemas``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from worker.cli.base import EXIT_FAILED, command, console, errors, escape

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.


# --------------------------------------------------------------------------- schemas
@command(
    "schemas",
    "$ tasking-worker schemas                # regenerate schemas/",
    "$ tasking-worker schemas --check        # exit 1 when schemas/ is out of date (CI)",
)
def schemas_command(
    out: Annotated[Path, typer.Option(help="Directory of the generated files.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 when a file differs.")] = False,
) -> None:
    """Write the JSON Schemas, asyncapi.yaml and examples generated from the models."""
    from worker.events import schemafiles

    if not check:
        written = schemafiles.write(out)
        console().print(f"wrote {len(written)} files under {escape(str(out))}")
        return
    problems = schemafiles.differences(out)
    for problem in problems:
        errors().print(f"[red]{escape(str(out))}/{escape(problem)}[/]")
    if problems:
        errors().print("run `tasking-worker schemas` and commit the result")
        raise typer.Exit(EXIT_FAILED)
    console().print(f"{escape(str(out))} is up to date")
