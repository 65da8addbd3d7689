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

from worker.domain.ports import DeliveryHarvest, PlacedOrder
from worker.errors import ProviderError, ProviderProtocolError
from worker.events.products import DeliveredProduct, ProductAsset
from worker.providers.http import ProviderHttp
from worker.providers.up42.mapping import PROVIDER, _page_items
from worker.providers.up42.products import (
    _asset,
    _iso,
    _order_id,
    _props,
    _sort_key,
    _time,
    any_of,
    archive_product,
    next_link,
    to_product,
)

log = structlog.get_logger(__name__)

ASSET_PAGE_SIZE: Final = 200
SEARCH_BATCH: Final = 50  # assets per STAC search (the filter grows with it)
SEARCH_LIMIT: Final = 100
PENDING_SECONDS: Final = 7 * 24 * 3600.0  # give up on an asset whose items never appear
MAX_PAGES: Final = 10_000  # a bound against a server that links to itself forever
_NO_ITEMS_EVER: Final = frozenset({"FAILED", "NOT_PROCESSED"})
_EXTRACTED: Final = "SUCCESSFUL"
LOOKUP_BACKOFF_SECONDS: Final = (30.0, 3600.0)  # first and longest wait of a finished order's lookup


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
