"""Offline validation of STAC Items and Collections against the official schemas shipped in
``worker/events/stac_schemas`` (byte for byte; ``manifest.json`` names the source, tag and
SHA-256 of each file, and :func:`manifest_problems` checks them).

:func:`validate_item` checks an item against STAC core 1.1.0 (with the GeoJSON schemas it
references) and against the schema of every extension the item lists in ``stac_extensions``;
:func:`validate_collection` does the same for a Collection. Formats are checked (``date-time``,
``iri``, ``uri``...: ``jsonschema``'s format checker with the ``format-nongpl`` extras), which
pystac's own validator does not do: that is why this module does not delegate to it (the tests
also validate with pystac, fed from the same local schemas). Every schema is resolved from the
local registry built by :func:`registry`: nothing is fetched. The projection schema refers to the
PROJJSON schema for ``proj:projjson``, which is not shipped: the worker never writes that field,
and a document that carries one fails with ``referencing.exceptions.Unresolvable``.

Raises (from :func:`validate_item` / :func:`validate_collection`):
    jsonschema.ValidationError: the document breaks a schema (the first error found).
    UnknownExtension: the document lists an extension whose schema is not shipped.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any, Final

from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

ITEM_SCHEMA: Final = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
COLLECTION_SCHEMA: Final = "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"
_CORE_BASE: Final = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/"
_FOLDERS: Final = ("stac/v1.1.0", "geojson", "extensions")


class UnknownExtension(ValueError):
    """A document lists an extension schema the project does not ship."""


def _root() -> Any:
    return resources.files("worker.events").joinpath("stac_schemas")


def _bytes(path: str) -> bytes:
    return _root().joinpath(path).read_bytes()  # type: ignore[no-any-return]


def _load(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_bytes(path))
    return data


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every shipped schema by its ``$id`` (without a trailing ``#``); core item files also by
    their file URL."""
    out: dict[str, dict[str, Any]] = {}
    for folder in _FOLDERS:
        for entry in sorted(_root().joinpath(folder).iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".json"):
                continue
            schema = _load(f"{folder}/{entry.name}")
            out[str(schema.get("$id", "")).rstrip("#")] = schema
            if folder == "stac/v1.1.0":
                out.setdefault(_CORE_BASE + entry.name, schema)
    return out


@cache
def registry() -> Registry[Any]:
    """The local ``referencing`` registry of :func:`schemas`."""
    pairs = [(uri, DRAFT7.create_resource(schema)) for uri, schema in schemas().items()]
    built: Registry[Any] = Registry().with_resources(pairs)
    return built


def shipped_extensions() -> frozenset[str]:
    """The extension schema URLs the project ships."""
    return frozenset(uri for uri in schemas() if uri.startswith("https://stac-extensions.github.io/"))


def _validate(document: dict[str, Any], core: str) -> None:
    reg = registry()
    checker = Draft7Validator.FORMAT_CHECKER
    Draft7Validator(reg.contents(core), registry=reg, format_checker=checker).validate(document)
    for url in document.get("stac_extensions") or []:
        if url not in shipped_extensions():
            raise UnknownExtension(f"no shipped schema for {url}")
        Draft7Validator(reg.contents(url), registry=reg, format_checker=checker).validate(document)


def validate_item(item: dict[str, Any]) -> None:
    """Validate ``item`` against STAC core 1.1.0 and each listed extension (see module docstring)."""
    _validate(item, ITEM_SCHEMA)


def validate_collection(collection: dict[str, Any]) -> None:
    """Validate a Collection against STAC core 1.1.0 and each listed extension."""
    _validate(collection, COLLECTION_SCHEMA)


def manifest() -> list[dict[str, Any]]:
    """The entries of ``stac_schemas/manifest.json`` (file, ``$id``, source, tag, sha256)."""
    entries: list[dict[str, Any]] = json.loads(_bytes("manifest.json"))["schemas"]
    return entries


def manifest_problems() -> list[str]:
    """What differs between the shipped files and the manifest (empty when they agree): a file
    whose SHA-256 or ``$id`` is not the manifest's, a file the manifest does not list, an entry
    without its file."""
    problems: list[str] = []
    listed = {e["file"]: e for e in manifest()}
    present = {
        f"{folder}/{entry.name}"
        for folder in _FOLDERS
        for entry in _root().joinpath(folder).iterdir()
        if entry.name.endswith(".json")
    }
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: not in the manifest")
    for name, entry in sorted(listed.items()):
        if name not in present:
            problems.append(f"{name}: in the manifest but not shipped")
            continue
        data = _bytes(name)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{name}: SHA-256 differs from the manifest (the file was edited)")
        if str(json.loads(data).get("$id", "")) != entry["id"]:
            problems.append(f"{name}: $id differs from the manifest")
    return problems
