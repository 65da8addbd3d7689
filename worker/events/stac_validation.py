"""Offline validation of STAC Items against the schemas shipped in ``worker/events/stac_schemas``.

:func:`validate_item` checks an item against STAC core 1.1.0 (with the GeoJSON schemas it
references) and against the schema of every extension the item lists in ``stac_extensions``.
Every schema is resolved from the local registry built by :func:`registry`: nothing is fetched.

Raises (from :func:`validate_item`):
    jsonschema.ValidationError: the item breaks a schema (the first error found).
    UnknownExtension: the item lists an extension whose schema is not shipped.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Final

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ITEM_SCHEMA: Final = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
_CORE_BASE: Final = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/"


class UnknownExtension(ValueError):
    """An item lists an extension schema the project does not ship."""


def _load(path: str) -> dict[str, Any]:
    text = resources.files("worker.events").joinpath("stac_schemas", path).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def registry() -> Registry[Any]:
    """Every shipped schema, by its ``$id`` (and core files also by their file URL)."""
    root = resources.files("worker.events").joinpath("stac_schemas")
    pairs: list[tuple[str, Resource[Any]]] = []
    for folder in ("stac/v1.1.0", "geojson", "extensions"):
        for entry in sorted(root.joinpath(folder).iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".json"):
                continue
            schema = _load(f"{folder}/{entry.name}")
            resource: Resource[Any] = DRAFT7.create_resource(schema)
            pairs.append((str(schema.get("$id", "")).rstrip("#"), resource))
            if folder == "stac/v1.1.0":
                pairs.append((_CORE_BASE + entry.name, resource))
    built: Registry[Any] = Registry().with_resources(pairs)
    return built


def shipped_extensions() -> frozenset[str]:
    """The extension schema URLs the project ships."""
    return frozenset(uri for uri in registry() if uri.startswith("https://stac-extensions.github.io/"))


def validate_item(item: dict[str, Any]) -> None:
    """Validate ``item`` against STAC core 1.1.0 and each listed extension (see module docstring)."""
    reg = registry()
    core = reg.contents(ITEM_SCHEMA)
    Draft7Validator(core, registry=reg).validate(item)
    for url in item.get("stac_extensions") or []:
        if url not in shipped_extensions():
            raise UnknownExtension(f"no shipped schema for {url}")
        Draft7Validator(reg.contents(url), registry=reg).validate(item)
