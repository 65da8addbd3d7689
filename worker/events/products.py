"""Delivered products, in the project's own types: what an adapter finds and what the public
DeliveryEvent (``worker.events.delivery``) is built from.

Frozen pydantic models (strict about unknown fields), kept in the durable order state as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProviderModel(BaseModel):
    """Base of the adapter-facing types: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Refs = dict[str, str]
"""Provider ids of one order (``salesOrderId``, ``taskingId``, ``quotationId``, ``orderId``, ...)."""


class ProductAsset(ProviderModel):
    """One downloadable file of a delivered product (a STAC asset).

    ``href`` is the provider's STABLE url for the file (OneAtlas ``_links.download``, UP42
    ``/v2/assets/{id}``), never a short-lived signed url: the event outlives any signature.
    ``key`` is the STAC asset key (``data``, ``original``, ``quicklook``, ``metadata``, a file
    name...), unique within its product. ``roles`` are STAC asset roles (``data``, ``original``,
    ``thumbnail``, ``overview``, ``metadata``). ``size`` becomes ``file:size``; ``checksum``
    becomes ``file:checksum`` and is a multihash in hex (md5: ``"d50110"`` + the hex digest).
    ``needs_auth`` says that a download needs the provider's bearer token (STAC authentication
    extension: ``auth:refs`` on the asset). ``fields`` are further STAC asset fields the
    provider tells (``proj:code``, ``proj:shape``, ``proj:transform``, ``gsd``), JSON values.
    Keys are stable (``worker.events.stac_collections.ASSET_KEYS``: ``data``, ``archive``,
    ``multispectral``, ``panchromatic``, ``metadata``, ``overview``, ``thumbnail``), never a
    file name.
    """

    key: str
    href: str
    media_type: str | None = None
    roles: list[str] = Field(default_factory=list)
    title: str | None = None
    size: int | None = None
    checksum: str | None = None
    needs_auth: bool = True
    fields: dict[str, Any] = Field(default_factory=dict)


Instant = datetime
"""``datetime`` under a name that the field ``DeliveredProduct.datetime`` does not shadow."""


class DeliveredProduct(ProviderModel):
    """One delivered product of one order (OneAtlas catalogue item, UP42 STAC item).

    ``item_id`` is the provider's id of the product, unique per provider: the domain publishes
    each ``(order, item_id)`` once. ``tracking_key`` is the order it belongs to (the same key as
    :attr:`PlacedOrder.tracking_key` and :meth:`TaskingProvider.poll`). ``geometry``/``bbox`` are
    GeoJSON in WGS84. ``properties`` are already in STAC names (``eo:cloud_cover``,
    ``view:incidence_angle``, ``platform``, ``constellation``, ``processing:level``, ``gsd``,
    ``proj:code``, ``expires``); values must be JSON-serialisable. ``refs`` become
    ``tasking:provider_refs`` (``salesOrderId``, ``orderId``, ``commercialReference``...).
    ``source_ids`` are the acquisition join keys found in the product (Pléiades Neo ``ACQ_...``,
    legacy ``DS_...``): the domain matches them to the acquisitions it knows, and publishes ``[]``
    when none match. ``via`` is the provider's own record of the item (``rel: via`` link).
    ``updated_at`` is the provider's ``lastUpdateDate`` / ``publicationDate`` / ``updatedAt``.
    ``partial`` says that an asset is missing because the provider could not be read for it
    (UP42: the collection holding the original archive): the product is published without it and
    published again, complete, when a later harvest brings it whole.
    """

    item_id: str
    tracking_key: str
    geometry: dict[str, Any] | None = None
    bbox: list[float] | None = None
    datetime: Instant | None = None
    start_datetime: Instant | None = None
    end_datetime: Instant | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    refs: Refs = Field(default_factory=dict)
    source_ids: list[str] = Field(default_factory=list)
    assets: list[ProductAsset]
    via: str | None = None
    updated_at: Instant | None = None
    partial: bool = False
