"""The Grafana dashboard: structure, datasource variable, and every query checked by promtool."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import CHART, run_promtool

DASHBOARD = CHART / "dashboards" / "tasking-worker.json"
# Values a Grafana user would pick, so the queries become plain PromQL.
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": "tasking",
    "$job": "tw-tasking-worker",
}
REQUIRED_METRICS = [
    "tasking_order_transitions_total",
    "tasking_orders",
    "tasking_provider_request_duration_seconds_bucket",
    "tasking_provider_requests_total",
    "tasking_dead_letters_total",
    "tasking_consumer_lag_messages",
    "tasking_state_restore_duration_seconds",
    "tasking_ready",
    "tasking_provider_requests_in_flight",
    "tasking_provider_last_successful_poll_timestamp_seconds",
]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_identity_is_stable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "tasking-worker-overview"
    assert dashboard["title"]


def test_datasource_is_a_prometheus_variable_used_everywhere(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_rate_uses_the_rate_interval(dashboard: dict[str, Any]) -> None:
    windows = [
        window
        for expr in queries(dashboard)
        for window in re.findall(r"(?:rate|increase)\([^\[]*\[([^\]]+)\]", expr)
    ]
    assert windows, "the dashboard has no rate() queries"
    assert set(windows) == {"$__rate_interval"}


def test_panel_ids_and_positions_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels(dashboard)]
    assert len(positions) == len(set(positions))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels(dashboard))


def test_required_views_are_present(dashboard: dict[str, Any]) -> None:
    text = "\n".join(queries(dashboard))
    for metric in REQUIRED_METRICS:
        assert metric in text, metric
    assert "histogram_quantile(0.5," in text
    assert "histogram_quantile(0.99," in text


def test_every_query_is_valid_promql(dashboard: dict[str, Any], promtool: Path, tmp_path: Path) -> None:
    exprs = queries(dashboard)
    rules = [
        {"record": f"dashboard:query_{n}:check", "expr": substitute(expr)} for n, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run_promtool(promtool, ["check", "rules", str(path)])
    assert f"SUCCESS: {len(exprs)} rules found" in output


def test_broken_query_is_caught(promtool: Path, tmp_path: Path) -> None:
    """The check above can fail: promtool rejects a malformed expression."""
    path = tmp_path / "broken.yaml"
    rule = {"record": "x:y", "expr": substitute("sum(rate(tasking_orders[$__rate_interval])")}
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [rule]}]}))
    with pytest.raises(AssertionError):
        run_promtool(promtool, ["check", "rules", str(path)])
