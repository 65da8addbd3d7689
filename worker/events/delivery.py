"""The ``DeliveryEvent`` (CONTRACT §4.4): one delivered product of one request, as a STAC Item.

:class:`DeliveryEvent` is what the domain core puts in an order's outbox (the product as the
adapter found it, the request it belongs to and the acquisitions it was joined to);
:meth:`DeliveryEvent.stac_item` builds its wire form, a STAC 1.1.0 Item, with ``pystac``. The
item is a pure function of the event's payload, so a re-published event (same ``ce_id``) carries
the same content.

Extensions are listed in ``stac_extensions`` only when one of their fields is used. Their JSON
Schemas ship with the project (``worker/events/stac_schemas``) and the tests validate every
published item against them offline.

This module does no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import pystac
from pydantic import BaseModel, ConfigDict, Field

from worker.events.geometry import normalized
from worker.events.models import Provider
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.stac_collections import asset_bands, asset_gsd, collection_id, sensor_of_collection

STAC_VERSION: Final = "1.1.0"

EO: Final = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
VIEW: Final = "https://stac-extensions.github.io/view/v1.0.0/schema.json"
PROCESSING: Final = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
FILE: Final = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
TIMESTAMPS: Final = "https://stac-extensions.github.io/timestamps/v1.1.0/schema.json"
AUTHENTICATION: Final = "https://stac-extensions.github.io/authentication/v1.1.0/schema.json"
PROJECTION: Final = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"

EXTENSIONS: Final = (EO, VIEW, PROCESSING, FILE, TIMESTAMPS, AUTHENTICATION, PROJECTION)
"""Every extension a DeliveryEvent may use (the shipped schemas cover exactly these)."""

# Which extension a property prefix (or a timestamps field) belongs to.
_PREFIXES: Final = {"eo:": EO, "view:": VIEW, "processing:": PROCESSING, "proj:": PROJECTION}
_TIMESTAMPS_FIELDS: Final = frozenset({"expires", "published", "unpublished"})


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeliveryEvent(BaseModel):
    """A delivered product of one request (the outbox form of CONTRACT §4.4).

    ``acquisition_ids`` are the ``acquisitionId``s the product was joined to (``[]`` when the
    provider's data allows no join). ``occurred_at`` is when the worker saw the product: it is the
    CloudEvents ``time``, not part of the item.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str
    provider: Provider
    product: DeliveredProduct
    acquisition_ids: list[str] = Field(default_factory=list)
    occurred_at: datetime
    # 1: the same item published again, complete, after a partial first publication.
    revision: int = 0

    @property
    def ce_id(self) -> str:
        """Deterministic CloudEvents id: ``{requestId}:delivery:{itemId}`` (``:r{revision}`` added
        for a revision)."""
        base = f"{self.request_id}:delivery:{self.product.item_id}"
        return f"{base}:r{self.revision}" if self.revision else base

    def stac_item(self, base_url: str | None = None) -> dict[str, Any]:
        """The STAC 1.1.0 Item (a JSON object) this event is published as.

        ``datetime`` is the product's acquisition time; with only a range, ``datetime`` is null and
        ``start_datetime``/``end_datetime`` carry it (STAC allows exactly that; some linters warn
        about a null ``datetime``: the range is the truth, an invented instant would not be); with
        no time at all, the product's update time (else ``occurred_at``) stands in, because STAC
        requires one.

        ``collection`` is the product's collection (:mod:`worker.events.stac_collections`);
        ``geometry`` is counter-clockwise and split at the antimeridian, ``bbox`` its tight bounds
        (:func:`worker.events.geometry.normalized`). Raster assets (``multispectral``,
        ``panchromatic``) carry ``bands`` and ``gsd`` from the sensor's table. With ``base_url``
        (``TASKING_STAC__BASE_URL``) the item links ``self``, ``collection``, ``parent`` and
        ``root`` under it; ``via`` always points at the provider's own record.
        """
        product = self.product
        when = product.datetime
        if when is None and (product.start_datetime is None or product.end_datetime is None):
            when = product.updated_at or self.occurred_at
        scheme = self.provider.value
        properties: dict[str, Any] = {
            **product.properties,
            "tasking:request_id": self.request_id,
            "tasking:provider": self.provider.value,
            "tasking:provider_refs": dict(sorted(product.refs.items())),
            "tasking:acquisition_ids": list(self.acquisition_ids),
        }
        if any(a.needs_auth for a in product.assets):
            properties["auth:schemes"] = {
                scheme: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"the {scheme} access token of the account that placed the order",
                }
            }
        collection = collection_id(scheme, properties.get("platform"), properties.get("constellation"))
        sensor = sensor_of_collection(collection)
        geometry, bbox = _geometry(product.geometry, product.bbox)
        item = pystac.Item(
            id=product.item_id,
            geometry=geometry,
            bbox=bbox,
            datetime=when,
            properties=properties,
            start_datetime=product.start_datetime,
            end_datetime=product.end_datetime,
        )
        assets = {asset.key: _asset(asset, scheme, sensor) for asset in product.assets}
        for key, value in assets.items():
            item.add_asset(key, value)
        for link in _links(collection, product.item_id, base_url):
            item.add_link(link)
        if product.via is not None:
            # The provider's record is a GeoJSON Feature (UP42 STAC item) or FeatureCollection
            # (OneAtlas opensearch answer).
            item.add_link(pystac.Link(rel="via", target=product.via, media_type="application/geo+json"))
        item.stac_extensions = _extensions(properties, product.assets, assets)
        data = item.to_dict(include_self_link=bool(base_url), transform_hrefs=False)
        data["stac_version"] = STAC_VERSION
        data["collection"] = collection
        return data


def _geometry(
    geometry: dict[str, Any] | None, bbox: list[float] | None
) -> tuple[dict[str, Any] | None, list[float] | None]:
    """The item's geometry and bbox from the product's (the provider's bbox only without one)."""
    if geometry is None:
        return None, bbox
    try:
        return normalized(geometry)
    except ValueError:
        return geometry, bbox


def _links(collection: str, item_id: str, base_url: str | None) -> list[pystac.Link]:
    """``self``/``collection``/``parent``/``root`` under ``base_url``; without one, only the
    ``collection`` link STAC requires beside the ``collection`` field, relative to where
    ``tasking-worker download`` stores the item (``DEST/{item}/{item}.json``, the collection
    documents in ``DEST/collections/``)."""
    json_type = "application/json"
    if not base_url:
        return [pystac.Link(rel="collection", target=local_collection_href(collection), media_type=json_type)]
    base = base_url.rstrip("/")
    home = f"{base}/collections/{collection}"
    return [
        pystac.Link(rel="self", target=f"{home}/items/{item_id}", media_type="application/geo+json"),
        pystac.Link(rel="collection", target=home, media_type=json_type),
        pystac.Link(rel="parent", target=home, media_type=json_type),
        pystac.Link(rel="root", target=f"{base}/", media_type=json_type),
    ]


def local_collection_href(collection: str) -> str:
    """The ``collection`` link of an item stored by ``tasking-worker download``."""
    return f"../collections/{collection}.json"


def _asset(asset: ProductAsset, scheme: str, sensor: Any) -> pystac.Asset:
    extra: dict[str, Any] = dict(asset.fields)
    bands = asset_bands(asset.key, sensor)
    if bands is not None:
        extra["bands"] = bands
        extra.setdefault("gsd", asset_gsd(asset.key, sensor))
    if asset.size is not None:
        extra["file:size"] = asset.size
    if asset.checksum is not None:
        extra["file:checksum"] = asset.checksum
    if asset.needs_auth:
        extra["auth:refs"] = [scheme]
    return pystac.Asset(
        href=asset.href,
        title=asset.title,
        media_type=asset.media_type,
        roles=list(asset.roles) or None,
        extra_fields=extra,
    )


def _extensions(
    properties: dict[str, Any], assets: list[ProductAsset], built: dict[str, pystac.Asset]
) -> list[str]:
    """The schema URL of every extension whose fields the item uses, in a fixed order."""
    used: set[str] = set()
    names = [*properties, *(name for a in built.values() for name in a.extra_fields)]
    for name in names:
        used.update(url for prefix, url in _PREFIXES.items() if name.startswith(prefix))
        if name in _TIMESTAMPS_FIELDS:
            used.add(TIMESTAMPS)
    if any("bands" in a.extra_fields for a in built.values()):
        used.add(EO)  # eo:common_name and the wavelengths inside ``bands``
    if "auth:schemes" in properties:
        used.add(AUTHENTICATION)
    if any(a.size is not None or a.checksum is not None for a in assets):
        used.add(FILE)
    return [url for url in EXTENSIONS if url in used]


def stac_time(value: datetime) -> str:
    """A time as the items carry it (RFC 3339, UTC, ``Z``), for adapters filling ``properties``."""
    return _utc(value)
