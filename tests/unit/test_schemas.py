"""Generated schemas: committed files match the models, examples fit, AsyncAPI parses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from worker.cli.base import app
from worker.events.models import OPTIONAL_OUTPUT_FIELD, DeadLetter
from worker.events.schemas import SPECS, spec_for

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
ASYNCAPI_TOOL = ROOT / "tools" / "asyncapi"
runner = CliRunner()


def test_committed_schemas_are_up_to_date() -> None:
    result = runner.invoke(app, ["schemas", "--check", "--out", str(SCHEMAS)])
    assert result.exit_code == 0, result.output


def test_check_names_a_tampered_file(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    command = copy / "command.json"
    command.write_text(command.read_text().replace('"approve"', '"approve-all"'))
    (copy / "examples" / "order-request.stale.json").write_text("{}\n")
    result = runner.invoke(app, ["schemas", "--check", "--out", str(copy)])
    assert result.exit_code == 1
    assert "command.json: differs" in result.output
    assert "order-request.stale.json: not generated" in result.output


def test_write_then_check_passes_in_an_empty_directory(tmp_path: Path) -> None:
    written = runner.invoke(app, ["schemas", "--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert runner.invoke(app, ["schemas", "--check", "--out", str(tmp_path)]).exit_code == 0
    assert {p.name for p in tmp_path.glob("*.json")} == {spec.file for spec in SPECS} | {
        "stac-extension-tasking.json"
    }


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


EXAMPLES = sorted((SCHEMAS / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_fits_its_json_schema(path: Path) -> None:
    validator = _validator(spec_for(path.stem).file)
    errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
    assert errors == []


def test_json_schema_refuses_what_the_model_refuses() -> None:
    validator = _validator("order-request.json")
    request = json.loads((SCHEMAS / "examples" / "order-request.up42-pleiades-panama.json").read_text())
    wrong_product = {**request, "product": {"mission": "SPOT", "programmingType": "ONEDAY"}}
    with_hole = {
        **request,
        "aoi": {
            "type": "Polygon",
            "coordinates": [request["aoi"]["coordinates"][0], request["aoi"]["coordinates"][0]],
        },
    }
    unknown_field = {**request, "colour": "blue"}
    for bad in (wrong_product, with_hole, unknown_field):
        assert not validator.is_valid(bad)


def test_dead_letter_payload_encoding_is_optional_as_the_contract_says() -> None:
    """CONTRACT §4.5: absent (or "utf-8") for a text payload, "base64" otherwise."""
    validator = _validator("dead-letter.json")
    written = json.loads((SCHEMAS / "examples" / "dead-letter.json").read_text())
    without = {k: v for k, v in written.items() if k != "payloadEncoding"}
    assert validator.is_valid(without), [e.message for e in validator.iter_errors(without)]
    assert DeadLetter.model_validate(without).payload_encoding == "utf-8"
    assert validator.is_valid({**written, "payloadEncoding": "base64", "payload": "AAEC"})
    assert not validator.is_valid({**written, "payloadEncoding": "latin-1"})
    for required in ("error", "source", "payload", "receivedAt"):  # the others stay required
        assert not validator.is_valid({k: v for k, v in written.items() if k != required}), required


def test_no_internal_schema_marker_is_published() -> None:
    published = [p for p in SCHEMAS.rglob("*") if p.is_file() and OPTIONAL_OUTPUT_FIELD in p.read_text()]
    assert published == []


def test_asyncapi_lists_every_contract_topic() -> None:
    document = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    addresses = {c["address"] for c in document["channels"].values()}
    assert document["asyncapi"] == "3.0.0"
    assert addresses == {
        "tasking.order-requests",
        "tasking.commands",
        "tasking.order-status",
        "tasking.acquisitions",
        "tasking.deliveries",
        "tasking.dead-letter",
        "tasking.worker-state",
    }
    actions = {
        o["channel"]["$ref"].rsplit("/", 1)[1]: o["action"]
        for o in document["operations"].values()
        if o["action"] == "receive"
    }
    assert set(actions) == {"orderRequests", "commands", "workerState"}


def test_asyncapi_document_passes_the_asyncapi_parser(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (ASYNCAPI_TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("run `npm ci` in tools/asyncapi first (the Makefile does)")
    script = str(ASYNCAPI_TOOL / "validate.mjs")
    ok = subprocess.run(
        [node, script, str(SCHEMAS / "asyncapi.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "asyncapi.yaml"
    shutil.copytree(SCHEMAS, tmp_path, dirs_exist_ok=True)
    broken.write_text(broken.read_text().replace("action: send", "action: publish", 1))
    failed = subprocess.run(
        [node, script, str(broken)], capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode != 0
    assert "action" in failed.stdout


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("schemas", "submit", "tail"):
        assert command in result.output
