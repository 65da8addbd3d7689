"""Helpers shared by the operability tests: running promtool and rendering the Helm chart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tasking-worker"
CI_VALUES = CHART / "ci"
CRD_SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "crd-schemas"
PROMTOOL_INSTALL_HINT = "apt-get update && apt-get install -y prometheus  (Debian package 'prometheus')"
RELEASE = "tw"
NAMESPACE = "tasking"


def run_promtool(promtool: Path, args: Sequence[str], cwd: Path | None = None) -> str:
    """Run promtool; fail with its output when it exits non-zero, else return stdout+stderr."""
    proc = subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def run_promtool_stdin(promtool: Path, args: Sequence[str], data: bytes) -> tuple[int, str]:
    """Run promtool with ``data`` on stdin; return its exit code and combined output."""
    proc = subprocess.run([str(promtool), *args], input=data, capture_output=True, timeout=60, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).decode()


def ci_value_files() -> list[Path]:
    """Every ``ci/*-values.yaml`` value set of the chart."""
    return sorted(CI_VALUES.glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    """A values file as a dict (an empty file is ``{}``)."""
    loaded = yaml.safe_load(path.read_text()) or {}
    assert isinstance(loaded, dict)
    return loaded


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Render the chart offline with ``values``; template path -> rendered text."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        rendered: dict[str, str] = chart.render(
            values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return rendered


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    found: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


@cache
def render_objects_cached(values_file: str) -> tuple[dict[str, Any], ...]:
    """Objects rendered from one ci values file, rendered once per session."""
    return tuple(objects(render(load_values(Path(values_file)))))


def of_kind(objs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [o for o in objs if o.get("kind") == kind]


def one_of_kind(objs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of ``kind``; fails when there are none or several."""
    matches = of_kind(objs, kind)
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]
