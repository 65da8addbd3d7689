"""The ``download`` command's work, apart from its command-line parsing (``worker.cli``).

Exit codes follow the other commands: 0 every file is there; 1 a file failed (expired, not
found, refused, corrupted, cut too often), no delivered product was found, or Kafka is
unreachable; 2 bad input (an unreadable item file) or no credentials configured for a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka.errors import KafkaError

from worker.delivery.source import items_from_file, items_of_request
from worker.kafka.security import client_options

# The planning (which items, from a file or the deliveries topic) imports only the above; the
# transfer's modules (httpx, the downloader and its STAC, checksum and unpacking modules, rich's
# progress bars) are imported by :func:`run` once there is something to download.
if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from worker.config import Settings
    from worker.delivery.download import ItemOutcome

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class DownloadOptions:
    """``target`` is a requestId, or a path to a STAC Item JSON file."""

    target: str
    dest: Path = Path()
    all_assets: bool = False
    bars: bool = True  # rich bars (a terminal) or plain lines
    bootstrap_servers: str | None = None


async def run(
    settings: Settings,
    options: DownloadOptions,
    console: Console,
    errors: Console,
    *,
    client: httpx.AsyncClient | None = None,
) -> int:
    """Find the items, download them, print a summary; returns the exit code.

    ``client`` is injected by tests (an ASGI or mock transport); by default one is built with the
    ``TASKING_HTTP_CLIENT__*`` timeouts, following redirects.
    """
    found = await _items(settings, options, errors)
    if isinstance(found, int):
        return found
    import httpx
    from rich.markup import escape

    from worker.delivery.access import Credentials
    from worker.delivery.download import Downloader
    from worker.delivery.progress import BarProgress, LineProgress
    from worker.errors import DownloadError

    own = client is None
    http = client or httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.http_client.timeout_seconds, connect=settings.http_client.connect_timeout_seconds
        ),
        follow_redirects=True,
    )
    credentials = Credentials(settings, http)
    progress = BarProgress(console) if options.bars else LineProgress(console)
    outcomes: list[ItemOutcome] = []
    try:
        with progress:
            downloader = Downloader(http, credentials.for_provider, progress)
            for item in found:
                outcomes.append(await downloader.item(item, options.dest, all_assets=options.all_assets))
    except DownloadError as exc:  # no credentials configured: nothing of this provider can work
        errors.print(f"[red]{escape(exc.code)}:[/] {escape(exc.message)}")
        return EXIT_BAD_INPUT
    finally:
        await credentials.aclose()
        if own:
            await http.aclose()
    return _summary(outcomes, console, errors)


async def _items(settings: Settings, options: DownloadOptions, errors: Console) -> list[dict[str, Any]] | int:
    """The items to download, or the exit code when there are none."""
    from rich.markup import escape

    if _is_item_file(options.target):
        try:
            return items_from_file(Path(options.target))
        except ValueError as exc:
            errors.print(f"[red]bad item file:[/] {escape(str(exc))}")
            return EXIT_BAD_INPUT
    kwargs: dict[str, Any] = client_options(settings.kafka)
    if options.bootstrap_servers:
        kwargs["bootstrap_servers"] = options.bootstrap_servers
    topic = settings.topics.deliveries
    try:
        items = await items_of_request(topic, options.target, kwargs)
    except KafkaError as exc:
        errors.print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        return EXIT_FAILED
    if not items:
        errors.print(f"no delivered product for [bold]{escape(options.target)}[/] on {escape(topic)}")
        return EXIT_FAILED
    return items


def _is_item_file(target: str) -> bool:
    """A ``.json`` name or an existing file is an item file; anything else a requestId."""
    return target.endswith(".json") or Path(target).is_file()


def _summary(outcomes: list[ItemOutcome], console: Console, errors: Console) -> int:
    from rich.markup import escape

    from worker.delivery.progress import human

    files = [f for o in outcomes for f in o.files]
    moved = sum(f.transferred for f in files)
    done = sum(1 for f in files if f.state == "downloaded")
    kept = sum(1 for f in files if f.state == "complete")
    failed = [f for f in files if f.state == "failed"]
    for outcome in outcomes:
        if outcome.item_path is not None:
            console.print(f"item {escape(outcome.item_id)}: {escape(str(outcome.item_path))}", markup=False)
    for f in failed:
        assert f.error is not None
        errors.print(
            f"[red]✗ {escape(f.asset.path.name)}[/] {escape(f.error.code)}: {escape(f.error.message)}"
        )
    if not files:
        errors.print("the items have no asset to download (use --all-assets for non-data assets)")
        return EXIT_FAILED
    console.print(
        f"{done} downloaded, {kept} already complete, {len(failed)} failed; {human(moved)} transferred",
        markup=False,
    )
    return EXIT_FAILED if failed else EXIT_OK


async def download_first(
    settings: Settings, request_ids: list[str], dest: Path, console: Console, *, bars: bool
) -> int:
    """Download one delivered product: the first item of the first request in ``request_ids``
    that has one on the deliveries topic (the demo's last step). Returns the exit code."""
    kwargs: dict[str, Any] = client_options(settings.kafka)
    for request_id in request_ids:
        items = await items_of_request(settings.topics.deliveries, request_id, kwargs)
        if items:
            item_file = _save(items[0], dest / f"{request_id}.delivery.json")
            console.print(f"downloading a delivered product of {request_id} into {dest}", markup=False)
            options = DownloadOptions(target=str(item_file), dest=dest, bars=bars)
            return await run(settings, options, console, console)
    console.print("[red]no delivered product to download[/]")
    return EXIT_FAILED


def _save(item: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(item))
    return path
