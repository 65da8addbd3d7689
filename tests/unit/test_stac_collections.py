"""Collections of delivered items: one per provider and constellation, valid STAC Collections
whose item_assets and band summaries describe the items, printed by ``tasking-worker stac
collections``; one vocabulary for the same satellite from either provider."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli.base import app
from worker.events.stac_collections import ASSET_KEYS, collection, collection_id, collection_ids
from worker.events.stac_validation import validate_collection
from worker.events.stac_vocabulary import mapping_rows, vocabulary_properties


def test_the_same_satellite_has_the_same_vocabulary_from_either_provider() -> None:
    for oneatlas, up42 in (("PHR1A", "PHR-1A"), ("SPOT7", "SPOT-7"), ("PNEO3", "PNEO-3")):
        a = vocabulary_properties("oneatlas", oneatlas, None)
        b = vocabulary_properties("up42", up42, None)
        assert (a["platform"], a["constellation"], a["instruments"]) == (
            b["platform"],
            b["constellation"],
            b["instruments"],
        )
        assert a["platform"] == a["platform"].lower()
        assert a["oneatlas:platform"] == oneatlas
        assert b["up42:platform"] == up42
    assert collection_id("oneatlas", "PHR1B", "PHR") == "oneatlas-pleiades"
    assert collection_id("up42", None, "phr") == "up42-pleiades"
    assert collection_id("oneatlas", "PNEO4", "PNEO") == "oneatlas-pleiades-neo"
    assert collection_id("up42", "WV-3", "WORLDVIEW") == "up42-other"


def test_the_documented_mapping_table_is_the_code_s() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "stac.md").read_text(encoding="utf-8")
    for provider_value, platform, constellation, instruments in mapping_rows():
        row = f"| `{provider_value}` | `{platform}` | `{constellation}` | `{instruments}` |"
        assert row in doc, f"docs/stac.md lacks the row {row}"


@pytest.mark.parametrize("identifier", collection_ids())
def test_every_collection_is_valid_and_describes_its_items(identifier: str) -> None:
    document = collection(identifier, "https://stac.example/")
    validate_collection(document)
    assert document["id"] == identifier
    assert set(document["item_assets"]) == set(ASSET_KEYS)
    roles = {p["name"]: p["roles"] for p in document["providers"]}
    assert "licensor" in roles["Airbus Defence and Space"]
    assert any("host" in r for r in roles.values())
    if identifier.endswith("-other"):
        assert document["summaries"] == {}
        return
    ms = document["item_assets"]["multispectral"]["bands"]
    assert len(ms) >= 4
    assert {b["eo:common_name"] for b in ms} >= {"red", "green", "blue", "nir"}
    assert all(0.3 < b["eo:center_wavelength"] < 1.0 for b in ms)
    assert document["item_assets"]["panchromatic"]["bands"][0]["eo:common_name"] == "pan"
    links = {link["rel"]: link["href"] for link in document["links"]}
    assert links["self"] == f"https://stac.example/collections/{identifier}"


def test_the_command_prints_every_collection_and_writes_them(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["stac", "collections"], env={})
    assert printed.exit_code == 0, printed.output
    answer = json.loads(printed.output)
    assert [c["id"] for c in answer["collections"]] == collection_ids()
    written = runner.invoke(app, ["stac", "collections", "--dest", str(tmp_path)], env={})
    assert written.exit_code == 0, written.output
    for identifier in collection_ids():
        assert json.loads((tmp_path / f"{identifier}.json").read_text())["id"] == identifier
    based = runner.invoke(
        app, ["stac", "collections"], env={"TASKING_STAC__BASE_URL": "https://stac.example/"}
    )
    assert "https://stac.example/collections/oneatlas-spot" in based.output


def test_an_invalid_base_url_stops_the_command_naming_the_variable() -> None:
    result = CliRunner().invoke(app, ["stac", "collections"], env={"TASKING_STAC__BASE_URL": "not a url"})
    assert result.exit_code == 2
    assert re.search(r"TASKING_STAC__BASE_URL", result.output)


def test_the_documented_items_are_valid_and_of_both_providers() -> None:
    from worker.events.stac_validation import validate_item

    doc = (Path(__file__).parents[2] / "docs" / "stac.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", doc, flags=re.DOTALL)]
    assert len(blocks) == 3
    for item in blocks:
        validate_item(item)
    assert [b["properties"]["tasking:provider"] for b in blocks] == ["oneatlas", "up42", "up42"]
    assert {b["collection"] for b in blocks} == {"oneatlas-pleiades", "up42-pleiades"}
