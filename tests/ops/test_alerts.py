"""The chart's alert rules: promtool syntax check and unit tests covering every alert."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import objects, one_of_kind, render, run_promtool

UNIT_TESTS = Path(__file__).parent / "fixtures" / "alerts-test.yaml"


def rule_groups(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The groups of the PrometheusRule rendered with ``values`` (rules enabled)."""
    merged = {"monitoring": {"prometheusRule": {"enabled": True}}} | (values or {})
    groups = one_of_kind(objects(render(merged)), "PrometheusRule")["spec"]["groups"]
    assert isinstance(groups, list)
    return groups


def alert_names(groups: list[dict[str, Any]]) -> set[str]:
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


@pytest.fixture(scope="module")
def default_groups() -> list[dict[str, Any]]:
    return rule_groups()


@pytest.fixture
def rules_dir(tmp_path: Path, default_groups: list[dict[str, Any]]) -> Path:
    """The rendered rules as rules.yaml next to a copy of the unit tests."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": default_groups}))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    return tmp_path


def test_rendered_rules_pass_promtool_check(rules_dir: Path, promtool: Path) -> None:
    output = run_promtool(promtool, ["check", "rules", str(rules_dir / "rules.yaml")])
    assert "SUCCESS" in output


def test_rendered_rules_pass_the_unit_tests(rules_dir: Path, promtool: Path) -> None:
    output = run_promtool(promtool, ["test", "rules", str(rules_dir / UNIT_TESTS.name)])
    assert "SUCCESS" in output


def test_every_alert_has_a_firing_and_a_silent_case(default_groups: list[dict[str, Any]]) -> None:
    cases = [
        case
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    alerts = alert_names(default_groups)
    assert len(alerts) >= 8
    assert alerts - firing == set(), "alerts without a firing case"
    assert alerts - silent == set(), "alerts without a silent case"
    assert (firing | silent) - alerts == set(), "cases for alerts the chart does not define"


def test_every_alert_has_severity_summary_and_runbook(default_groups: list[dict[str, Any]]) -> None:
    for group in default_groups:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert "/docs/operations.md#" in rule["annotations"]["runbook_url"], rule["alert"]


def test_every_expression_selects_this_release(default_groups: list[dict[str, Any]]) -> None:
    for group in default_groups:
        for rule in group["rules"]:
            assert 'job="tw-tasking-worker",namespace="tasking"' in rule["expr"], rule["alert"]


def test_runbook_has_a_section_per_alert(default_groups: list[dict[str, Any]]) -> None:
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    anchors = {
        rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        for group in default_groups
        for rule in group["rules"]
    }
    headings = {
        line.lstrip("#").strip().lower().replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("### ")
    }
    assert anchors <= headings


def test_thresholds_come_from_values(promtool: Path, tmp_path: Path) -> None:
    groups = rule_groups(
        {
            "monitoring": {
                "prometheusRule": {
                    "enabled": True,
                    "consumerLag": {"threshold": 42, "window": "3m", "for": "7m"},
                    "providerErrors": {"ratio": 0.5},
                    "pollStale": {"minutes": 90},
                    "ordersStuck": {"thresholdSeconds": {"QUOTED": 120}},
                    "decisionsWaiting": {"thresholdSeconds": 999},
                    "additionalLabels": {"team": "imagery"},
                }
            }
        }
    )
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    lag = rules["TaskingWorkerConsumerLagGrowing"]
    assert "> 42" in lag["expr"]
    assert "[3m]" in lag["expr"]
    assert lag["for"] == "7m"
    assert ") > 0.5" in rules["TaskingWorkerProviderErrors"]["expr"]
    assert "> 5400" in rules["TaskingWorkerProviderPollStale"]["expr"]
    assert 'status="QUOTED"}) > 120' in rules["TaskingWorkerOrdersStuck"]["expr"]
    assert "DECISION_REQUIRED" not in rules["TaskingWorkerOrdersStuck"]["expr"]
    assert "> 999" in rules["TaskingWorkerDecisionsWaiting"]["expr"]
    assert all(rule["labels"]["team"] == "imagery" for rule in rules.values())
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    run_promtool(promtool, ["check", "rules", str(path)])
