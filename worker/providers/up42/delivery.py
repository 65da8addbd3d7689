"""UP42 delivery discovery: the products in UP42 storage of the orders waiting for delivery.

What UP42's API allows (``docs/providers/up42.md``, "Delivery"): an order's deliveries are UP42
*assets* (zip files in storage), each mapped to a STAC *collection* whose *items* (one per
scene) carry per-file STAC assets; the collection holds the "Original Delivery" archive. The
STAC search has no documented queryable for the time an item was created or updated (only
``datetime``, the acquisition time), so it cannot harvest "what is new" across orders. The
asset listing can: ``GET /v2/assets?createdAfter=…&sort=createdAt,asc`` pages through the
workspace's assets created since a time. A harvest therefore:

1. lists the assets created since the cursor's high-water mark *minus an overlap window*
   (``overlap``, ``TASKING_UP42__DELIVERY_OVERLAP_SECONDS``): the listing is backed by a search
   index and eventually consistent, so an asset can appear after one created later. Assets seen
   in the window are kept in the cursor by id, so nothing is looked at twice;
2. for each order the provider finished (``PlacedOrder.finished``), looks that order's assets up
   directly (``GET /v2/assets?search=<orderId>``): at once, every cycle while one of them is
   still being extracted, and with a doubling backoff while none is listed;
3. looks up the STAC items of these assets with one ``POST /v2/assets/stac/search`` per batch of
   assets (CQL2 JSON, ``asset_id`` queryable, ``or`` of ``=``; ``next`` links followed), keeping
   the items whose ``up42-order:id`` is one of the waiting orders;
4. reads each new collection once (``GET /v2/assets/stac/collections/{id}``) for its
   ``original`` archive.

An asset whose STAC items are not there yet (UP42 extracts them after the upload: its
``geospatialMetadataExtractionStatus`` is ``IN_PROGRESS``) stays in the cursor as *pending* and
is looked up again next cycle, for up to :data:`PENDING_SECONDS`. One whose extraction
``FAILED`` or was ``NOT_PROCESSED`` never gets items: it is published as a product whose asset is
the archive itself (item id = asset id), with a ``tasking:note`` saying why there are no
per-scene files.

Bulkheads: a collection that cannot be read (a 404, a 5xx after retries, a body not shaped as
documented) affects only its products: they are published without the original archive
(``DeliveredProduct.partial``), the failure is logged with the order's id, and the asset stays
pending, so a later cycle reads the collection again and the product is published complete. An
item that cannot be mapped is logged and its asset retried the same way. A finished order whose
direct lookup fails is logged and backed off; the others go on.

Completion evidence: a finished order whose every listed asset is extracted (its items found)
or published as its archive is reported in ``DeliveryHarvest.settled`` with those item ids.

Hrefs are UP42's stable ``https://api.up42.com/v2/assets/{id}`` (bearer token), never the
short-lived signed URL of ``POST /v2/assets/{id}/download-url``: an asset href that looks signed
is left out (logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import structlog

from worker.checksums import canonical
from worker.domain.ports import DeliveryHarvest, PlacedOrder
from worker.errors import ProviderError, ProviderProtocolError
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.stac_vocabulary import vocabulary_properties
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
_EXTRACTED: Final = "SUCCESSFUL"
LOOKUP_BACKOFF_SECONDS: Final = (30.0, 3600.0)  # first and longest wait of a finished order's lookup
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
    """The harvest's high-water mark: assets created up to ``after`` were looked at; ``seen``
    (id → creation time) are those created within the overlap window behind ``after``, which the
    next listing returns again; ``pending`` assets (id → creation time) still wait for their STAC
    items (or for their collection to be read)."""

    after: str | None = None
    seen: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = orjson.loads(text)
            seen = data.get("seen", {})
            after = data.get("after")
            return cls(
                after=after,
                # A list: a cursor of the previous release (ids created exactly at ``after``).
                seen={str(i): str(after) for i in seen} if isinstance(seen, list) else dict(seen),
                pending=dict(data.get("pending", {})),
            )
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            log.warning("up42_delivery_cursor_unreadable")
            return cls()

    def dump(self) -> str:
        return orjson.dumps({"after": self.after, "seen": self.seen, "pending": self.pending}).decode()


@dataclass
class _Lookup:
    """When a finished order's assets are looked up next, and the wait after an empty answer."""

    due: datetime
    wait: float = 0.0


class Up42Deliveries:
    """The steps of the module docstring, over the adapter's authenticated HTTP client."""

    def __init__(
        self,
        http: ProviderHttp,
        base: str,
        workspace: Callable[[], Awaitable[str]],
        clock: Callable[[], datetime],
        overlap: float = 3600.0,
    ) -> None:
        self._http = http
        self._base = base
        self._workspace = workspace
        self._clock = clock
        self._overlap = timedelta(seconds=overlap)
        self._lookups: dict[str, _Lookup] = {}
        self._failed_lookups = 0

    async def harvest(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """See :meth:`worker.domain.ports.TaskingProvider.find_deliveries`."""
        wanted = {o.tracking_key for o in orders}
        mark = Cursor.parse(cursor)
        assets = await self._new_assets(mark)
        fresh = [a for a in assets if str(a["id"]) not in mark.seen]
        by_order = await self._order_assets([o for o in orders if o.finished])
        direct = [a for listed in by_order.values() for a in listed]
        candidates, archives = self._candidates([*fresh, *direct], mark.pending, wanted)
        items = await self._items(list(candidates)) if candidates and wanted else []
        found_assets = {str(_props(i).get("up42-system:asset_id")) for i in items}
        mine = [i for i in items if _order_id(i) in wanted]
        originals = await self._originals({str(i.get("collection")): _order_id(i) for i in mine})
        products = {p.item_id: p for p in (archive_product(a, self._base) for a in archives)}
        retry: dict[str, str] = {}
        unmapped: set[str] = set()
        for item in mine:
            product = self._product(item, originals)
            asset_id = str(_props(item).get("up42-system:asset_id"))
            if product is None or product.partial:
                retry[asset_id] = candidates.get(asset_id, "")
            if product is None:
                unmapped.add(asset_id)
            else:
                products[product.item_id] = product
        next_mark = self._advance(mark, assets, candidates, found_assets - set(retry))
        next_mark.pending.update(retry)
        settled = self._settled(by_order, list(products.values()), unmapped)
        failures = len(unmapped) + sum(v is None for v in originals.values()) + self._failed_lookups
        return DeliveryHarvest(
            products=list(products.values()), cursor=next_mark.dump(), settled=settled, skipped=failures
        )

    def _product(
        self, item: Mapping[str, Any], originals: Mapping[str, list[ProductAsset] | None]
    ) -> DeliveredProduct | None:
        """The item as a product (partial when its collection could not be read); ``None``, logged
        with its order, when it cannot be mapped."""
        collection = str(item.get("collection"))
        archive = originals.get(collection)
        try:
            product = to_product(item, archive or [], self._base)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "up42_delivery_item_skipped",
                itemId=str(item.get("id")),
                orderId=_order_id(item),
                error=str(exc),
            )
            return None
        if archive is None and collection in originals:
            return product.model_copy(update={"partial": True})
        return product

    async def _order_assets(self, finished: list[PlacedOrder]) -> dict[str, list[dict[str, Any]]]:
        """Order id → the assets listed for it, for the finished orders whose lookup is due (the
        backoff of the module docstring); one order's failed lookup is logged and backed off."""
        now = self._clock()
        self._failed_lookups = 0
        keys = {o.tracking_key for o in finished}
        self._lookups = {k: v for k, v in self._lookups.items() if k in keys}
        found: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(keys):
            lookup = self._lookups.setdefault(key, _Lookup(due=now))
            if lookup.due > now:
                continue
            try:
                answer = await self._list_assets([("search", key)])
                listed = [a for a in answer if a.get("orderId") in (key, None)]
            except ProviderError as exc:
                log.warning("up42_order_assets_unreadable", orderId=key, error=type(exc).__name__)
                self._failed_lookups += 1
                listed = []
            if listed:
                lookup.wait, lookup.due = 0.0, now  # assets to follow: again next cycle
                found[key] = listed
            else:
                first, longest = LOOKUP_BACKOFF_SECONDS
                lookup.wait = min(longest, max(first, lookup.wait * 2))
                lookup.due = now + timedelta(seconds=lookup.wait)
        return found

    def _settled(
        self,
        by_order: Mapping[str, list[dict[str, Any]]],
        products: list[DeliveredProduct],
        unmapped: set[str],
    ) -> dict[str, list[str]]:
        """The finished orders whose every listed asset is delivered: extracted with every item
        mapped (a partial product counts: it is completed later) or published as its archive,
        with the item ids of the whole delivery."""
        settled: dict[str, list[str]] = {}
        for key, listed in by_order.items():
            ids: list[str] = []
            for asset in listed:
                asset_id = str(asset["id"])
                status = asset.get("geospatialMetadataExtractionStatus")
                of_asset = [
                    p.item_id
                    for p in products
                    if p.tracking_key == key and asset_id in (p.refs.get("assetId"), p.item_id)
                ]
                if status not in (_EXTRACTED, *_NO_ITEMS_EVER) or not of_asset or asset_id in unmapped:
                    break
                ids += of_asset
            else:
                settled[key] = ids
                self._lookups.pop(key, None)
        return settled

    async def _new_assets(self, mark: Cursor) -> list[dict[str, Any]]:
        """``GET /v2/assets`` pages of the assets created since ``mark.after`` minus the overlap
        window, oldest first."""
        since = _time(mark.after) if mark.after is not None else None
        if since is None:
            return await self._list_assets([])
        return await self._list_assets([("createdAfter", _iso(since - self._overlap))])

    async def _list_assets(self, extra: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Every page of ``GET /v2/assets`` of the workspace with ``extra`` query parameters."""
        params: list[tuple[str, str]] = [
            ("workspaceId", await self._workspace()),
            ("sort", "createdAt,asc"),
            ("size", str(ASSET_PAGE_SIZE)),
            *extra,
        ]
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
        self, listed: list[dict[str, Any]], pending: Mapping[str, str], wanted: set[str]
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Asset id → creation time of the assets whose items to look up now (the new ones that
        may belong to a waiting order, and the pending ones), and the assets that never get items
        (published as their archive)."""
        out = dict(pending)
        archives: dict[str, dict[str, Any]] = {}
        for asset in listed:
            order = asset.get("orderId")
            if isinstance(order, str) and order and order not in wanted:
                continue  # another order's (or an archive purchase's) asset
            if asset.get("geospatialMetadataExtractionStatus") in _NO_ITEMS_EVER:
                if isinstance(order, str) and order:
                    archives[str(asset["id"])] = asset
                else:
                    log.warning("up42_asset_without_order", assetId=str(asset["id"]))
                continue
            out[str(asset["id"])] = str(asset.get("createdAt") or "")
        return out, list(archives.values())

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

    async def _originals(self, collections: Mapping[str, str | None]) -> dict[str, list[ProductAsset] | None]:
        """Collection id → its ``original`` archive assets (one read per new collection), or
        ``None`` for a collection that could not be read (logged with its order: that read
        affects only its products)."""
        out: dict[str, list[ProductAsset] | None] = {}
        for collection in sorted(c for c in collections if c and c != "None"):
            try:
                body = await self._http.read(
                    "get_collection", "GET", f"{self._base}/v2/assets/stac/collections/{collection}"
                )
            except ProviderError as exc:
                log.warning(
                    "up42_collection_unreadable",
                    collectionId=collection,
                    orderId=collections[collection],
                    error=type(exc).__name__,
                )
                out[collection] = None
                continue
            raw = body.get("assets") if isinstance(body, dict) else None
            out[collection] = [
                a
                for value in (raw.values() if isinstance(raw, dict) else ())
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
        """The next cursor: past every listed asset, those within the overlap window remembered;
        pending, those without items yet."""
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
        listed = {str(a["id"]): str(a.get("createdAt") or "") for a in assets if a.get("createdAt")}
        if not listed:
            return Cursor(after=mark.after, seen=mark.seen, pending=pending)
        newest = max([*listed.values(), *([mark.after] if mark.after else [])], key=_sort_key)
        window_start = _sort_key(newest) - self._overlap
        seen = {k: v for k, v in {**mark.seen, **listed}.items() if _sort_key(v) >= window_start}
        return Cursor(after=newest, seen=dict(sorted(seen.items())), pending=pending)


def _time(value: Any) -> datetime | None:
    """A provider time, timezone-aware (UTC when the text has no offset)."""
    parsed = _parse_time(value)
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed


def _sort_key(text: str) -> datetime:
    return _time(text) or datetime.min.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def archive_product(asset: Mapping[str, Any], base: str) -> DeliveredProduct:
    """An asset whose metadata extraction ``FAILED`` or was ``NOT_PROCESSED``: a product whose only
    asset is the archive itself (item id = asset id), with a note saying why."""
    asset_id = str(asset["id"])
    status = str(asset.get("geospatialMetadataExtractionStatus"))
    name = asset.get("name") or asset.get("title")
    size = asset.get("size")
    note = (
        f"UP42 metadata extraction {status}: no per-scene STAC items; "
        "the asset is the delivered archive as the provider stored it"
    )
    return DeliveredProduct(
        item_id=asset_id,
        tracking_key=str(asset["orderId"]),
        datetime=_time(asset.get("createdAt")),
        properties={"title": str(name), "tasking:note": note} if name else {"tasking:note": note},
        refs={"orderId": str(asset["orderId"]), "assetId": asset_id},
        assets=[
            ProductAsset(
                key="data",
                href=f"{base}/v2/assets/{asset_id}",
                media_type=str(asset.get("contentType") or "application/zip"),
                roles=["data", "original"],
                title=str(name) if name else "Original Delivery",
                size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            )
        ],
        updated_at=_time(asset.get("updatedAt")),
    )


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
