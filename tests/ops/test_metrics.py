"""WorkerMetrics: every family of CONTRACT §7 and the operability extras, bounded labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from contract_metrics import CONTRACT_FAMILIES, LABELS_LEARNT_AT_RUN_TIME
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from worker.config import TopicSettings
from worker.events.codec import DeadLetterCode
from worker.events.status import OrderStatus
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


def families(metrics: WorkerMetrics) -> dict[str, tuple[str, int]]:
    """Family name -> (type, number of samples) of the rendered exposition."""
    parsed = text_string_to_metric_families(metrics.render().decode())
    return {f.name: (f.type, len(f.samples)) for f in parsed}


def test_a_fresh_registry_exports_every_contract_family(metrics: WorkerMetrics) -> None:
    found = families(metrics)  # nothing has happened yet
    for name, kind in CONTRACT_FAMILIES.items():
        assert name in found, f"{name} is not exported before its first event"
        assert found[name][0] == kind, name
        if name not in LABELS_LEARNT_AT_RUN_TIME:
            assert found[name][1] > 0, f"{name} has no series before its first event"


def test_label_values_known_in_advance_start_at_zero(metrics: WorkerMetrics) -> None:
    defaults = TopicSettings()
    expected = {
        ("tasking_dead_letters_total", frozenset({("reason", code.value)})) for code in DeadLetterCode
    }
    expected |= {
        ("tasking_messages_consumed_total", frozenset({("topic", topic), ("outcome", outcome)}))
        for topic, outcome in [
            (defaults.requests, "accepted"),
            (defaults.requests, "duplicate"),
            (defaults.requests, "dead_letter"),
            (defaults.requests, "forwarded"),
            (defaults.commands, "command"),
            (defaults.commands, "dead_letter"),
            (defaults.commands, "forwarded"),
        ]
    }
    expected |= {
        ("tasking_events_published_total", frozenset({("topic", topic)}))
        for topic in (defaults.status, defaults.acquisitions, defaults.dead_letter)
    }
    for provider in ("oneatlas", "up42"):
        expected |= {
            ("tasking_order_transitions_total", frozenset({("provider", provider), ("status", s.value)}))
            for s in OrderStatus
        }
        expected |= {
            ("tasking_orders", frozenset({("provider", provider), ("status", s.value)}))
            for s in OrderStatus
            if not s.terminal
        }
        expected |= {
            ("tasking_token_renewals_total", frozenset({("provider", provider), ("outcome", o)}))
            for o in ("ok", "error")
        }
        expected |= {
            (
                "tasking_acquisition_decisions_total",
                frozenset({("provider", provider), ("decision", d), ("decided_by", by)}),
            )
            for d in ("accept", "refuse")
            for by in ("policy", "command")
        }
        expected.add(("tasking_provider_requests_in_flight", frozenset({("provider", provider)})))
    expected |= {
        ("tasking_scheduler_job_runs_total", frozenset({("job", job), ("outcome", o)}))
        for job in ("poll", "retry", "deadline", "token_refresh", "reconcile")
        for o in ("ok", "error")
    }
    expected |= {("tasking_rebalances_total", frozenset({("kind", k)})) for k in ("assigned", "revoked")}
    expected |= {
        ("tasking_record_failures_total", frozenset({("topic", topic), ("outcome", outcome)}))
        for topic in (defaults.requests, defaults.commands)
        for outcome in ("retried", "dead_lettered")
    }
    found = samples(metrics)
    missing = sorted(str(key) for key in expected if key not in found)
    assert not missing, "series missing from a fresh registry:\n" + "\n".join(missing)
    assert {key: found[key] for key in expected} == dict.fromkeys(expected, 0.0)
    # Terminal statuses are never open, so they get no open-orders series.
    assert value(metrics, "tasking_orders", provider="up42", status="COMPLETED") is None


def test_topic_series_follow_the_configured_names() -> None:
    topics = TopicSettings(requests="in.req", commands="in.cmd", status="out.st", dead_letter="out.dl")
    metrics = WorkerMetrics(CollectorRegistry(), topics=topics)
    consumed = {
        dict(labels)["topic"]
        for name, labels in samples(metrics)
        if name == "tasking_messages_consumed_total"
    }
    published = {
        dict(labels)["topic"] for name, labels in samples(metrics) if name == "tasking_events_published_total"
    }
    assert consumed == {"in.req", "in.cmd"}
    # Every output topic (more may be added to the contract), never an input or the changelog.
    assert {"out.st", topics.acquisitions, "out.dl"} <= published
    assert published <= set(topics.model_dump().values()) - {"in.req", "in.cmd", topics.state}


def test_series_learnt_at_run_time_are_absent_until_known(metrics: WorkerMetrics) -> None:
    names = {name for name, _ in samples(metrics)}
    for absent in (
        "tasking_consumer_lag_messages",  # partitions are known once assigned
        "tasking_provider_requests_total",  # operations are known at their first call
        "tasking_provider_retries_total",
        "tasking_order_oldest_status_age_seconds",  # no order, no oldest one
        "tasking_provider_last_successful_poll_timestamp_seconds",  # 0 would mean 1970
    ):
        assert absent not in names, absent


def test_the_first_call_of_an_operation_creates_every_outcome_at_zero(metrics: WorkerMetrics) -> None:
    metrics.provider_request("up42", "get_order", "ok", 0.1)
    name = "tasking_provider_requests_total"
    labels = {"provider": "up42", "operation": "get_order"}
    assert value(metrics, name, outcome="ok", **labels) == 1
    for outcome in ("client_error", "server_error", "timeout", "rate_limited"):
        assert value(metrics, name, outcome=outcome, **labels) == 0, outcome
    assert value(metrics, "tasking_provider_retries_total", **labels) == 0
    assert value(metrics, name, outcome="ok", provider="oneatlas", operation="get_order") is None
    metrics.provider_request("up42", "get_order", "timeout", 30.0)  # a known operation again
    assert value(metrics, name, outcome="timeout", **labels) == 1
    assert value(metrics, name, outcome="ok", **labels) == 1


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


def test_delivery_counters_start_at_zero_for_both_providers_and_count() -> None:
    metrics = WorkerMetrics(CollectorRegistry())

    def samples() -> dict[tuple[str, str], float]:
        text = metrics.render().decode()
        return {
            (s.name, s.labels["provider"]): s.value
            for family in text_string_to_metric_families(text)
            if family.name in ("tasking_deliveries", "tasking_delivery_errors")
            for s in family.samples
            if s.name.endswith("_total")
        }

    assert samples() == {
        ("tasking_deliveries_total", "oneatlas"): 0.0,
        ("tasking_deliveries_total", "up42"): 0.0,
        ("tasking_delivery_errors_total", "oneatlas"): 0.0,
        ("tasking_delivery_errors_total", "up42"): 0.0,
    }
    metrics.delivery_published("up42", 3)
    metrics.delivery_error("oneatlas")
    assert samples()[("tasking_deliveries_total", "up42")] == 3.0
    assert samples()[("tasking_delivery_errors_total", "oneatlas")] == 1.0
    with pytest.raises(ValueError, match="provider"):
        metrics.delivery_published("planet")


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
