"""Download the files of delivered products (STAC Items of ``tasking.deliveries``).

For each item, each ``data`` asset (every asset with ``all_assets``) goes to
``DEST/{item id}/{file name}``, and a copy of the item whose downloaded assets' ``href`` point at
those local files is written beside them as ``{item id}.json``.

Per file:

* A finished file is never fetched again: the transfer goes to ``{name}.part`` and is renamed
  only once complete and verified, so an existing final file (of the expected size when known)
  means "done" and costs no request.
* A ``.part`` file is resumed with ``Range: bytes={size}-`` and ``If-Range`` carrying the strong
  ``ETag`` (else the ``Last-Modified``) of the response the part started with (kept beside it in
  ``{name}.part.validator``); a ``206`` whose ``Content-Range`` starts there is appended, a ``200``
  (the file changed at the provider, or the server ignores ranges) starts over, so a file is never
  stitched from two versions. A transfer cut in
  the middle is resumed the same way, up to ``retries`` times, then the part is kept for the next
  run.
* The size (``file:size``, else ``Content-Length``) and the checksum (``file:checksum``, a
  multihash of any function ``py-multihash`` computes, or the legacy ``d510`` md5 form of older
  events: :mod:`worker.checksums`; else OneAtlas's md5 from ``HEAD``) are verified when
  known. A checksum that cannot be read or computed is reported (the file is then checked by
  size only). A mismatch after a
  resumed transfer retries once from zero (the old part may be what was wrong); otherwise the
  part is deleted and the file fails with ``CHECKSUM_MISMATCH``.
* Failures are :class:`~worker.errors.DownloadError` with a code: ``EXPIRED`` (``expires`` in the
  past, or HTTP 410), ``NOT_FOUND`` (404: removed, or expired), ``BAD_CREDENTIALS`` (401/403 after
  one token renewal), ``NOT_CONFIGURED``, ``UNTRUSTED_HOST``, ``SIZE_MISMATCH``,
  ``CHECKSUM_MISMATCH``, ``HTTP_ERROR``, ``TRANSFER_FAILED``. One file's failure does not stop the
  others.
"""

from __future__ import annotations

import asyncio
import copy
import mimetypes
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from worker import checksums
from worker.delivery.access import Access
from worker.delivery.progress import DownloadProgress
from worker.delivery.unpack import localize
from worker.errors import DownloadError
from worker.events.delivery import local_collection_href
from worker.events.stac_collections import collection, collection_ids

# Extensions for media types the providers use (``mimetypes`` knows some of them differently).
_EXTENSIONS: Final = {
    "application/zip": ".zip",
    "application/geo+json": ".geojson",
    "application/json": ".json",
    "application/xml": ".xml",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/tiff": ".tif",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

State = Literal["downloaded", "complete", "failed"]


@dataclass(frozen=True)
class AssetFile:
    """One asset to fetch: where from, where to, and what it should be."""

    item_id: str
    key: str
    href: str
    path: Path
    size: int | None = None
    checksum: str | None = None  # multihash hex


@dataclass
class FileOutcome:
    """What happened to one file. ``transferred`` counts body bytes received in this run."""

    asset: AssetFile
    state: State
    transferred: int = 0
    resumed_from: int = 0
    error: DownloadError | None = None


@dataclass
class ItemOutcome:
    item_id: str
    files: list[FileOutcome] = field(default_factory=list)
    item_path: Path | None = None

    @property
    def ok(self) -> bool:
        return all(f.state != "failed" for f in self.files)


class Downloader:
    """Downloads the assets of STAC Items with the providers' credentials.

    Args:
        client: the HTTP client (redirects followed; a cross-origin redirect drops credentials).
        access: the :class:`Access` of a provider name (``None``: no credentials).
        progress: where progress is reported.
        retries: how many times a cut transfer is resumed within one run.
        sleep: awaited between resumptions.
        now: the current time (for ``expires``).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        access: Callable[[str | None], Access],
        progress: DownloadProgress,
        *,
        retries: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._access = access
        self._progress = progress
        self._retries = retries
        self._sleep = sleep
        self._now = now

    async def item(self, item: Mapping[str, Any], dest: Path, *, all_assets: bool = False) -> ItemOutcome:
        """Download one item's assets into ``dest/{item id}/`` and write the local item beside them.

        Raises:
            DownloadError: ``NOT_CONFIGURED`` (no credentials for the item's provider: no file of
                this provider can succeed). Other failures are in the outcome, per file.
        """
        item_id = str(item["id"])
        folder = dest / safe_name(item_id)
        outcome = ItemOutcome(item_id)
        props = _object(item.get("properties"))
        access = self._access(provider_of(item))
        expired = _expired(props, self._now())
        for asset in plan(item, folder, all_assets=all_assets):
            if expired is not None:
                outcome.files.append(FileOutcome(asset, "failed", error=expired))
                continue
            try:
                outcome.files.append(await self._file(asset, access))
            except DownloadError as exc:
                if exc.code == "NOT_CONFIGURED":
                    raise
                self._progress.note(f"{asset.path.name}: {exc.code}: {exc.message}")
                outcome.files.append(FileOutcome(asset, "failed", error=exc))
        if any(f.state != "failed" for f in outcome.files):
            outcome.item_path = write_local_item(item, folder, outcome.files, note=self._progress.note)
        return outcome

    # ------------------------------------------------------------------ one file

    async def _file(self, asset: AssetFile, access: Access) -> FileOutcome:
        final = asset.path
        if final.exists() and (asset.size is None or final.stat().st_size == asset.size):
            self._progress.note(f"{final.name}: already complete, nothing to transfer")
            return FileOutcome(asset, "complete")
        final.parent.mkdir(parents=True, exist_ok=True)
        if access.head_checksum and (asset.size is None or asset.checksum is None):
            asset = await self._head(asset, access)
        part = final.with_name(final.name + ".part")
        outcome = FileOutcome(asset, "downloaded", resumed_from=_size(part))
        for fresh_start in (False, True):
            if fresh_start:
                _discard(part)
            await self._transfer(asset, access, part, outcome)
            problem = _verify(part, asset)
            if problem is not None and problem.code == "CHECKSUM_UNREADABLE":
                self._progress.note(problem.message)
                problem = None
            if problem is None:
                part.replace(final)
                _validator_file(part).unlink(missing_ok=True)
                return outcome
            if fresh_start or outcome.resumed_from == 0:
                _discard(part)
                raise problem
            self._progress.note(f"{final.name}: {problem.message}; downloading it again from the start")
        raise AssertionError("unreachable")

    async def _head(self, asset: AssetFile, access: Access) -> AssetFile:
        """Size and checksum from ``HEAD`` (OneAtlas: ``X-Ads-Checksum-Method/Value``)."""
        response = await self._send("HEAD", asset, access, {})
        if response.status_code >= 400:
            return asset  # optional: the download itself reports a real problem
        size = asset.size
        length = response.headers.get("content-length")
        if size is None and length and length.isdigit():
            size = int(length)
        checksum = asset.checksum
        method = response.headers.get("x-ads-checksum-method", "").lower()
        value = response.headers.get("x-ads-checksum-value", "").lower()
        if checksum is None and method == "md5" and re.fullmatch(r"[0-9a-f]{32}", value):
            checksum = checksums.md5_multihash(value)
        return AssetFile(asset.item_id, asset.key, asset.href, asset.path, size, checksum)

    async def _send(
        self, method: str, asset: AssetFile, access: Access, headers: Mapping[str, str]
    ) -> httpx.Response:
        """One request without a body stream (HEAD), renewing a refused token once."""
        for attempt in (1, 2):
            prepared = await access.prepare(asset.href)
            try:
                response = await self._client.request(
                    method, prepared.url, headers={**prepared.headers, **headers}
                )
            except httpx.HTTPError as exc:
                raise DownloadError("HTTP_ERROR", f"{asset.href}: {type(exc).__name__}") from None
            if response.status_code == 401 and attempt == 1 and prepared.token is not None:
                access.refused(prepared)
                continue
            _raise_for(response, asset)
            return response
        raise AssertionError("unreachable")

    async def _transfer(self, asset: AssetFile, access: Access, part: Path, outcome: FileOutcome) -> None:
        """Fetch the rest of ``part``; resumes after a cut transfer up to ``retries`` times."""
        task: list[int] = []  # the progress task, once started
        cuts, renewed = 0, False
        while True:
            offset = _size(part)
            if asset.size is not None and offset > asset.size:
                offset = _discard(part)
            if asset.size is not None and offset == asset.size and offset > 0:
                return  # the part holds every byte already: only verification is left
            prepared = await access.prepare(asset.href)
            headers = dict(prepared.headers) | _resume_headers(part, offset)
            try:
                async with self._client.stream("GET", prepared.url, headers=headers) as response:
                    if response.status_code == 401 and not renewed and prepared.token is not None:
                        access.refused(prepared)
                        renewed = True
                        continue
                    if response.status_code == 416 and offset:
                        _discard(part)  # the part does not fit the file any more: start over
                        continue
                    _raise_for(response, asset)
                    await self._receive(response, asset, part, offset, outcome, task)
                self._progress.finish(task[0], "done")
                return
            except httpx.TransportError as exc:
                cuts += 1
                if cuts > self._retries:
                    if task:
                        self._progress.finish(task[0], "interrupted")
                    raise DownloadError(
                        "TRANSFER_FAILED",
                        f"{asset.path.name}: the transfer was cut {cuts} times ({type(exc).__name__}); "
                        f"{_size(part)} bytes are kept in {part.name}, run the command again to resume",
                    ) from None
                await self._sleep(min(0.5 * 2 ** (cuts - 1), 10.0))

    async def _receive(
        self,
        response: httpx.Response,
        asset: AssetFile,
        part: Path,
        offset: int,
        outcome: FileOutcome,
        task: list[int],
    ) -> None:
        """Append (a 206 from ``offset``) or write (anything else) the body to ``part``.

        Raises:
            httpx.RemoteProtocolError: the body ended before the expected size (a cut transfer).
        """
        append = _resumable(response, offset)
        if not append:
            _keep_validator(part, response)
        start = offset if append else 0
        total = asset.size if asset.size is not None else _total(response, start)
        if not task:
            task.append(self._progress.start(asset.path.name, total, start))
        elif offset or not append:
            self._progress.restart(task[0], start, _why(offset, append))
        with _open(part, append) as sink:
            # As received (no re-chunking): a buffered chunk would be lost when the body is cut.
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
                outcome.transferred += len(chunk)
                self._progress.advance(task[0], len(chunk))
        if total is not None and _size(part) < total:
            raise httpx.RemoteProtocolError("the body ended early")


# ----------------------------------------------------------------------------- items and assets


def provider_of(item: Mapping[str, Any]) -> str | None:
    """The provider whose credentials the item's assets need (``tasking:provider``, else the
    first ``auth:schemes`` name), or ``None``."""
    props = _object(item.get("properties"))
    provider = props.get("tasking:provider")
    if isinstance(provider, str) and provider:
        return provider
    schemes = props.get("auth:schemes")
    return next(iter(schemes), None) if isinstance(schemes, dict) and schemes else None


def plan(item: Mapping[str, Any], folder: Path, *, all_assets: bool) -> list[AssetFile]:
    """The files to fetch: ``data`` assets (every asset with ``all_assets``), each with a unique
    safe file name in ``folder``."""
    assets = _object(item.get("assets"))
    files: list[AssetFile] = []
    used: set[str] = set()
    for key, asset in sorted(assets.items()):
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
            continue
        roles = asset.get("roles")
        if not all_assets and not (isinstance(roles, list) and "data" in roles):
            continue
        name = file_name(str(key), asset)
        if name in used:
            name = f"{safe_name(str(key))}-{name}"
        used.add(name)
        size = asset.get("file:size")
        checksum = asset.get("file:checksum")
        files.append(
            AssetFile(
                item_id=str(item["id"]),
                key=str(key),
                href=asset["href"],
                path=folder / name,
                size=size if isinstance(size, int) and size >= 0 else None,
                checksum=checksum.lower() if isinstance(checksum, str) else None,
            )
        )
    return files


def file_name(key: str, asset: Mapping[str, Any]) -> str:
    """A file name for an asset: its title when that is a file name (OneAtlas's zip name), else
    its key when that is one (UP42), else the last part of its href path when it has an
    extension, else the key plus the media type's extension."""
    title = asset.get("title")
    if isinstance(title, str) and Path(title).suffix and "/" not in title:
        return safe_name(title)
    if Path(key).suffix:
        return safe_name(key)  # UP42 keys are file names
    last = unquote(urlsplit(str(asset.get("href"))).path.rsplit("/", 1)[-1])
    if Path(last).suffix:
        return safe_name(last)
    media = str(asset.get("type") or "").split(";")[0].strip().lower()
    extension = _EXTENSIONS.get(media) or (mimetypes.guess_extension(media) if media else None) or ""
    return safe_name(key) + extension


def safe_name(text: str) -> str:
    """``text`` as one path component (no separators, no leading dot)."""
    name = _SAFE_NAME.sub("_", text).strip("._") or "file"
    return name[:200]


def write_local_item(
    item: Mapping[str, Any], folder: Path, files: list[FileOutcome], note: Callable[[str], None] | None = None
) -> Path:
    """Write ``{item id}.json`` in ``folder``: the item with the local files as hrefs (relative),
    without ``auth:refs`` on them, with ``file:size`` set; other assets keep their remote href.
    Downloaded archives are unpacked and their rasters added as assets, with projection and
    bands read from the files (:func:`worker.delivery.unpack.localize`); the item's collection
    document is written to ``{folder}/../collections/{id}.json``, where its ``collection`` link
    points."""
    local = copy.deepcopy(dict(item))
    assets = local.get("assets") or {}
    for outcome in files:
        if outcome.state == "failed":
            continue
        asset = assets.get(outcome.asset.key)
        if isinstance(asset, dict):
            asset["href"] = f"./{outcome.asset.path.name}"
            asset.pop("auth:refs", None)
            asset["file:size"] = outcome.asset.path.stat().st_size
            if outcome.asset.checksum is not None:
                asset["file:checksum"] = outcome.asset.checksum
    if any(o.state != "failed" for o in files):
        extensions = list(local.get("stac_extensions") or [])
        file_ext = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
        if file_ext not in extensions:
            extensions.append(file_ext)
        local["stac_extensions"] = extensions
    folder.mkdir(parents=True, exist_ok=True)
    downloaded = {o.asset.key: o.asset.path for o in files if o.state != "failed"}
    localize(local, folder, downloaded, note or (lambda _text: None))
    local["links"] = _local_links(local, folder)
    target = folder / f"{safe_name(str(item['id']))}.json"
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_bytes(orjson.dumps(local, option=orjson.OPT_INDENT_2))
    os.replace(temporary, target)
    return target


def _local_links(item: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """The links of a local item: no ``self``; ``collection`` (and ``parent``) to the collection
    document written beside the downloads; ``via`` and the others kept."""
    links = [
        link
        for link in item.get("links") or []
        if isinstance(link, dict) and link.get("rel") not in ("self", "collection", "parent", "root")
    ]
    identifier = item.get("collection")
    if isinstance(identifier, str) and identifier in collection_ids():
        write_collections_for(folder.parent / "collections", [identifier])
        href = local_collection_href(identifier)
        links[:0] = [
            {"rel": "collection", "href": href, "type": "application/json"},
            {"rel": "parent", "href": href, "type": "application/json"},
        ]
    elif identifier is not None:
        item.pop("collection", None)  # a collection field needs its collection link
    return links


def write_collections_for(dest: Path, identifiers: list[str]) -> None:
    """Write the collection documents ``identifiers`` into ``dest`` (``{id}.json``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for identifier in identifiers:
        target = dest / f"{identifier}.json"
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_bytes(orjson.dumps(collection(identifier), option=orjson.OPT_INDENT_2))
        os.replace(temporary, target)


# ----------------------------------------------------------------------------- helpers


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _expired(props: Mapping[str, Any], now: datetime) -> DownloadError | None:
    value = props.get("expires")
    if not isinstance(value, str):
        return None
    try:
        expires = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if expires.tzinfo is not None and expires <= now:
        return DownloadError("EXPIRED", f"the product expired on {value}: the provider has removed it")
    return None


def _raise_for(response: httpx.Response, asset: AssetFile) -> None:
    status = response.status_code
    if status < 400:
        return
    where = asset.path.name
    if status in (401, 403):
        raise DownloadError(
            "BAD_CREDENTIALS", f"{where}: the provider refused the credentials (HTTP {status})"
        )
    if status == 404:
        raise DownloadError("NOT_FOUND", f"{where}: not found (HTTP 404): the product expired or was removed")
    if status == 410:
        raise DownloadError("EXPIRED", f"{where}: gone (HTTP 410): the product expired")
    raise DownloadError("HTTP_ERROR", f"{where}: HTTP {status}")


def _resumable(response: httpx.Response, offset: int) -> bool:
    """Whether the answer continues the part at ``offset`` (206 from there) or replaces it."""
    if offset == 0 or response.status_code != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    return match is not None and int(match.group(1)) == offset


def _total(response: httpx.Response, start: int) -> int | None:
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("content-range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("content-length")
    return start + int(length) if length and length.isdigit() else None


def _why(offset: int, append: bool) -> str:
    if append:
        return f"resuming at byte {offset}"
    return "the server does not resume transfers: starting again from the first byte"


def _open(path: Path, append: bool) -> BinaryIO:
    return path.open("ab" if append else "wb")


def _discard(path: Path) -> int:
    """Delete a part file (and its validator); returns its new size (0)."""
    path.unlink(missing_ok=True)
    _validator_file(path).unlink(missing_ok=True)
    return 0


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _resume_headers(part: Path, offset: int) -> dict[str, str]:
    """``Range`` from ``offset``, with ``If-Range`` when the part's first response gave a
    validator (a changed file then answers 200 with all of it)."""
    if not offset:
        return {}
    headers = {"Range": f"bytes={offset}-"}
    try:
        validator = _validator_file(part).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        validator = ""
    if validator:
        headers["If-Range"] = validator
    return headers


def _keep_validator(part: Path, response: httpx.Response) -> None:
    """Remember what identifies the version a part starts with: a strong ``ETag`` (a weak one is
    not allowed in ``If-Range``), else ``Last-Modified``; nothing when the server gives neither."""
    etag = response.headers.get("etag", "").strip()
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("last-modified", "")
    target = _validator_file(part)
    if validator.strip():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(validator.strip(), encoding="utf-8")
    else:
        target.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _verify(path: Path, asset: AssetFile) -> DownloadError | None:
    """``None`` when ``path`` has the asset's size and checksum (when known), else the problem."""
    size = _size(path)
    if asset.size is not None and size != asset.size:
        return DownloadError("SIZE_MISMATCH", f"{asset.path.name}: {size} bytes, expected {asset.size}")
    if asset.checksum is None:
        return None
    try:
        expected = checksums.parse(asset.checksum)
        found = checksums.digest_of(path, expected)
    except ValueError as exc:
        return DownloadError("CHECKSUM_UNREADABLE", f"{asset.path.name}: {exc}; checked by size only")
    if found != expected.digest:
        return DownloadError(
            "CHECKSUM_MISMATCH",
            f"{asset.path.name}: {expected.function} {found.hex()} does not match the expected "
            f"{expected.digest.hex()}",
        )
    return None
