"""UP42 delivery discovery: the products in UP42 storage of the orders waiting for delivery.

What UP42's API allows (``docs/providers/up42.md``, "Delivery"): an order's deliveries are UP42
*assets* (zip files in storage), each mapped to a STAC *collection* whose *items* (one per
scene) carry per-file STAC assets; the collection holds the "Original Delivery" archive. The
STAC search has no documented queryable for the time an item was created or updated (only
``datetime``, the acquisition time), so it cannot harvest "what is new" across orders. The
asset listing can: ``GET /v2/assets?createdAfter=…&sort=createdAt,asc`` pages through the
workspace's assets created since a time. A harvest therefore:

1. lists the assets created since the cursor (pages grow with new assets, not with orders);
2. looks up their STAC items with one ``POST /v2/assets/stac/search`` per batch of assets
   (CQL2 JSON, ``asset_id`` queryable, ``or`` of ``=``; ``next`` links followed), keeping the
   items whose ``up42-order:id`` is one of the waiting orders;
3. reads each new collection once (``GET /v2/assets/stac/collections/{id}``) for its
   ``original`` archive.

An asset whose STAC items are not there yet (UP42 extracts them after the upload: its
``geospatialMetadataExtractionStatus`` is ``IN_PROGRESS``) stays in the cursor as *pending* and
is looked up again next cycle, for up to :data:`PENDING_SECONDS`; one whose extraction
``FAILED`` or was ``NOT_PROCESSED`` never gets items and is dropped (logged).

Hrefs are UP42's stable ``https://api.up42.com/v2/assets/{id}`` (bearer token), never the
short-lived signed URL of ``POST /v2/assets/{id}/download-url``: an asset href that looks signed
is left out (logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import structlog

from worker.delivery.checksums import canonical
from worker.errors import ProviderProtocolError
from worker.events.stac_vocabulary import vocabulary_properties
from worker.providers.base import DeliveredProduct, DeliveryHarvest, PlacedOrder, ProductAsset
from worker.providers.http import ProviderHttp
from worker.providers.up42.mapping import PROVIDER, _number, _page_items, _parse_time

log = structlog.get_logger(__name__)

ASSET_PAGE_SIZE: Final = 200
SEARCH_BATCH: Final = 50  # assets per STAC search (the filter grows with it)
SEARCH_LIMIT: Final = 100
PENDING_SECONDS: Final = 7 * 24 * 3600.0  # give up on an asset whose items never appear
MAX_PAGES: Final = 10_000  # a bound against a server that links to itself forever
ORDER_KEYS: Final = ("up42-order:id", "up42-order:order_id")  # the second: items written by old tools
_NO_ITEMS_EVER: Final = frozenset({"FAILED", "NOT_PROCESSED"})
_SIGNED: Final = ("Signature=", "X-Goog-Signature", "GoogleAccessId=", "X-Amz-Signature")
# Asset fields kept as they are (projection and gsd of a raster; ``proj:epsg`` becomes ``proj:code``).
_ASSET_FIELDS: Final = ("proj:code", "proj:shape", "proj:transform", "proj:bbox", "gsd")
# Stable asset keys by role, the first role that matches wins (``original`` before ``data``).
_KEY_BY_ROLE: Final = (
    ("original", "archive"),
    ("multispectral", "multispectral"),
    ("panchromatic", "panchromatic"),
    ("thumbnail", "thumbnail"),
    ("overview", "overview"),
    ("metadata", "metadata"),
    ("data", "data"),
)
# Item properties published as they are (already STAC names the shipped schemas know).
_KEPT: Final = (
    "title",
    "gsd",
    "eo:cloud_cover",
    "view:incidence_angle",
    "view:off_nadir",
    "view:azimuth",
    "view:sun_azimuth",
    "view:sun_elevation",
    "processing:level",
)


@dataclass
class Cursor:
    """The harvest's high-water mark: assets created up to ``after`` were looked at (``seen``:
    those created exactly at ``after``, which an inclusive ``createdAfter`` returns again), and
    ``pending`` assets (id → creation time) still wait for their STAC items."""

    after: str | None = None
    seen: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = orjson.loads(text)
            return cls(
                after=data.get("after"),
                seen=list(data.get("seen", [])),
                pending=dict(data.get("pending", {})),
            )
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            log.warning("up42_delivery_cursor_unreadable")
            return cls()

    def dump(self) -> str:
        return orjson.dumps({"after": self.after, "seen": self.seen, "pending": self.pending}).decode()


class Up42Deliveries:
    """The three steps of the module docstring, over the adapter's authenticated HTTP client."""

    def __init__(
        self,
        http: ProviderHttp,
        base: str,
        workspace: Callable[[], Awaitable[str]],
        clock: Callable[[], datetime],
    ) -> None:
        self._http = http
        self._base = base
        self._workspace = workspace
        self._clock = clock

    async def harvest(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """See :meth:`worker.providers.base.TaskingProvider.find_deliveries`."""
        wanted = {o.tracking_key for o in orders}
        mark = Cursor.parse(cursor)
        assets = await self._new_assets(mark)
        fresh = [a for a in assets if str(a["id"]) not in mark.seen]
        candidates = self._candidates(fresh, mark.pending, wanted)
        items = await self._items(list(candidates)) if candidates and wanted else []
        found_assets = {str(_props(i).get("up42-system:asset_id")) for i in items}
        mine = [i for i in items if _order_id(i) in wanted]
        originals = await self._originals({str(i.get("collection")) for i in mine if i.get("collection")})
        products = []
        for item in mine:
            try:
                products.append(to_product(item, originals.get(str(item.get("collection")), []), self._base))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("up42_delivery_item_skipped", itemId=str(item.get("id")), error=str(exc))
        next_mark = self._advance(mark, assets, candidates, found_assets)
        return DeliveryHarvest(products=products, cursor=next_mark.dump())

    async def _new_assets(self, mark: Cursor) -> list[dict[str, Any]]:
        """``GET /v2/assets`` pages of the assets created since ``mark.after``, oldest first."""
        params: list[tuple[str, str]] = [
            ("workspaceId", await self._workspace()),
            ("sort", "createdAt,asc"),
            ("size", str(ASSET_PAGE_SIZE)),
        ]
        if mark.after is not None:
            params.append(("createdAfter", mark.after))
        found: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            body = await self._http.read(
                "list_assets", "GET", f"{self._base}/v2/assets", params=[*params, ("page", str(page))]
            )
            content, total = _page_items(body, "list_assets")
            found += [a for a in content if a.get("id")]
            if page + 1 >= total or not content:
                break
        return found

    def _candidates(
        self, fresh: list[dict[str, Any]], pending: Mapping[str, str], wanted: set[str]
    ) -> dict[str, str]:
        """Asset id → creation time of the assets whose items to look up now: the new ones that may
        belong to a waiting order, and the pending ones."""
        out = dict(pending)
        for asset in fresh:
            order = asset.get("orderId")
            if isinstance(order, str) and order and order not in wanted:
                continue  # another order's (or an archive purchase's) asset
            if asset.get("geospatialMetadataExtractionStatus") in _NO_ITEMS_EVER:
                log.warning(
                    "up42_asset_without_stac_items",
                    assetId=str(asset["id"]),
                    status=asset.get("geospatialMetadataExtractionStatus"),
                )
                continue
            out[str(asset["id"])] = str(asset.get("createdAt") or "")
        return out

    async def _items(self, asset_ids: list[str]) -> list[dict[str, Any]]:
        """The STAC items of these assets (one search per batch, ``next`` links followed)."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(asset_ids), SEARCH_BATCH):
            batch = asset_ids[start : start + SEARCH_BATCH]
            items += await self.search(any_of("asset_id", batch), "find_deliveries")
        return items

    async def search(self, cql2: dict[str, Any], operation: str) -> list[dict[str, Any]]:
        """``POST /v2/assets/stac/search`` with a CQL2 JSON filter, every page."""
        body: dict[str, Any] = {"filter-lang": "cql2-json", "filter": cql2, "limit": SEARCH_LIMIT}
        url = f"{self._base}/v2/assets/stac/search"
        features: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            answer = await self._http.read(operation, "POST", url, json=body)
            page = answer.get("features") if isinstance(answer, dict) else None
            if not isinstance(page, list):
                raise ProviderProtocolError(
                    f"{operation}: not a STAC FeatureCollection", provider=PROVIDER, operation=operation
                )
            features += [f for f in page if isinstance(f, dict) and f.get("id")]
            follow = next_link(answer, body)
            if follow is None:
                break
            url, body = follow
        return features

    async def _originals(self, collections: Iterable[str]) -> dict[str, list[ProductAsset]]:
        """Collection id → its ``original`` archive assets (one read per new collection)."""
        out: dict[str, list[ProductAsset]] = {}
        for collection in sorted(collections):
            body = await self._http.read(
                "get_collection", "GET", f"{self._base}/v2/assets/stac/collections/{collection}"
            )
            raw = body.get("assets") if isinstance(body, dict) else None
            out[collection] = [
                a
                for value in (raw or {}).values()
                if isinstance(value, dict) and "original" in (value.get("roles") or [])
                for a in _asset(value, set())
            ]
        return out

    def _advance(
        self,
        mark: Cursor,
        assets: list[dict[str, Any]],
        candidates: Mapping[str, str],
        found: set[str],
    ) -> Cursor:
        """The next cursor: past every listed asset; pending, those without items yet."""
        limit = (self._clock() - timedelta(seconds=PENDING_SECONDS)).astimezone(UTC)
        pending = {}
        for asset_id, created in candidates.items():
            if asset_id in found:
                continue
            when = _time(created)
            if when is not None and when < limit:
                log.warning("up42_asset_items_never_appeared", assetId=asset_id)
                continue
            pending[asset_id] = created
        times = [str(a.get("createdAt") or "") for a in assets if a.get("createdAt")]
        if not times:
            return Cursor(after=mark.after, seen=mark.seen, pending=pending)
        newest = max(times, key=_sort_key)
        seen = [str(a["id"]) for a in assets if str(a.get("createdAt") or "") == newest]
        if newest == mark.after:
            seen = sorted({*mark.seen, *seen})
        return Cursor(after=newest, seen=seen, pending=pending)


def _time(value: Any) -> datetime | None:
    """A provider time, timezone-aware (UTC when the text has no offset)."""
    parsed = _parse_time(value)
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed


def _sort_key(text: str) -> datetime:
    return _time(text) or datetime.min.replace(tzinfo=UTC)


def any_of(name: str, values: list[str]) -> dict[str, Any]:
    """CQL2 JSON: ``name`` equals one of ``values`` (``or`` of ``=``: basic CQL2 only)."""
    terms = [{"op": "=", "args": [{"property": name}, v]} for v in values]
    return terms[0] if len(terms) == 1 else {"op": "or", "args": terms}


def next_link(answer: Mapping[str, Any], body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The STAC API ``next`` link of a POST search: its href and the body to send (merged)."""
    for link in answer.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            raw = link.get("body")
            extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
            merged = {**body, **extra} if link.get("merge", True) else dict(extra)
            return str(link["href"]), merged
    return None


def _props(item: Mapping[str, Any]) -> dict[str, Any]:
    raw = item.get("properties")
    return raw if isinstance(raw, dict) else {}


def _order_id(item: Mapping[str, Any]) -> str | None:
    props = _props(item)
    for key in ORDER_KEYS:
        if props.get(key):
            return str(props[key])
    return None


def _signed(href: str) -> bool:
    return any(mark in href for mark in _SIGNED)


def stable_key(raw: Mapping[str, Any], used: set[str]) -> str:
    """The asset's key from its roles (:data:`_KEY_BY_ROLE`), not from UP42's file-derived key,
    so items of one collection share keys; a second asset with the same key gets ``-2``..."""
    roles = {str(r) for r in raw.get("roles") or []}
    base = next((key for role, key in _KEY_BY_ROLE if role in roles), "asset")
    key, n = base, 1
    while key in used:
        n += 1
        key = f"{base}-{n}"
    used.add(key)
    return key


def _checksum(value: Any, key: str) -> str | None:
    """UP42's ``file:checksum`` as a correct multihash; one that is not a multihash is left out
    (logged): an event must not carry a value that no tool can check."""
    if not isinstance(value, str):
        return None
    try:
        return canonical(value)
    except ValueError:
        log.warning("up42_checksum_not_a_multihash", asset=key)
        return None


def _fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: raw[name] for name in _ASSET_FIELDS if raw.get(name) is not None}
    if "proj:code" not in out and raw.get("proj:epsg"):
        out["proj:code"] = f"EPSG:{raw['proj:epsg']}"
    return out


def _asset(raw: Mapping[str, Any], used: set[str]) -> list[ProductAsset]:
    """One STAC asset of UP42 as a product asset (none for a signed, short-lived href)."""
    href = raw.get("href")
    if not isinstance(href, str) or not href:
        return []
    key = stable_key(raw, used)
    if _signed(href):
        log.warning("up42_signed_href_left_out", asset=key)
        return []
    size = raw.get("file:size")
    checksum = _checksum(raw.get("file:checksum"), key)
    return [
        ProductAsset(
            key=key,
            href=href,
            media_type=raw.get("type") if isinstance(raw.get("type"), str) else None,
            roles=[str(r) for r in raw.get("roles") or []],
            title=raw.get("title") if isinstance(raw.get("title"), str) else None,
            size=size if isinstance(size, int) and size >= 0 else None,
            checksum=checksum if isinstance(checksum, str) else None,
            needs_auth=True,
            fields=_fields(raw),
        )
    ]


def _bbox(geometry: Mapping[str, Any] | None) -> list[float] | None:
    """The 2D bounding box of a GeoJSON geometry."""
    if not geometry:
        return None
    xs: list[float] = []
    ys: list[float] = []

    def walk(node: Any) -> None:
        if (
            isinstance(node, list | tuple)
            and len(node) >= 2
            and all(isinstance(v, int | float) for v in node[:2])
        ):
            xs.append(float(node[0]))
            ys.append(float(node[1]))
        elif isinstance(node, list | tuple):
            for child in node:
                walk(child)

    walk(geometry.get("coordinates"))
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None


def to_product(item: Mapping[str, Any], originals: list[ProductAsset], base: str) -> DeliveredProduct:
    """One UP42 STAC item (CNAM per-file assets, or an older item's single ``data`` asset) as a
    delivered product, with its collection's ``original`` archive.

    Raises:
        KeyError, ValueError: the item lacks an id or its order id.
    """
    props = _props(item)
    item_id = str(item["id"])
    order_id = _order_id(item)
    if order_id is None:
        raise ValueError("no up42-order:id")
    collection = str(item.get("collection") or "")
    raw_assets = item.get("assets")
    used: set[str] = set()
    assets = [
        a for _, v in sorted((raw_assets or {}).items()) if isinstance(v, dict) for a in _asset(v, used)
    ]
    assets += [a for a in originals if a.key not in used]
    asset_id = props.get("up42-system:asset_id")
    if not any("data" in a.roles for a in assets) and asset_id:
        # No per-file data asset and no original archive: the UP42 asset itself is the data.
        assets.append(
            ProductAsset(
                key="data",
                href=f"{base}/v2/assets/{asset_id}",
                media_type="application/zip",
                roles=["data"],
                title="Data",
            )
        )
    geometry = item.get("geometry") if isinstance(item.get("geometry"), dict) else None
    # The bbox is the geometry's own bounds (the item is built from them again, tightly); UP42's
    # bbox is used only for an item without geometry.
    bbox = _bbox(geometry) if geometry else item.get("bbox") if isinstance(item.get("bbox"), list) else None
    properties = {k: props[k] for k in _KEPT if props.get(k) is not None}
    properties.update(
        vocabulary_properties(
            PROVIDER,
            props.get("platform"),
            props.get("constellation") or props.get("up42-product:collection_name"),
        )
    )
    for name in ("eo:cloud_cover", "view:incidence_angle", "gsd"):
        if name in properties:
            properties[name] = _number(properties[name])
    epsg = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
    if epsg:
        properties["proj:code"] = str(epsg)
    refs = {"orderId": order_id, "collectionId": collection}
    for ref, name in (("assetId", "up42-system:asset_id"), ("hostId", "up42-order:host_id")):
        if props.get(name):
            refs[ref] = str(props[name])
    title = props.get("title")
    return DeliveredProduct(
        item_id=item_id,
        tracking_key=order_id,
        geometry=geometry,
        bbox=[float(v) for v in bbox] if bbox else None,
        datetime=_time(props.get("datetime")),
        start_datetime=_time(props.get("start_datetime")),
        end_datetime=_time(props.get("end_datetime")),
        properties={k: v for k, v in properties.items() if v is not None},
        refs={k: v for k, v in refs.items() if v},
        # UP42 acquisitions are these same STAC items (list_acquisitions); the title is the
        # provider's datastrip or scene name.
        source_ids=[item_id, *([str(title)] if title else [])],
        assets=assets,
        via=_self_link(item) or f"{base}/v2/assets/stac/collections/{collection}/items/{item_id}",
        updated_at=_time(props.get("updated")),
    )


def _self_link(item: Mapping[str, Any]) -> str | None:
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(link["href"])
    return None
