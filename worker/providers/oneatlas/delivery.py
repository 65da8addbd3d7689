"""Delivered products: OneAtlas catalogue items that appear in the contract's delivery workspace.

OneAtlas has no "delivered" status on taskings, segments, orders or coverage items: a delivery *is*
a new catalogue item in the delivery workspace (``docs/providers/oneatlas.md``, "Delivery").

* Workspaces: legacy (SPOT/Pléiades) from ``TASKING_ONEATLAS__WORKSPACE_ID`` when set (orders
  carry it as ``delivery.workspace``), else ``GET {DATA_URL}/api/v1/me`` → ``contract.workspaceId``;
  Pléiades Neo from ``GET {BASE_URL}/api/v1/contracts`` → ``contracts[].delivery[].deliveryWorkspace``
  of the neo contract. That value is a UUID or a name; the search accepts either
  (``WorkspaceIdentifier``), so it is used as given. Resolved once per adapter.
* Harvest: ``POST {SEARCH_URL}/api/v2/opensearch`` per workspace, sorted by ``lastUpdateDate`` and
  ranged from the cursor (``[T,]``), ``itemsPerPage`` ≤ 500, so the calls grow with new products,
  not with open orders. Pages are keyed: each next page ranges again from the last date seen
  (deletions during a long harvest cannot make it skip an item; the search's 10,000-result limit
  never applies). Items are kept when their ``internalReference`` (the sales order id) or
  ``customerReference`` belongs to one of the orders.
* The cursor is a JSON object ``{workspace: lastUpdateDate}``; each range starts
  :data:`CURSOR_OVERLAP_SECONDS` before the mark, because a product can be indexed after its
  ``lastUpdateDate`` (callers dedupe what comes back twice).
* Shapes: ``_links.download`` is an object or an array (with ftpes entries): the https entry is the
  product (an ``http`` entry is accepted only when there is no https one, e.g. a local simulator);
  ``images*`` links may be arrays; ``expirationDate`` becomes STAC ``expires``; the join keys
  (PNEO ``ACQ_…`` in the zip name, legacy ``DS_…`` ``sourceIdentifier``) become ``source_ids``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from shapely.geometry import shape

from worker.config import OneAtlasSettings
from worker.domain.ports import DeliveryHarvest, PlacedOrder
from worker.errors import ProviderProtocolError
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.stac_vocabulary import vocabulary_properties
from worker.providers.http import ProviderHttp
from worker.providers.oneatlas.common import (
    PROVIDER,
    as_dict,
    as_float,
    as_list,
    iso_millis,
    log,
    parse_time,
    refs_of,
    str_or_none,
)

MAX_ITEMS_PER_PAGE: Final = 500
MAX_RESULTS: Final = 10_000  # the search answers no further than this (``totalResults`` maximum)
CURSOR_OVERLAP_SECONDS: Final = 600.0
ACCESS_HOST: Final = "access.foundation.api.oneatlas.airbus.com"
_ACQ_ID = re.compile(r"ACQ_[A-Z0-9]+_[0-9]+")
# ``_links`` keys published as extra assets: (asset key, roles, media type).
_EXTRA_LINKS: Final = {
    "quicklook": ("overview", ["overview"], "image/jpeg"),
    "thumbnail": ("thumbnail", ["thumbnail"], "image/jpeg"),
}
_PROPERTY_NAMES: Final = {
    "cloudCover": "eo:cloud_cover",
    "incidenceAngle": "view:incidence_angle",
    "azimuthAngle": "view:azimuth",
    "illuminationAzimuthAngle": "view:sun_azimuth",
    "illuminationElevationAngle": "view:sun_elevation",
    "resolution": "gsd",
}

Contract = Callable[[str], str]


class DeliveryFinder:
    """Finds the delivered products of OneAtlas orders in their delivery workspaces.

    Args:
        settings: hosts (``base_url``, ``data_url``, ``search_url``) and ``workspace_id``.
        http: the adapter's :class:`ProviderHttp` (bearer token, retries, error translation).
        contract: the adapter's contract lookup per backend (raises ProviderNotConfigured).
        page_size: ``itemsPerPage`` of each search (capped at 500).
    """

    def __init__(
        self, settings: OneAtlasSettings, http: ProviderHttp, contract: Contract, page_size: int = 500
    ) -> None:
        self._settings = settings
        self._http = http
        self._contract = contract
        self._page_size = max(1, min(page_size, MAX_ITEMS_PER_PAGE))
        self._workspaces: dict[str, str] = {}
        self._last_total = float("inf")

    # ------------------------------------------------------------------ workspaces

    async def workspace(self, backend: str) -> str:
        """The delivery workspace (id or name) of a backend's contract, resolved once.

        Raises:
            ProviderNotConfigured: no contract for the backend.
            ProviderProtocolError: the account or contract record names no workspace.
        """
        known = self._workspaces.get(backend)
        if known is not None:
            return known
        contract = self._contract(backend)
        if backend == "legacy":
            found = self._settings.workspace_id or await self._legacy_workspace()
        else:
            found = await self._neo_workspace(contract)
        self._workspaces[backend] = found
        return found

    async def _legacy_workspace(self) -> str:
        body = as_dict(await self._http.read("delivery_workspace", "GET", self._data_url("/api/v1/me")))
        record = as_dict(body.get("contract"))
        found = str_or_none(record.get("workspaceId")) or str_or_none(record.get("workspaceName"))
        if found is None:
            raise ProviderProtocolError(
                "delivery_workspace: /api/v1/me names no contract.workspaceId",
                provider=PROVIDER,
                operation="delivery_workspace",
            )
        return found

    async def _neo_workspace(self, contract: str) -> str:
        url = str(self._settings.base_url).rstrip("/") + "/api/v1/contracts"
        body = as_dict(await self._http.read("delivery_workspace", "GET", url))
        for record in (as_dict(c) for c in as_list(body.get("contracts"))):
            if str(record.get("contractId")) != contract:
                continue
            found = _delivery_workspace(as_list(record.get("delivery")))
            if found is not None:
                return found
        raise ProviderProtocolError(
            f"delivery_workspace: contract {contract} has no delivery[].deliveryWorkspace",
            provider=PROVIDER,
            operation="delivery_workspace",
        )

    def _data_url(self, path: str) -> str:
        return str(self._settings.data_url).rstrip("/") + path

    def _search_url(self) -> str:
        return str(self._settings.search_url).rstrip("/") + "/api/v2/opensearch"

    # ------------------------------------------------------------------ harvest

    async def harvest(
        self, orders: Collection[PlacedOrder], backends: Iterable[str], cursor: str | None
    ) -> DeliveryHarvest:
        """The products of ``orders`` updated since ``cursor`` in the workspaces of ``backends``.

        Raises:
            ProviderNotConfigured: a backend has no contract.
            ProviderProtocolError: a workspace cannot be resolved.
        """
        index = OrderIndex(orders)
        marks = decode_cursor(cursor)
        products: dict[str, DeliveredProduct] = {}
        workspaces = {await self.workspace(b) for b in sorted(set(backends))}
        for workspace in sorted(workspaces):
            since = _rewind(marks.get(workspace))
            async for feature in self._updated_since(workspace, since):
                updated = _updated(feature)
                if updated is not None and (workspace not in marks or updated > marks[workspace]):
                    marks[workspace] = updated
                key = index.tracking_key(as_dict(feature.get("properties")))
                product = _product_or_none(feature, key) if key is not None else None
                if product is not None:
                    products[product.item_id] = product
        return DeliveryHarvest(products=list(products.values()), cursor=encode_cursor(marks))

    async def _updated_since(self, workspace: str, since: datetime | None) -> AsyncIterator[dict[str, Any]]:
        """Every item of ``workspace`` updated at or after ``since``, oldest update first.

        Paged by key, not by offset: after each full page the range starts again at the last
        ``lastUpdateDate`` seen (``startPage`` 1; the items of that date come again and are
        deduplicated by id). An item deleted meanwhile (a product removed or expired while a
        new owner's full harvest pages through the workspace after a rebalance) therefore cannot
        shift an unseen item to a page already read, as it could with ``startPage`` offsets.
        Only a page whose items all share the range's first date pages on by offset.
        """
        seen: set[str] = set()
        page = 1
        while True:
            criteria: dict[str, Any] = {"workspace": workspace, "sortBy": "lastUpdateDate"}
            if since is not None:
                criteria["lastUpdateDate"] = f"[{iso_millis(since)},]"
            features = await self._page("search_deliveries", criteria, page)
            for feature in features:
                item_id = _item_id(feature)
                if item_id not in seen:
                    seen.add(item_id)
                    yield feature
            if len(features) < self._page_size:
                return
            last = _updated(features[-1])
            if last is not None and (since is None or last > since):
                since, page = last, 1
            elif page * self._page_size < MAX_RESULTS:
                page += 1
            else:
                return  # more than MAX_RESULTS items of one date: the search answers no further

    async def order_products(self, placed: PlacedOrder, backend: str) -> list[DeliveredProduct]:
        """The products of one order, searched by ``internalReference`` (the sales order id), or
        by ``customerReference`` before a Pléiades Neo order has a sales order id."""
        criteria: dict[str, Any] = {"workspace": await self.workspace(backend)}
        sales_order = placed.refs.get("salesOrderId")
        reference = placed.refs.get("customerReference")
        if sales_order:
            criteria["internalReference"] = sales_order
        elif reference:
            criteria["customerReference"] = reference
        else:
            return []
        products = [
            _product_or_none(feature, placed.tracking_key)
            async for feature, _ in self._pages("order_products", criteria)
        ]
        return [p for p in products if p is not None]

    async def _pages(
        self, operation: str, criteria: Mapping[str, Any]
    ) -> AsyncIterator[tuple[dict[str, Any], int]]:
        """Every feature of one search with its 0-based position, page by page."""
        page, position = 1, 0
        while position < MAX_RESULTS:
            features = await self._page(operation, criteria, page)
            for feature in features:
                yield feature, position
                position += 1
            if len(features) < self._page_size or position >= self._last_total:
                return
            page += 1

    async def _page(self, operation: str, criteria: Mapping[str, Any], page: int) -> list[dict[str, Any]]:
        """The features of one page of one search (``totalResults`` kept in ``_last_total``).

        Raises:
            ProviderProtocolError: the search answered an error.
        """
        body = {**criteria, "itemsPerPage": self._page_size, "startPage": page}
        answer = as_dict(await self._http.read(operation, "POST", self._search_url(), json=body))
        if answer.get("error") is True:
            raise ProviderProtocolError(
                f"{operation}: the search answered an error", provider=PROVIDER, operation=operation
            )
        total = as_float(answer.get("totalResults"))
        self._last_total = total if total is not None else float("inf")
        return [f for f in as_list(answer.get("features")) if isinstance(f, dict)]


class OrderIndex:
    """Which order a delivered item belongs to: by sales order id, else by customer reference."""

    def __init__(self, orders: Iterable[PlacedOrder]) -> None:
        self._by_sales_order: dict[str, str] = {}
        self._by_reference: dict[str, str] = {}
        for order in orders:
            sales_order = order.refs.get("salesOrderId")
            if sales_order:
                self._by_sales_order[sales_order] = order.tracking_key
            elif not order.tracking_key.upper().startswith("QUO"):
                self._by_sales_order[order.tracking_key] = order.tracking_key  # legacy: the key is the SAL
            reference = order.refs.get("customerReference")
            if reference:
                self._by_reference[reference] = order.tracking_key

    def tracking_key(self, properties: Mapping[str, Any]) -> str | None:
        sales_order = str_or_none(properties.get("internalReference"))
        if sales_order is not None and sales_order in self._by_sales_order:
            return self._by_sales_order[sales_order]
        reference = str_or_none(properties.get("customerReference"))
        return self._by_reference.get(reference) if reference is not None else None


def _delivery_workspace(deliveries: list[Any]) -> str | None:
    """``deliveryWorkspace`` of a contract's ``delivery`` list, the ``PublicMOC`` platform first."""
    entries = sorted(
        (as_dict(d) for d in deliveries), key=lambda d: d.get("deliveryPlatformId") != "PublicMOC"
    )
    for entry in entries:
        found = str_or_none(entry.get("deliveryWorkspace"))
        if found is not None:
            return found
    return None


# ----------------------------------------------------------------------------- cursor


def decode_cursor(cursor: str | None) -> dict[str, datetime]:
    """``{workspace: lastUpdateDate}`` from a cursor; an unreadable cursor counts as none."""
    if not cursor:
        return {}
    try:
        raw = orjson.loads(cursor)
    except orjson.JSONDecodeError:
        log.warning("oneatlas_delivery_cursor_unreadable")
        return {}
    marks = {str(k): parse_time(v) for k, v in as_dict(raw).items()}
    return {k: v for k, v in marks.items() if v is not None}


def encode_cursor(marks: Mapping[str, datetime]) -> str | None:
    if not marks:
        return None
    return orjson.dumps({k: iso_millis(v) for k, v in sorted(marks.items())}).decode()


def _rewind(mark: datetime | None) -> datetime | None:
    return None if mark is None else mark - timedelta(seconds=CURSOR_OVERLAP_SECONDS)


# ----------------------------------------------------------------------------- item mapping


def _item_id(feature: Mapping[str, Any]) -> str:
    return str(as_dict(feature.get("properties")).get("id") or feature.get("id") or "")


def _updated(feature: Mapping[str, Any]) -> datetime | None:
    props = as_dict(feature.get("properties"))
    return parse_time(props.get("lastUpdateDate")) or parse_time(props.get("publicationDate"))


def _product_or_none(feature: Mapping[str, Any], tracking_key: str) -> DeliveredProduct | None:
    """:func:`product_from`, or ``None`` (logged) for an item that cannot be used."""
    try:
        return product_from(feature, tracking_key)
    except ProviderProtocolError as exc:
        log.warning("oneatlas_delivery_item_skipped", item_id=_item_id(feature), reason=exc.message)
        return None


def product_from(feature: Mapping[str, Any], tracking_key: str) -> DeliveredProduct:
    """A :class:`DeliveredProduct` from one opensearch feature.

    Raises:
        ProviderProtocolError: no item id, or no http(s) download link.
    """
    props = as_dict(feature.get("properties"))
    links = as_dict(feature.get("_links"))
    item_id = _item_id(feature)
    if not item_id:
        raise ProviderProtocolError("delivered item without an id", provider=PROVIDER)
    download = download_link(links.get("download"))
    if download is None:
        raise ProviderProtocolError(f"delivered item {item_id} has no https download link", provider=PROVIDER)
    file_name = str_or_none(download.get("resourceId"))
    geometry = feature.get("geometry") if isinstance(feature.get("geometry"), dict) else None
    return DeliveredProduct(
        item_id=item_id,
        tracking_key=tracking_key,
        geometry=geometry,
        bbox=_bbox(geometry),
        datetime=parse_time(props.get("acquisitionDate")),
        properties=stac_properties(props),
        refs=refs_of(
            salesOrderId=props.get("internalReference"),
            internalLine=props.get("internalLine"),
            commercialReference=props.get("commercialReference"),
            customerReference=props.get("customerReference"),
            contractId=props.get("contractId"),
            workspaceId=props.get("workspaceId"),
        ),
        source_ids=source_ids(props, file_name),
        assets=[_data_asset(download, file_name), *_extra_assets(links)],
        via=str_or_none(as_dict(links.get("self")).get("href")),
        updated_at=_updated(feature),
    )


def download_link(value: Any) -> dict[str, Any] | None:
    """The product link of ``_links.download`` (an object or an array): the https entry, the one on
    the access host first; an ``http`` entry only when there is no https one (never ftp/ftpes/gs)."""
    links = [as_dict(v) for v in (value if isinstance(value, list) else [value])]
    https = [link for link in links if str(link.get("href") or "").startswith("https://")]
    https.sort(key=lambda link: ACCESS_HOST not in str(link.get("href")))
    http = [link for link in links if str(link.get("href") or "").startswith("http://")]
    chosen = https or http
    return chosen[0] if chosen else None


def stac_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """STAC names for what the item tells (eo, view, processing, timestamps extensions); the
    platform and constellation in the project's vocabulary, OneAtlas's own as
    ``oneatlas:platform`` / ``oneatlas:constellation``."""
    out: dict[str, Any] = {}
    for name, stac_name in _PROPERTY_NAMES.items():
        value = as_float(props.get(name))
        if value is not None:
            out[stac_name] = value
    out.update(
        vocabulary_properties(
            PROVIDER, str_or_none(props.get("platform")), str_or_none(props.get("constellation"))
        )
    )
    level = str_or_none(props.get("processingLevel"))
    if level is not None:
        out["processing:level"] = level
    expires = parse_time(props.get("expirationDate"))
    if expires is not None:
        out["expires"] = iso_millis(expires)
    published = parse_time(props.get("publicationDate"))
    if published is not None:
        out["published"] = iso_millis(published)
    return out


def source_ids(props: Mapping[str, Any], file_name: str | None) -> list[str]:
    """Acquisition join keys: PNEO ``ACQ_…`` from the zip name, legacy ``DS_…`` identifiers."""
    found: list[str] = []
    if file_name:
        found += _ACQ_ID.findall(file_name)
    for name in ("sourceIdentifier", "parentIdentifier", "acquisitionIdentifier"):
        value = str_or_none(props.get(name))
        if value is not None and value.startswith(("DS_", "ACQ_")):
            found.append(value)
    return list(dict.fromkeys(found))


def _data_asset(download: Mapping[str, Any], file_name: str | None) -> ProductAsset:
    return ProductAsset(
        key="data",
        href=str(download["href"]),
        media_type="application/zip",
        roles=["data"],
        title=file_name,
    )


def _extra_assets(links: Mapping[str, Any]) -> list[ProductAsset]:
    """Quicklook, thumbnail and image metadata links (one asset per image of a bundle)."""
    assets: list[ProductAsset] = []
    for name, (key, roles, media_type) in _EXTRA_LINKS.items():
        link = _https(links.get(name))
        if link:
            assets.append(ProductAsset(key=key, href=link[0], media_type=media_type, roles=roles))
    entries = as_list(links.get("imagesMetadata"))
    keys = {a.key for a in assets}
    for index, entry in enumerate(entries):
        href = _https(entry)
        if href:
            # One image: ``metadata``; a bundle: ``metadata-{image name}`` (``pms``,
            # ``multispectral``, ``panchromatic``), the same keys for every bundle.
            name = str_or_none(as_dict(entry).get("name")) or str(index + 1)
            key = "metadata" if len(entries) == 1 else f"metadata-{name.lower()}"
            key = key if key not in keys else f"{key}-{index + 1}"
            keys.add(key)
            assets.append(
                ProductAsset(
                    key=key,
                    href=href[0],
                    media_type="application/geo+json",
                    roles=["metadata"],
                )
            )
    return assets


def _https(value: Any) -> list[str]:
    """The http(s) hrefs of a link object or array."""
    entries = value if isinstance(value, list) else [value]
    hrefs = [str(as_dict(e).get("href") or "") for e in entries]
    return [h for h in hrefs if h.startswith(("https://", "http://"))]


def _bbox(geometry: Mapping[str, Any] | None) -> list[float] | None:
    if geometry is None:
        return None
    try:
        return [float(v) for v in shape(dict(geometry)).bounds]
    except (ValueError, TypeError, AttributeError, IndexError):
        return None
