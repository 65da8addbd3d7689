"""The import contracts of docs/architecture.md hold (import-linter, [tool.importlinter] in pyproject.toml).

`make check` runs `lint-imports` too; this test puts the same check in `make test`, which CI runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail("lint-imports is missing: install the dev dependencies (pip install -e '.[dev]')")
    return subprocess.run(
        [str(lint), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=240
    )


def test_the_rings_hold() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " 0 broken." in done.stdout


def test_an_arrow_pointing_outward_is_reported(tmp_path: Path) -> None:
    # The runtime does import the domain: a contract forbidding it must fail, naming the import.
    config = tmp_path / "contracts.ini"
    config.write_text(
        "[importlinter]\nroot_package = worker\n\n"
        "[importlinter:contract:outward]\nname = outward\ntype = forbidden\n"
        "source_modules = worker.runtime\nforbidden_modules = worker.domain\n",
        encoding="utf-8",
    )
    done = lint_imports("--config", str(config))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "BROKEN" in done.stdout
    assert "worker.runtime." in done.stdout
