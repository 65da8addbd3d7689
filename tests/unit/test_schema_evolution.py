"""Schemas evolve compatibly: what an earlier release wrote still validates today, and every
field added after a schema's first release is optional (with its default documented).

The fixtures are the earlier releases' own files (``tests/unit/fixtures/README.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from worker.events.examples import example_payloads
from worker.events.schemas import SPECS, json_schema, spec_for

FIXTURES = Path(__file__).parent / "fixtures"
RELEASES = sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name.startswith("release-"))
OLD_EXAMPLES = sorted((r.name, e) for r in RELEASES for e in sorted((r / "examples").glob("*.json")))
SCHEMA_BY_FILE = {spec.file: spec for spec in SPECS}


def today(stem: str) -> dict[str, Any]:
    return json_schema(spec_for(stem))


def objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The top-level object and every ``$defs`` entry, by name."""
    return {"<root>": schema, **schema.get("$defs", {})}


def added_fields() -> list[tuple[str, str, str]]:
    """``(schema file, object, field)`` for every field that today's schemas have and the first
    release of that schema had not."""
    added: list[tuple[str, str, str]] = []
    for spec in SPECS:
        first = next((r / spec.file for r in RELEASES if (r / spec.file).exists()), None)
        if first is None or spec.file == "delivery-event.json":  # a STAC Item: open by design
            continue
        old = objects(json.loads(first.read_text()))
        for name, obj in objects(json_schema(spec)).items():
            before = old.get(name, {}).get("properties")
            if before is None:
                continue
            added += [(spec.file, name, field) for field in obj.get("properties", {}) if field not in before]
    return added


@pytest.mark.parametrize(("release", "example"), OLD_EXAMPLES, ids=lambda v: getattr(v, "name", v))
def test_an_earlier_release_example_validates_against_todays_schema(release: str, example: Path) -> None:
    payload = json.loads(example.read_text())
    errors = list(Draft202012Validator(today(example.stem)).iter_errors(payload))
    assert errors == [], f"{release}/{example.name}: " + "; ".join(e.message for e in errors)


def test_the_fields_added_since_the_first_release_are_known() -> None:
    assert {(f, o, n) for f, o, n in added_fields() if f == "order-status-event.json"} == {
        ("order-status-event.json", "<root>", "offers"),
        ("order-status-event.json", "Progress", "deliveries"),
    }


@pytest.mark.parametrize(("file", "obj", "name"), added_fields())
def test_a_field_added_after_the_first_release_is_optional_with_a_documented_default(
    file: str, obj: str, name: str
) -> None:
    schema = objects(json_schema(SCHEMA_BY_FILE[file]))[obj]
    assert name not in schema.get("required", []), f"{file} {obj}.{name} must be optional"
    prop = schema["properties"][name]
    if SCHEMA_BY_FILE[file].mode == "serialization":  # events: the consumer needs the default
        assert "default" in prop, f"{file} {obj}.{name}: no default"
        assert "absent means" in prop.get("description", ""), f"{file} {obj}.{name}: default undocumented"


@pytest.mark.parametrize("stem", sorted(example_payloads()))
def test_todays_examples_without_the_added_fields_still_validate(stem: str) -> None:
    """An event written without the fields added after the first release (a producer or a
    stored event of the older release) is valid."""
    payload = json.loads(json.dumps(example_payloads()[stem]))
    spec = spec_for(stem)
    for file, obj, name in added_fields():
        if file != spec.file:
            continue
        if obj == "<root>":
            payload.pop(name, None)
        elif obj == "Progress" and isinstance(payload.get("progress"), dict):
            payload["progress"].pop(name, None)
    errors = list(Draft202012Validator(json_schema(spec)).iter_errors(payload))
    assert errors == [], "; ".join(e.message for e in errors)
