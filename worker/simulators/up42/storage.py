"""UP42 storage in the simulator: delivered assets, their STAC collections and items, downloads.

Shaped like the reference (``docs/providers/up42.md`` "Delivery"): an order's delivery is an
UP42 *asset* (a zip in storage) listed by ``GET /v2/assets`` (Spring page; ``createdAfter``,
``sort=createdAt,asc|desc``, ``search``); each asset is one STAC *collection* holding the
"Original Delivery" archive (roles ``data``, ``original``) and one STAC *item* per scene with
per-file assets (CNAM). Items appear only once the asset's metadata extraction is done
(``geospatialMetadataExtractionStatus`` ``IN_PROGRESS`` → ``SUCCESSFUL``), some simulated time
after the upload, so an order can be ``FULFILLED`` before its items are listed.

STAC API: the root catalog ``GET /v2/assets/stac/`` (``conformsTo`` and links, as pystac-client
needs them), ``POST /v2/assets/stac/search`` (CQL2 JSON: ``=``, ``in``, ``and``, ``or``, on item
properties and on the queryable aliases ``order_id`` and ``asset_id``; the old SDK key
``up42-order:order_id`` matches nothing, as it most likely does at UP42), ``next`` links for
paging, collections and items by id.

Downloads: ``GET /v2/assets/{id}`` (bearer; ``Range`` and ``If-Range`` against the ``ETag``
supported) for assets and for STAC asset
ids; ``POST /v2/assets/{id}/download-url`` answers ``{"url": …}``, a signed-looking URL that this
app serves without a token for :attr:`Up42Storage.signed_url_lifetime` simulated seconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.common import iso
from worker.simulators.rasters import MS_PIXELS, dimap_zip, geotiff, raster_projection

Json = dict[str, Any]
FILE_SIZE = 64 * 1024
ZIP_SIZE = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
]
ALIASES = {"order_id": "up42-order:id", "asset_id": "up42-system:asset_id"}


def content_of(file_id: str, size: int) -> bytes:
    """The deterministic bytes of a stored file."""
    seed = hashlib.sha256(file_id.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def md5_multihash(data: bytes) -> str:
    """``file:checksum`` form: multihash md5 (varint ``d5 01``, length ``10``, digest), hex."""
    return "d50110" + hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass
class StoredAsset:
    """One delivered UP42 asset (zip) with its collection and items."""

    id: str
    order_id: str
    workspace_id: str
    created_at: datetime
    extracted_at: datetime | None  # None: extraction never finishes
    name: str
    collection: Json
    items: list[Json] = field(default_factory=list)
    failed: bool = False
    listed_at: datetime | None = None  # not in ``GET /v2/assets`` before (a lagging search index)


@dataclass
class Up42Storage:
    """The simulator's storage: assets, STAC collections and items, files and signed URLs."""

    now: Callable[[], datetime]
    uuid: Callable[[], str]
    signed_url_lifetime: float = 30.0
    assets: dict[str, StoredAsset] = field(default_factory=dict)
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # file id -> (size, name)
    signed: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # token -> (file id, expiry)
    contents: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes made for it (GeoTIFFs)
    revisions: dict[str, int] = field(default_factory=dict)  # file id -> version (``revise``)

    # ------------------------------------------------------------------ content

    def store(
        self,
        *,
        order_id: str,
        workspace_id: str,
        product_id: str,
        geometry: Json,
        at: datetime,
        scenes: list[Json],
        extraction_delay: float = 0.0,
        extracted: int | None = None,
        failed: bool = False,
    ) -> StoredAsset:
        """Store one delivery of ``order_id``: an asset, its collection, and one item per scene
        (``scenes``: item properties such as ``eo:cloud_cover``). Items become visible after
        ``extraction_delay`` simulated seconds; only the first ``extracted`` of them ever (all by
        default); ``failed`` makes the extraction fail (no items, ever)."""
        asset_id, collection_id = self.uuid(), self.uuid()
        prefix = asset_id[:8]
        name = f"{prefix}_oneatlas_{order_id}.zip"
        # The original delivery is the provider's DIMAP bundle, with small real GeoTIFFs.
        archive = dimap_zip(geometry, "PHR1A", 4, asset_id, ZIP_SIZE)
        self.contents[asset_id] = archive
        self.files[asset_id] = (len(archive), name)
        original = {
            name: self._file_asset(
                asset_id, "Original Delivery", "application/zip", ["data", "original"], len(archive)
            )
        }
        collection: Json = {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": collection_id,
            "title": name,
            "description": "UP42 storage asset",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [_bbox(geometry)]},
                "temporal": {"interval": [[iso(at), iso(at)]]},
            },
            "assets": original,
            "links": [],
            "up42-system:asset_id": asset_id,
        }
        ready = None if failed else at + timedelta(seconds=extraction_delay)
        stored = StoredAsset(asset_id, order_id, workspace_id, at, ready, name, collection, failed=failed)
        keep = len(scenes) if extracted is None else extracted
        for n, scene in enumerate(scenes[:keep]):
            stored.items.append(self._item(stored, product_id, geometry, at, n, scene))
        self.assets[asset_id] = stored
        return stored

    def _file_asset(self, file_id: str, title: str, media_type: str, roles: list[str], size: int) -> Json:
        return {
            "href": f"{{BASE}}/v2/assets/{file_id}",
            "title": title,
            "type": media_type,
            "roles": roles,
            "file:size": size,
            "file:checksum": md5_multihash(self.content(file_id, size)),
        }

    def content(self, file_id: str, size: int) -> bytes:
        """A stored file's bytes: the GeoTIFF or DIMAP zip made for it, else :func:`content_of`."""
        made = self.contents.get(file_id)
        return made if made is not None else content_of(file_id, size)

    def _item(
        self, stored: StoredAsset, product_id: str, geometry: Json, at: datetime, n: int, scene: Json
    ) -> Json:
        item_id = self.uuid()
        scene_name = f"DS_PHR1A_{at:%Y%m%d%H%M%S}{n}_FR1_PX_E001N43_0{n}01_00365"
        files: Json = {}
        for suffix, title, media, roles in (
            (
                "img_ms.tiff",
                "Multispectral data",
                "image/tiff; application=geotiff; profile=cloud-optimized",
                ["data", "multispectral"],
            ),
            ("stac_metadata.json", "STAC metadata", "application/json", ["metadata"]),
            ("thumbnail.png", "Thumbnail", "image/png", ["thumbnail"]),
        ):
            file_id = self.uuid()
            key = f"{stored.id[:8]}_{suffix}"
            if suffix.endswith(".tiff"):
                # A small real GeoTIFF over the scene, 4 bands (Pléiades), with its projection.
                data = geotiff(geometry, 4, MS_PIXELS, f"{file_id}:ms")
                self.contents[file_id] = data
                self.files[file_id] = (len(data), key)
                files[key] = {
                    **self._file_asset(file_id, title, media, roles, len(data)),
                    **raster_projection(data, epsg_key="proj:epsg"),
                }
                continue
            self.files[file_id] = (FILE_SIZE, key)
            files[key] = self._file_asset(file_id, title, media, roles, FILE_SIZE)
        collection = stored.collection["id"]
        base = "{BASE}/v2/assets/stac"
        return {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                "https://stac-extensions.github.io/view/v1.0.0/schema.json",
                "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            ],
            "id": item_id,
            "collection": collection,
            "geometry": geometry,
            "bbox": _bbox(geometry),
            "properties": {
                "datetime": iso(at),
                "constellation": "PHR",
                "platform": "PHR-1A",
                "gsd": 0.5,
                "proj:epsg": 32631,
                "title": scene_name,
                "up42-order:id": stored.order_id,
                "up42-order:status": "FULFILLED",
                "up42-system:asset_id": stored.id,
                "up42-system:workspace_id": stored.workspace_id,
                "up42-system:source": "TASKING",
                "up42-system:metadata_version": "0.0.4",
                "up42-product:product_id": product_id,
                "up42-product:collection_name": "phr",
                "up42-product:modality": "multispectral",
                "created": iso(at),
                "updated": iso(at),
                **scene,
            },
            "assets": files,
            "links": [
                {"rel": "self", "href": f"{base}/collections/{collection}/items/{item_id}"},
                {"rel": "collection", "href": f"{base}/collections/{collection}"},
                {"rel": "parent", "href": f"{base}/collections/{collection}"},
                {"rel": "root", "href": f"{base}/"},
            ],
        }

    def release(self, assets: Iterable[StoredAsset]) -> int:
        """Finish the extraction of ``assets`` now (their items are listed from now on)."""
        released = 0
        for stored in assets:
            if self.extraction_status(stored) != "SUCCESSFUL":
                stored.extracted_at, stored.failed = self.now(), False
                released += 1
        return released

    def extraction_status(self, stored: StoredAsset) -> str:
        if stored.failed:
            return "FAILED"
        if stored.extracted_at is None or stored.extracted_at > self.now():
            return "IN_PROGRESS"
        return "SUCCESSFUL"

    def visible_items(self) -> list[Json]:
        """Every STAC item whose asset's extraction is done, oldest asset first."""
        return [
            i
            for a in sorted(self.assets.values(), key=lambda a: a.created_at)
            if self.extraction_status(a) == "SUCCESSFUL"
            for i in a.items
        ]

    def items_of(self, order_id: str) -> list[Json]:
        return [i for i in self.visible_items() if i["properties"]["up42-order:id"] == order_id]

    def asset_json(self, stored: StoredAsset) -> Json:
        return {
            "id": stored.id,
            "workspaceId": stored.workspace_id,
            "accountId": None,
            "createdAt": iso(stored.created_at),
            "updatedAt": iso(stored.created_at),
            "name": stored.name,
            "title": stored.name,
            "size": self.files[stored.id][0],
            "contentType": "application/zip",
            "orderId": stored.order_id,
            "source": "TASKING",
            "tags": [],
            "geospatialMetadataExtractionStatus": self.extraction_status(stored),
        }

    # ------------------------------------------------------------------ HTTP handlers

    async def catalog(self, request: Request) -> Response:
        base = _base(request)
        return JSONResponse(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "up42-storage",
                "description": "UP42 storage (simulated)",
                "conformsTo": CONFORMS_TO,
                "links": [
                    {"rel": "self", "href": f"{base}/v2/assets/stac/", "type": "application/json"},
                    {"rel": "root", "href": f"{base}/v2/assets/stac/", "type": "application/json"},
                    {
                        "rel": "search",
                        "href": f"{base}/v2/assets/stac/search",
                        "type": "application/geo+json",
                        "method": "POST",
                    },
                ],
            }
        )

    async def search(self, request: Request, body: Json) -> Response:
        try:
            matches = [i for i in self.visible_items() if cql2(body.get("filter"), i)]
        except ValueError as exc:
            return _error(400, f"Unsupported filter: {exc}")
        limit = max(1, min(int(body.get("limit", 10)), 1000))
        start = int(body.get("token") or 0)
        page = matches[start : start + limit]
        links: list[Json] = []
        if start + limit < len(matches):
            links.append(
                {
                    "rel": "next",
                    "href": str(request.url),
                    "method": "POST",
                    "body": {"token": str(start + limit)},
                    "merge": True,
                }
            )
        base = _base(request)
        return JSONResponse(
            {
                "type": "FeatureCollection",
                "features": [absolute(i, base) for i in page],
                "links": links,
                "context": {"returned": len(page), "matched": len(matches), "limit": limit},
            }
        )

    async def collection(self, request: Request) -> Response:
        wanted = request.path_params["collection_id"]
        for stored in self.assets.values():
            if stored.collection["id"] == wanted:
                return JSONResponse(absolute(stored.collection, _base(request)))
        return _error(404, f"Collection {wanted} not found")

    async def collection_items(self, request: Request) -> Response:
        wanted = request.path_params["collection_id"]
        items = [i for i in self.visible_items() if i["collection"] == wanted]
        item_id = request.path_params.get("item_id")
        if item_id is not None:
            found = next((i for i in items if i["id"] == item_id), None)
            if found is None:
                return _error(404, f"Item {item_id} not found")
            return JSONResponse(absolute(found, _base(request)))
        return JSONResponse(
            {
                "type": "FeatureCollection",
                "features": [absolute(i, _base(request)) for i in items],
                "links": [],
            }
        )

    def list_assets(self, request: Request, page: int, size: int) -> list[Json]:
        """The assets ``GET /v2/assets`` answers (filtered and sorted; paging by the caller)."""
        q = request.query_params
        after = _time(q.get("createdAfter"))
        before = _time(q.get("createdBefore"))
        search = q.get("search")
        workspace = q.get("workspaceId")
        now = self.now()
        chosen = [
            a
            for a in self.assets.values()
            if (a.listed_at is None or a.listed_at <= now)
            and (after is None or a.created_at >= after)  # inclusive [I]: clients dedupe the boundary
            and (before is None or a.created_at < before)
            and (workspace is None or a.workspace_id == workspace)
            and (search is None or search in (a.order_id, a.name))
        ]
        descending = q.get("sort", "createdAt,desc").lower().endswith(",desc")
        chosen.sort(key=lambda a: (a.created_at, a.id), reverse=descending)
        return [self.asset_json(a) for a in chosen]

    async def download(self, request: Request) -> Response:
        return self._serve(request.path_params["asset_id"], request)

    async def download_url(self, request: Request) -> Response:
        file_id = request.path_params["asset_id"]
        if file_id not in self.files:
            return _error(404, f"Asset {file_id} not found")
        token = self.uuid().replace("-", "")
        expires = self.now() + timedelta(seconds=self.signed_url_lifetime)
        self.signed[token] = (file_id, expires)
        name = self.files[file_id][1]
        url = (
            f"{_base(request)}/_storage/{token}?response-content-disposition=attachment%3B%20filename%3D{name}"
            f"&GoogleAccessId=sim@up42.example&Expires={int(expires.timestamp())}&Signature={token[:16]}"
        )
        return JSONResponse({"url": url})

    async def signed_download(self, request: Request) -> Response:
        entry = self.signed.get(request.path_params["token"])
        if entry is None or entry[1] <= self.now():
            return Response(
                "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code></Error>",
                status_code=400,
                media_type="application/xml",
            )
        return self._serve(entry[0], request)

    def revise(self, file_id: str) -> None:
        """Replace a stored file by another version of the same size (its ETag changes)."""
        self.revisions[file_id] = self.revisions.get(file_id, 0) + 1

    def _serve(self, file_id: str, request: Request) -> Response:
        if file_id not in self.files:
            return _error(404, f"Asset {file_id} not found")
        size, name = self.files[file_id]
        revision = self.revisions.get(file_id, 0)
        # A revised file has other bytes (and another ETag), so a resume across it starts over.
        data = self.content(file_id, size) if not revision else content_of(f"{file_id}:{revision}", size)
        etag = f'"{file_id}-{revision}"'
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{name}"',
            "ETag": etag,
        }
        media = "application/zip" if name.endswith(".zip") else "application/octet-stream"
        wanted = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if wanted and (if_range is None or if_range == etag):  # RFC 9110 13.1.5: else the whole file
            match = _RANGE.match(wanted.strip())
            if match is None or not any(match.groups()):
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            first, last = match.groups()
            start = int(first) if first else max(0, size - int(last))
            end = min(size - 1, int(last)) if first and last else size - 1
            if start >= size or start > end:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(data[start : end + 1], status_code=206, headers=headers, media_type=media)
        return Response(data, headers=headers, media_type=media)


def cql2(expr: Any, item: Json) -> bool:
    """The CQL2-JSON subset the simulator understands: ``=``, ``in``, ``and``, ``or`` [I]."""
    if expr is None:
        return True
    if not isinstance(expr, dict):
        raise ValueError("filter must be a CQL2 JSON object")  # noqa: TRY004 - a 400, not a bug
    op, args = expr.get("op"), expr.get("args") or []
    if op == "and":
        return all(cql2(a, item) for a in args)
    if op == "or":
        return any(cql2(a, item) for a in args)
    if op in ("=", "in") and len(args) == 2 and isinstance(args[0], dict):
        name = str(args[0].get("property"))
        name = ALIASES.get(name, name)
        value = item["properties"].get(name, item.get(name))
        return bool(value == args[1]) if op == "=" else value in args[1]
    raise ValueError(f"operator {op!r}")


def absolute(value: Any, base: str) -> Any:
    """``value`` with the ``{BASE}`` placeholder of stored hrefs replaced by the server's base."""
    if isinstance(value, dict):
        return {k: absolute(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [absolute(v, base) for v in value]
    if isinstance(value, str) and value.startswith("{BASE}"):
        return base + value[len("{BASE}") :]
    return value


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _bbox(geometry: Json) -> list[float]:
    points: list[list[float]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list) and len(node) >= 2 and all(isinstance(v, int | float) for v in node[:2]):
            points.append([float(node[0]), float(node[1])])
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(geometry.get("coordinates"))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)] if points else [0.0, 0.0, 0.0, 0.0]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message, "details": None}, status_code=status)
