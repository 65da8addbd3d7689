"""``tasking-worker download``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.base import EXIT_INTERRUPTED, _settings, command, console, errors

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.


# --------------------------------------------------------------------------- download
@command(
    "download",
    "$ tasking-worker download req-toulouse-2025-06-001 --dest ./products",
    "$ tasking-worker download item.json             # one STAC Item (a delivery event's value)",
    "$ tasking-worker download req-42 --all-assets --plain",
)
def download_command(
    target: Annotated[str, typer.Argument(help="A requestId, or a STAC Item JSON file (ITEM.json).")],
    dest: Annotated[Path, typer.Option(help="Directory of the files (one folder per item).")] = Path(),
    all_assets: Annotated[
        bool, typer.Option("--all-assets", help="Also quicklooks, thumbnails and metadata, not only data.")
    ] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain lines instead of progress bars.")] = False,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [default: from TASKING_KAFKA__*]")
    ] = None,
) -> None:
    """Download the delivered products of a request (read from the deliveries topic) or of one
    STAC Item file, with the provider credentials of the TASKING_* variables.

    Each data asset goes to DEST/ITEM_ID/ with a progress bar (plain lines without a terminal);
    a partial file is resumed with an HTTP range; size and checksum are verified when known; a
    copy of the item whose hrefs point at the local files is written beside them. Running it
    again transfers nothing that is complete. Exits 0 when every file is there, 1 when one
    failed (expired, not found, refused credentials, checksum mismatch) or no product was found,
    2 on a bad item file or missing credentials.
    """
    import asyncio

    from worker.delivery.command import DownloadOptions, run

    settings = _settings()
    options = DownloadOptions(
        target=target,
        dest=dest,
        all_assets=all_assets,
        bars=sys.stdout.isatty() and not plain,
        bootstrap_servers=bootstrap_servers,
    )
    try:
        code = asyncio.run(run(settings, options, console(), errors()))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)
