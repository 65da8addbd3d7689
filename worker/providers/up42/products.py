"""UP42 STAC items as delivered products: an item and its collection's original archive to a
:class:`~worker.events.products.DeliveredProduct` (stable asset keys, checksums, bbox, signed
links left out), and the small STAC search helpers (``any_of``, ``next_link``) that the delivery
discovery (:mod:`worker.providers.up42.delivery`) uses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from worker.checksums import canonical
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.stac_vocabulary import vocabulary_properties
from worker.providers.up42.mapping import PROVIDER, _number, _parse_time

# These helpers are the delivery discovery's: their lines keep its logger name.
log = structlog.get_logger("worker.providers.up42.delivery")


ORDER_KEYS: Final = ("up42-order:id", "up42-order:order_id")  # the second: items written by old tools
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
