"""The generated references (``tasking-worker docs``): complete, and not stale.

Every check reads the code independently of the generator where it can: the settings from the
models, the metric families from the ``/metrics`` exposition, the reason codes from the calls in
the source that build a reason or a dead letter."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker import reference
from worker.cli.base import app
from worker.config import known_variables
from worker.events.codec import DeadLetterCode
from worker.events.reasons import ReasonCode
from worker.observability.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"

# Calls whose string arguments are status reason codes, and names assigned reason codes.
_REASON_CALLS = {"reason", "Reason", "audit_reason", "failure_reason"}
_REASON_NAMES = {"code", "default", "default_code", "reason_code"}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")


def _codes_in(node: ast.AST) -> set[str]:
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and _CODE.fullmatch(n.value)
    }


def emitted_status_codes() -> set[str]:
    """Every status reason code the source can emit (the simulators are not the worker)."""
    found: set[str] = set()
    for path in WORKER.rglob("*.py"):
        if "simulators" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in _REASON_CALLS:
                    for arg in node.args[:2]:
                        found |= _codes_in(arg) if isinstance(arg, ast.Constant | ast.IfExp) else set()
                found |= {
                    c for k in node.keywords if k.arg in {"code", "reason_code"} for c in _codes_in(k.value)
                }
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if {t.id for t in targets if isinstance(t, ast.Name)} & _REASON_NAMES:
                    found |= _codes_in(node.value)
        # the flows' constants named as their code (MANUAL_FEASIBILITY = "MANUAL_FEASIBILITY")
        for node in tree.body if "domain" in path.parts else []:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = {t.id for t in node.targets if isinstance(t, ast.Name)}
                found |= {node.value.value} & names & _codes_in(node.value)
    return found


def test_the_generated_references_are_up_to_date_and_complete() -> None:
    assert reference.differences(ROOT) == [], "run `make docs` and commit the result"
    assert reference.problems() == []


def test_every_setting_is_in_the_configuration_reference_with_its_chart_value() -> None:
    text = (ROOT / reference.CONFIGURATION).read_text()
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `TASKING_")}
    leaves = [
        v for v in known_variables() if v.count("__") == 1 or (v.startswith("TASKING_") and "__" not in v)
    ]
    leaves = [v for v in leaves if not any(other.startswith(v + "__") for other in known_variables())]
    assert leaves, "no settings found"
    missing = [v for v in leaves if v not in rows]
    assert missing == []
    # the chart maps these, so their rows must name a chart value, not extraEnv
    for variable, value in {
        "TASKING_KAFKA__BOOTSTRAP_SERVERS": "config.kafka.bootstrapServers",
        "TASKING_ONEATLAS__END_USERS": "config.oneatlas.endUsers",
        "TASKING_ONEATLAS__API_KEY": "secrets.oneatlasApiKey",
        "TASKING_UP42__RATE_LIMIT_PER_SECOND": "config.up42.rateLimitPerSecond",
    }.items():
        assert f"`{value}`" in rows[variable]


def test_every_exported_metric_family_is_in_the_metric_reference() -> None:
    exposition = WorkerMetrics().render()
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    families = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE") and not line.split()[2].endswith("_created")
    }
    assert len(families) > 20
    documented = (ROOT / reference.METRICS).read_text()
    assert sorted(f for f in families if f"`{f}`" not in documented) == []


def test_every_code_the_source_emits_is_registered_and_documented() -> None:
    emitted = emitted_status_codes()
    assert {"NOT_FEASIBLE", "DELIVERY_INCOMPLETE", "PROVIDER_NOT_CONFIGURED"} <= emitted
    registered = {c.value for c in ReasonCode}
    assert sorted(emitted - registered) == [], "add them to worker/events/reasons.py"
    assert sorted(registered - emitted) == [], "registered codes the source never emits"
    documented = (ROOT / reference.REASONS).read_text()
    for code in [*ReasonCode, *DeadLetterCode]:
        assert f"| `{code.value}` |" in documented


def _copy_of_repository(tmp_path: Path) -> Path:
    for relative in (reference.CHART, Path("docs/reference")):
        shutil.copytree(ROOT / relative, tmp_path / relative)
    return tmp_path


def test_a_stale_reference_is_reported_and_regenerated(tmp_path: Path) -> None:
    root = _copy_of_repository(tmp_path)
    (root / reference.METRICS).write_text("old\n")
    (root / reference.CHART_README).unlink()
    assert reference.differences(root) == [
        f"{reference.METRICS} is out of date",
        f"{reference.CHART_README} is out of date",
    ]
    runner = CliRunner()
    check = runner.invoke(app, ["docs", "--check", "--root", str(root)])
    assert check.exit_code == 1
    assert "out of date" in check.output
    write = runner.invoke(app, ["docs", "--root", str(root)])
    assert write.exit_code == 0, write.output
    assert reference.differences(root) == []
    assert runner.invoke(app, ["docs", "--check", "--root", str(root)]).exit_code == 0


def test_a_new_chart_value_changes_the_reference(tmp_path: Path) -> None:
    """The chart column is read from the templates, so a value added there shows by itself."""
    root = _copy_of_repository(tmp_path)
    configmap = root / reference.CHART / "templates/configmap.yaml"
    configmap.write_text(
        configmap.read_text()
        + "  TASKING_KAFKA__SESSION_TIMEOUT_MS: {{ .Values.config.kafka.sessionTimeoutMs | quote }}\n"
    )
    assert (
        reference.chart_values(root)["TASKING_KAFKA__SESSION_TIMEOUT_MS"] == "`config.kafka.sessionTimeoutMs`"
    )
    assert f"{reference.CONFIGURATION} is out of date" in reference.differences(root)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n  # -- the b\n  # continued\n  b: 1\n", {"a.b": "the b continued"}),
        ("# plain comment\nc: 1\n", {}),
    ],
)
def test_values_comments_follow_the_helm_docs_convention(text: str, expected: dict[str, str]) -> None:
    assert reference.values_comments(text) == expected
