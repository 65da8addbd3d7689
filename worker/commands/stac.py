"""``tasking-worker stac collections``: the STAC Collection documents of delivered items.

Prints every collection (``worker.events.stac_collections``) as one JSON object
``{"collections": [...], "links": []}`` (the shape of a STAC API ``/collections`` answer), or,
with ``--dest DIR``, writes ``DIR/{id}.json`` for each and prints where they are. With
``TASKING_STAC__BASE_URL`` set, the documents link ``self``/``root``/``parent`` under it.
Exits 2 on an invalid configuration (one message naming the variable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

stac_app = typer.Typer(
    name="stac",
    help="The project's STAC documents (collections of the delivered items).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help, as the main command line (worker.cli.base)
    context_settings={"max_content_width": 100, "default_map": {"help": False}},
)


def write_collections(dest: Path, base_url: str | None) -> list[Path]:
    """Write every collection document to ``dest/{id}.json``; returns the paths."""
    from worker.events.stac_collections import collections

    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for document in collections(base_url):
        path = dest / f"{document['id']}.json"
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        paths.append(path)
    return paths


@stac_app.command("collections")
def collections_command(
    dest: Annotated[
        Path | None, typer.Option(help="Write one DIR/{id}.json per collection instead of printing them.")
    ] = None,
) -> None:
    """Print the STAC Collection of every provider and constellation (oneatlas-pleiades,
    oneatlas-spot, oneatlas-pleiades-neo, up42-..., and {provider}-other): extent, license,
    providers and roles, item_assets and summaries of the bands."""
    from rich.console import Console
    from rich.markup import escape

    from worker.config import load_settings
    from worker.errors import ConfigError
    from worker.events.stac_collections import collections

    console = Console(highlight=False, soft_wrap=True)
    try:
        settings = load_settings()
    except ConfigError as exc:
        Console(stderr=True).print(f"[red]invalid configuration:[/] {escape(exc.message)}")
        raise typer.Exit(2) from None
    base = str(settings.stac.base_url) if settings.stac.base_url else None
    if dest is not None:
        for path in write_collections(dest, base):
            console.print(str(path))
        return
    answer = {"collections": collections(base), "links": []}
    console.print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode(), markup=False)
