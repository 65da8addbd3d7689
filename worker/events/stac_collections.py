"""The STAC Collections that delivered items belong to (``docs/stac.md``, "Collections").

One collection per provider and constellation: ``oneatlas-pleiades``, ``oneatlas-spot``,
``oneatlas-pleiades-neo``, ``up42-pleiades``, ``up42-spot``, ``up42-pleiades-neo``, plus
``{provider}-other`` for a satellite the vocabulary does not know. :func:`collection_id` names
an item's collection; :func:`collection` builds the Collection document (extent, license,
providers and their roles, ``item_assets``, ``summaries`` of the bands); :func:`collections`
lists them all (``tasking-worker stac collections`` prints them).

Asset keys are stable (:data:`ASSET_KEYS`): they name what an asset is, never a file, so every
item of a collection has the same keys and ``item_assets`` describes them.

This module does no I/O.
"""

from __future__ import annotations

from typing import Any, Final

from worker.events.stac_vocabulary import SENSORS, Sensor, mapping_rows, sensor_of

STAC_VERSION: Final = "1.1.0"
EO: Final = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
PROJECTION: Final = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
PROVIDERS: Final = ("oneatlas", "up42")
OTHER: Final = "other"

# Stable asset keys: key → (roles, media type, title).
ZIP: Final = "application/zip"
GEOTIFF: Final = "image/tiff; application=geotiff"
COG: Final = "image/tiff; application=geotiff; profile=cloud-optimized"
ASSET_KEYS: Final[dict[str, tuple[tuple[str, ...], str | None, str]]] = {
    "data": (("data",), None, "The product as the provider delivers it"),
    "archive": (("data", "archive"), ZIP, "The product archive (OneAtlas DIMAP zip, UP42 original delivery)"),
    "multispectral": (("data", "multispectral"), GEOTIFF, "Multispectral image"),
    "panchromatic": (("data", "panchromatic"), GEOTIFF, "Panchromatic image"),
    "metadata": (("metadata",), None, "Product metadata"),
    "overview": (("overview",), "image/jpeg", "Quicklook"),
    "thumbnail": (("thumbnail",), "image/jpeg", "Thumbnail"),
}
_HOSTS: Final = {
    "oneatlas": {"name": "Airbus OneAtlas", "roles": ["host"], "url": "https://oneatlas.airbus.com"},
    "up42": {"name": "UP42", "roles": ["host"], "url": "https://up42.com"},
}
_PRODUCER: Final = {
    "name": "Airbus Defence and Space",
    "roles": ["producer", "processor", "licensor"],
    "url": "https://www.airbus.com/en/space/earth-observation",
}


def collection_id(provider: str, platform: Any, constellation: Any) -> str:
    """The collection of a product: ``{provider}-{constellation}`` of its satellite, or
    ``{provider}-other`` when the vocabulary does not know it."""
    sensor = sensor_of(platform, constellation)
    return f"{provider}-{sensor.constellation if sensor is not None else OTHER}"


def sensor_of_collection(identifier: str) -> Sensor | None:
    """The sensor of a collection id (``None`` for ``{provider}-other`` or an unknown id)."""
    _, _, constellation = identifier.partition("-")
    return SENSORS.get(constellation)


def asset_bands(key: str, sensor: Sensor | None) -> list[dict[str, Any]] | None:
    """The ``bands`` of a raster asset key (``multispectral``, ``panchromatic``) of a sensor."""
    if sensor is None:
        return None
    if key == "multispectral":
        return [b.stac() for b in sensor.multispectral]
    if key == "panchromatic":
        return [sensor.panchromatic.stac()]
    return None


def asset_gsd(key: str, sensor: Sensor | None) -> float | None:
    """The native ground sample distance of a raster asset key of a sensor."""
    if sensor is None:
        return None
    return {"multispectral": sensor.ms_gsd, "panchromatic": sensor.pan_gsd}.get(key)


def _item_assets(sensor: Sensor | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (roles, media_type, title) in ASSET_KEYS.items():
        entry: dict[str, Any] = {"title": title, "roles": list(roles)}
        if media_type is not None:
            entry["type"] = media_type
        bands = asset_bands(key, sensor)
        if bands is not None:
            entry["bands"] = bands
            entry["gsd"] = asset_gsd(key, sensor)
        out[key] = entry
    return out


def collection(identifier: str, base_url: str | None = None) -> dict[str, Any]:
    """The STAC Collection document of ``identifier`` (see the module docstring).

    With ``base_url`` (``TASKING_STAC__BASE_URL``) it links ``self``, ``root`` and ``parent``
    under that URL (``{base}/collections/{id}``).

    Raises:
        ValueError: ``identifier`` is not one of :func:`collection_ids`.
    """
    if identifier not in collection_ids():
        raise ValueError(f"unknown collection {identifier!r}")
    provider, _, _ = identifier.partition("-")
    sensor = sensor_of_collection(identifier)
    title = sensor.title if sensor is not None else "other satellites"
    host = _HOSTS[provider]["name"]
    document: dict[str, Any] = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EO] if sensor is not None else [],
        "id": identifier,
        "title": f"{title} tasking products delivered by {host}",
        "description": (
            f"Products of {title} tasking orders placed through {host}, as the worker publishes "
            "them on tasking.deliveries. Use and redistribution follow the licence of the contract "
            "under which they were ordered."
        ),
        "license": "other",
        "keywords": ["tasking", "optical", "very high resolution", provider],
        "providers": [dict(_PRODUCER), dict(_HOSTS[provider])],
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[sensor.first_launch if sensor is not None else None, None]]},
        },
        "item_assets": _item_assets(sensor),
        "summaries": _summaries(sensor),
        "links": _links(identifier, base_url),
    }
    return document


def _summaries(sensor: Sensor | None) -> dict[str, Any]:
    if sensor is None:
        return {}
    platforms = sorted({row[1] for row in mapping_rows() if row[2] == sensor.constellation})
    bands = [sensor.panchromatic, *sensor.multispectral]
    return {
        "constellation": [sensor.constellation],
        "platform": platforms,
        "instruments": list(sensor.instruments),
        "gsd": [sensor.pan_gsd, sensor.ms_gsd],
        "bands": [b.stac() for b in bands],
    }


def _links(identifier: str, base_url: str | None) -> list[dict[str, Any]]:
    if not base_url:
        return []
    base = base_url.rstrip("/")
    return [
        {"rel": "self", "href": f"{base}/collections/{identifier}", "type": "application/json"},
        {"rel": "root", "href": f"{base}/", "type": "application/json"},
        {"rel": "parent", "href": f"{base}/", "type": "application/json"},
        {"rel": "items", "href": f"{base}/collections/{identifier}/items", "type": "application/geo+json"},
    ]


def collection_ids() -> list[str]:
    """Every collection id, in a fixed order."""
    return [f"{p}-{c}" for p in PROVIDERS for c in (*SENSORS, OTHER)]


def collections(base_url: str | None = None) -> list[dict[str, Any]]:
    """Every Collection document (see :func:`collection`)."""
    return [collection(c, base_url) for c in collection_ids()]
