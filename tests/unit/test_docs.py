"""The documents a reader follows: links that resolve, contract sections numbered without gaps
and cited correctly, the README's diagram within 100 columns, and the examples linked."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "reference").glob("*.md")),
    *sorted((ROOT / "docs" / "adr").glob("*.md")),
    ROOT / "helm" / "tasking-worker" / "README.md",
]
_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
_CITATION = re.compile(r"(?:CONTRACT|contract(?:\.md)?) §(\d+(?:\.\d+)?)")


def _sections() -> list[str]:
    text = (ROOT / "docs" / "contract.md").read_text()
    return re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", text, re.MULTILINE)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    missing = [
        target
        for target, _ in _LINK.findall(path.read_text())
        if "://" not in target and not target.startswith("mailto:") and not (path.parent / target).exists()
    ]
    assert missing == []


def test_contract_sections_are_numbered_without_gaps() -> None:
    sections = _sections()
    assert sections[0] == "1"
    for previous, current in itertools.pairwise(sections):
        major, _, minor = current.partition(".")
        before_major, _, before_minor = previous.partition(".")
        if minor:
            expected_minor = int(before_minor) + 1 if before_major == major and before_minor else 1
            assert (major, int(minor)) == (before_major, expected_minor), f"{previous} -> {current}"
        else:
            assert int(major) == int(before_major) + 1, f"{previous} -> {current}"


def test_every_contract_citation_names_a_section() -> None:
    sections = set(_sections())
    wrong = []
    for folder in ("worker", "tests", "schemas", "docs", "helm"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".json", ".yaml"} or "providers" in path.parts[-2:-1]:
                continue
            for number in _CITATION.findall(path.read_text(errors="replace")):
                if number not in sections:
                    wrong.append(f"{path.relative_to(ROOT)}: §{number}")
    assert wrong == []


def test_the_readme_fits_100_columns_in_its_diagrams() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
    assert blocks
    wide = [line for block in blocks for line in block.splitlines() if len(line) > 100]
    assert wide == []


def test_the_examples_are_linked_for_producers_and_on_call() -> None:
    for doc in ("README.md", "docs/operations.md"):
        assert "schemas/examples/" in (ROOT / doc).read_text(), doc
    assert (ROOT / "schemas" / "examples" / "command.cancel.json").exists()
