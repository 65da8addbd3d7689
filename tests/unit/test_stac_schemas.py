"""The shipped STAC schemas are the official files, byte for byte, and validation checks formats.

The manifest names each file's source, tag and SHA-256; any edit of a file, an unlisted file or a
listed file that is missing fails here. Validation goes through the official extension rules
(for example the timestamps extension refuses an ``expires`` that is not UTC) and through the
format checker (a ``datetime`` that is not a date-time is refused).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pystac
import pytest
from pystac.validation import JsonSchemaSTACValidator, validate_dict

from worker.events.delivery import DeliveryEvent
from worker.events.examples import delivery_example
from worker.events.models import Provider
from worker.events.stac_collections import collections
from worker.events.stac_validation import (
    manifest,
    manifest_problems,
    schemas,
    shipped_extensions,
    validate_collection,
    validate_item,
)


def test_every_shipped_schema_matches_its_manifest_entry() -> None:
    assert manifest_problems() == []
    sources = {e["file"]: e for e in manifest()}
    for name, entry in sources.items():
        assert entry["tag"], f"{name} has no source tag"
        assert entry["source"], f"{name} has no source"
    assert {e["id"].rstrip("#") for e in manifest() if e["file"].startswith("extensions/")} == set(
        shipped_extensions()
    )


def test_an_edited_file_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.events.stac_validation as module

    real = module._bytes

    def edited(path: str) -> bytes:
        data = real(path)
        return data.replace(b'"pattern"', b'"patterN"') if path.startswith("extensions/file") else data

    monkeypatch.setattr(module, "_bytes", edited)
    assert any("file-v2.1.0.json: SHA-256 differs" in p for p in manifest_problems())


def _ranged_item() -> dict[str, Any]:
    example = delivery_example()
    product = example.product.model_copy(
        update={"properties": {**example.product.properties, "expires": "2027-01-01T00:00:00Z"}}
    )
    return DeliveryEvent(
        request_id="r-1", provider=Provider.UP42, product=product, occurred_at=example.occurred_at
    ).stac_item()


def test_official_rules_and_formats_are_enforced() -> None:
    item = _ranged_item()
    validate_item(item)
    not_utc = copy.deepcopy(item)
    not_utc["properties"]["expires"] = "2027-01-01T02:00:00+02:00"
    with pytest.raises(jsonschema.ValidationError):
        validate_item(not_utc)
    bad_time = copy.deepcopy(item)
    bad_time["properties"]["datetime"] = "2026-13-45T99:00:00Z"
    with pytest.raises(jsonschema.ValidationError, match="date-time"):
        validate_item(bad_time)
    bad_checksum = copy.deepcopy(item)
    next(iter(bad_checksum["assets"].values()))["file:checksum"] = "D50110ZZ"
    with pytest.raises(jsonschema.ValidationError):
        validate_item(bad_checksum)


class _LocalValidator(JsonSchemaSTACValidator):
    """pystac's validator fed only from the shipped schemas: an unknown URL fails, never fetched."""

    def __init__(self) -> None:
        super().__init__(allow_list=[])
        self.schema_cache = {uri: copy.deepcopy(schema) for uri, schema in schemas().items()}


def test_items_and_collections_round_trip_through_pystac_and_validate() -> None:
    validator = _LocalValidator()
    item = _ranged_item()
    again = pystac.Item.from_dict(copy.deepcopy(item)).to_dict(include_self_link=False, transform_hrefs=False)
    assert json.dumps(again, sort_keys=True) == json.dumps(item, sort_keys=True)
    validate_dict(again, validator=validator)
    for document in collections("https://stac.example/"):
        validate_collection(document)
        round_trip = pystac.Collection.from_dict(copy.deepcopy(document)).to_dict(
            include_self_link=True, transform_hrefs=False
        )
        assert round_trip["item_assets"] == document["item_assets"]
        assert round_trip.get("summaries", {}) == document["summaries"]
        validate_dict(round_trip, validator=validator)


def test_items_validate_against_the_published_tasking_extension_schema() -> None:
    from pathlib import Path

    published = json.loads(
        (Path(__file__).parents[2] / "schemas" / "stac-extension-tasking.json").read_text(encoding="utf-8")
    )
    validator = jsonschema.Draft7Validator(
        published, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    item = _ranged_item()
    validator.validate(item)
    unknown = copy.deepcopy(item)
    unknown["properties"]["tasking:colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(unknown)
    missing = copy.deepcopy(item)
    del missing["properties"]["tasking:request_id"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(missing)


def test_verbatim_extension_schemas_equal_the_files_the_pystac_wheels_ship() -> None:
    """The files marked verbatim are byte for byte the official schemas that the pystac-ext-*
    wheels (installed with pystac) ship; the others are marked as transcriptions with a reason."""
    from importlib.resources import files

    import worker.events.stac_validation as module

    official = files("pystac.extensions").joinpath("json-schema")
    verbatim = [e for e in manifest() if e.get("verbatim")]
    assert len(verbatim) >= 4
    for entry in verbatim:
        assert module._bytes(entry["file"]) == official.joinpath(entry["wheel_path"]).read_bytes()
    for entry in manifest():
        if entry["file"].startswith("extensions/") and not entry.get("verbatim"):
            assert "transcribed" in entry["source"]
