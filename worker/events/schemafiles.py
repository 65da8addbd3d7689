"""The files under ``schemas/``: :func:`render` builds every file's text, :func:`write` writes them
and :func:`differences` (``tasking-worker schemas --check``) names the files that differ. Output is
deterministic: JSON with sorted keys and a trailing newline, YAML in a fixed order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import yaml

from worker.events.asyncapi import asyncapi_document
from worker.events.examples import example_payloads
from worker.events.schemas import SPECS, json_schema

ASYNCAPI_FILE: Final = "asyncapi.yaml"


EXAMPLES_DIR: Final = "examples"


# --------------------------------------------------------------------------- files
def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml_text(value: Any) -> str:
    # Round-trip through JSON so YAML sees only plain types (no anchors, no Python tags).
    plain = json.loads(json.dumps(value))
    return yaml.dump(
        plain, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False
    )


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, so the Markdown descriptions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def render() -> dict[str, str]:
    """Every generated file (path relative to the schemas directory -> text)."""
    files = {spec.file: _json_text(json_schema(spec)) for spec in SPECS}
    files[ASYNCAPI_FILE] = _yaml_text(asyncapi_document())
    from worker.events import stac_tasking

    files[stac_tasking.FILE] = _json_text(stac_tasking.tasking_extension_schema())
    for stem, payload in example_payloads().items():
        files[f"{EXAMPLES_DIR}/{stem}.json"] = _json_text(payload)
    return files


def write(out: Path) -> list[Path]:
    """Write every generated file under ``out`` (created if needed); returns the paths written."""
    written = []
    for relative, text in render().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def differences(out: Path) -> list[str]:
    """Files under ``out`` that are missing, differ, or are stale examples (empty: up to date)."""
    expected = render()
    problems = []
    for relative, text in expected.items():
        path = out / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{relative}: differs from the models")
    examples = out / EXAMPLES_DIR
    if examples.is_dir():
        for path in sorted(examples.glob("*.json")):
            if f"{EXAMPLES_DIR}/{path.name}" not in expected:
                problems.append(f"{EXAMPLES_DIR}/{path.name}: not generated (stale)")
    return problems
