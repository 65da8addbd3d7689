"""WorkerMetrics: every family of CONTRACT §7 and the operability extras, bounded labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from contract_metrics import CONTRACT_FAMILIES
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from worker.observability.metrics import WorkerMetrics

from .support import ROOT, run_promtool_stdin


def exercise(metrics: WorkerMetrics) -> None:
    """Call every method once with realistic values."""
    metrics.message_consumed("tasking.order-requests", "accepted")
    metrics.message_consumed("tasking.commands", "command")
    metrics.order_transition("oneatlas", "RECEIVED")
    metrics.set_open_orders({("oneatlas", "ORDERED"): 3, ("up42", "RECEIVED"): 1})
    metrics.provider_request("up42", "create_order", "ok", 0.42)
    with metrics.provider_in_flight("oneatlas"):
        pass
    metrics.provider_retry("oneatlas", "get_tasking")
    metrics.dead_letter("MALFORMED_JSON")
    metrics.event_published("tasking.order-status")
    metrics.set_consumer_lag("tasking.order-requests", 2, 17)
    metrics.restore_finished(1.5, 120)
    metrics.rebalance("assigned", 3)
    metrics.scheduler_job("poll", ok=True)
    metrics.poll_succeeded("up42")
    metrics.token_renewed("oneatlas", ok=False)
    metrics.set_ready(True)
    metrics.set_status_ages({("oneatlas", "DECISION_REQUIRED"): 3600.0})
    metrics.acquisition_decision("oneatlas", "accept", "policy")
    metrics.routing_choice("up42", "cheapest", "worker")


def samples(metrics: WorkerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the rendered exposition, keyed by name and label set."""
    parsed = text_string_to_metric_families(metrics.render().decode())
    return {(s.name, frozenset(s.labels.items())): s.value for family in parsed for s in family.samples}


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


@pytest.fixture
def metrics() -> WorkerMetrics:
    return WorkerMetrics(CollectorRegistry())


def test_contract_families_have_their_types(metrics: WorkerMetrics) -> None:
    exercise(metrics)
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    for name, kind in CONTRACT_FAMILIES.items():
        assert families.get(name) == kind, name


def test_exposition_passes_promtool_lint(metrics: WorkerMetrics, promtool: Path) -> None:
    exercise(metrics)
    code, output = run_promtool_stdin(promtool, ["check", "metrics"], metrics.render())
    assert code == 0, output
    assert output.strip() == "", output  # no lint findings either


def test_build_info_carries_the_package_version(metrics: WorkerMetrics) -> None:
    # Read the version the way a reviewer would: from the package source, not through the code.
    init = (ROOT / "worker" / "__init__.py").read_text()
    declared = re.search(r'__version__ = "([^"]+)"', init)
    assert declared is not None
    assert value(metrics, "tasking_build_info", version=declared.group(1)) == 1


def test_counters_count_per_label_set(metrics: WorkerMetrics) -> None:
    for _ in range(3):
        metrics.message_consumed("tasking.order-requests", "duplicate")
    metrics.message_consumed("tasking.order-requests", "dead_letter")
    name = "tasking_messages_consumed_total"
    assert value(metrics, name, topic="tasking.order-requests", outcome="duplicate") == 3
    assert value(metrics, name, topic="tasking.order-requests", outcome="dead_letter") == 1


def test_provider_request_records_outcome_and_duration(metrics: WorkerMetrics) -> None:
    metrics.provider_request("oneatlas", "search_orders", "timeout", 30.0)
    metrics.provider_request("oneatlas", "search_orders", "ok", 0.02)
    labels = {"provider": "oneatlas", "operation": "search_orders"}
    assert value(metrics, "tasking_provider_requests_total", outcome="timeout", **labels) == 1
    assert value(metrics, "tasking_provider_request_duration_seconds_count", **labels) == 2
    assert value(metrics, "tasking_provider_request_duration_seconds_bucket", le="0.025", **labels) == 1
    assert value(metrics, "tasking_provider_request_duration_seconds_bucket", le="60.0", **labels) == 2


def test_in_flight_is_decremented_even_when_the_call_fails(metrics: WorkerMetrics) -> None:
    with metrics.provider_in_flight("up42"):
        assert value(metrics, "tasking_provider_requests_in_flight", provider="up42") == 1
    with pytest.raises(RuntimeError), metrics.provider_in_flight("up42"):
        raise RuntimeError("boom")
    assert value(metrics, "tasking_provider_requests_in_flight", provider="up42") == 0


def test_open_orders_are_replaced_not_accumulated(metrics: WorkerMetrics) -> None:
    metrics.set_open_orders({("oneatlas", "ORDERED"): 5, ("oneatlas", "QUOTED"): 2})
    metrics.set_open_orders({("oneatlas", "ORDERED"): 4})
    assert value(metrics, "tasking_orders", provider="oneatlas", status="ORDERED") == 4
    assert value(metrics, "tasking_orders", provider="oneatlas", status="QUOTED") == 0


def test_status_ages_absent_from_the_update_are_removed(metrics: WorkerMetrics) -> None:
    metrics.set_status_ages({("up42", "ORDERED"): 10.0, ("up42", "RECEIVED"): 5.0})
    metrics.set_status_ages({("up42", "ORDERED"): 70.0})
    name = "tasking_order_oldest_status_age_seconds"
    assert value(metrics, name, provider="up42", status="ORDERED") == 70.0
    assert value(metrics, name, provider="up42", status="RECEIVED") is None


def test_consumer_lag_is_cleared_on_revocation(metrics: WorkerMetrics) -> None:
    metrics.set_consumer_lag("tasking.commands", 0, 9)
    metrics.set_consumer_lag("tasking.commands", 1, -3)
    assert value(metrics, "tasking_consumer_lag_messages", topic="tasking.commands", partition="1") == 0
    metrics.clear_consumer_lag("tasking.commands", 0)
    metrics.clear_consumer_lag("tasking.commands", 7)  # never set: no error
    assert value(metrics, "tasking_consumer_lag_messages", topic="tasking.commands", partition="0") is None


def test_rebalance_counts_and_sets_assignment(metrics: WorkerMetrics) -> None:
    metrics.rebalance("assigned", 4)
    metrics.rebalance("revoked", 0)
    assert value(metrics, "tasking_rebalances_total", kind="assigned") == 1
    assert value(metrics, "tasking_assigned_partitions") == 0


def test_restore_observes_duration_and_records(metrics: WorkerMetrics) -> None:
    metrics.restore_finished(2.0, 10)
    metrics.restore_finished(3.0, 5)
    assert value(metrics, "tasking_state_restore_duration_seconds_sum") == 5.0
    assert value(metrics, "tasking_state_restored_records_total") == 15


def test_boolean_outcomes_and_readiness(metrics: WorkerMetrics) -> None:
    assert value(metrics, "tasking_ready") == 0
    metrics.set_ready(True)
    metrics.scheduler_job("deadline", ok=False)
    metrics.token_renewed("up42", ok=True)
    assert value(metrics, "tasking_ready") == 1
    assert value(metrics, "tasking_scheduler_job_runs_total", job="deadline", outcome="error") == 1
    assert value(metrics, "tasking_token_renewals_total", provider="up42", outcome="ok") == 1


def test_poll_timestamp_is_unix_seconds(metrics: WorkerMetrics) -> None:
    metrics.poll_succeeded("oneatlas", at=1_700_000_000.5)
    name = "tasking_provider_last_successful_poll_timestamp_seconds"
    assert value(metrics, name, provider="oneatlas") == 1_700_000_000.5


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.message_consumed("tasking.order-requests", "req-123"),
        lambda m: m.order_transition("oneatlas", "SHIPPED"),
        lambda m: m.order_transition("maxar", "RECEIVED"),
        lambda m: m.set_open_orders({("up42", "received"): 1}),
        lambda m: m.set_status_ages({("sentinel", "ORDERED"): 1.0}),
        lambda m: m.provider_request("up42", "create_order", "teapot", 0.1),
        lambda m: m.provider_request("up42", "GET /v2/orders/5f1c", "ok", 0.1),
        lambda m: m.provider_retry("up42", "order-5f1c2d"),
        lambda m: m.provider_in_flight("nope").__enter__(),
        lambda m: m.dead_letter("bad message from req-42"),
        lambda m: m.rebalance("lost", 0),
        lambda m: m.scheduler_job("poll-order-42", ok=True),
        lambda m: m.acquisition_decision("oneatlas", "maybe", "policy"),
        lambda m: m.acquisition_decision("oneatlas", "accept", "provider"),
        lambda m: m.token_renewed("acme", ok=True),
        lambda m: m.routing_choice("auto", "cheapest", "worker"),
        lambda m: m.routing_choice("up42", "fastest", "worker"),
        lambda m: m.routing_choice("up42", "cheapest", "provider"),
        lambda m: m.poll_succeeded("acme"),
        lambda m: m.event_published(""),
    ],
)
def test_unbounded_label_values_are_refused(metrics: WorkerMetrics, call: object) -> None:
    before = metrics.render()
    with pytest.raises(ValueError):
        call(metrics)  # type: ignore[operator]
    assert metrics.render() == before  # nothing half-recorded


def test_two_instances_need_two_registries() -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    with pytest.raises(ValueError):
        WorkerMetrics(registry)
    assert WorkerMetrics().registry is not registry


def test_routing_choices_start_at_zero_for_every_known_label_set(metrics: WorkerMetrics) -> None:
    name = "tasking_routing_choices_total"
    for provider in ("oneatlas", "up42"):
        for prefer in ("cheapest", "earliest", "listed"):
            for by in ("worker", "command", "fallback"):
                assert value(metrics, name, provider=provider, prefer=prefer, by=by) == 0
    metrics.routing_choice("oneatlas", "earliest", "fallback")
    assert value(metrics, name, provider="oneatlas", prefer="earliest", by="fallback") == 1


def test_orders_of_a_provider_choice_count_under_auto_before_the_choice(metrics: WorkerMetrics) -> None:
    metrics.order_transition("auto", "QUOTED")
    metrics.set_open_orders({("auto", "DECISION_REQUIRED"): 2})
    assert value(metrics, "tasking_order_transitions_total", provider="auto", status="QUOTED") == 1
    assert value(metrics, "tasking_orders", provider="auto", status="DECISION_REQUIRED") == 2
