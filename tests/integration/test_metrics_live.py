"""Against a running worker, /metrics exposes every family of the contract with live values, and
the probes answer over HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from contract_metrics import CONTRACT_FAMILIES, LABELS_LEARNT_AT_RUN_TIME
from harness import http_get, oneatlas_request, running_worker, stack_for, start_worker
from prometheus_client.parser import text_string_to_metric_families

from worker.config import TopicSettings
from worker.events.codec import DeadLetterCode
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def test_metrics_families_have_live_values(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events):
        worker = await start_worker(stack, TASKING_TRACKING__POLL_INTERVAL_SECONDS="30")
        try:
            await stack.publish(oneatlas_request("m-1"), raw=[(unique_topics.requests, b"x", b"not json")])
            await events.wait_status("m-1", "ORDERED", timeout=40)
            await events.wait_for(lambda: len(events.dead_letters) == 1, 20)
            port = worker.worker.http.port
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/readyz")).status_code == 200
                assert (await client.get("/livez")).status_code == 200
                samples: dict[str, list[tuple[dict[str, str], float]]] = {}

                async def scrape() -> None:
                    text = (await client.get("/metrics")).text
                    samples.clear()
                    for family in text_string_to_metric_families(text):
                        for sample in family.samples:
                            samples.setdefault(family.name, []).append((sample.labels, sample.value))

                def refreshed() -> bool:
                    # Both gauges are refreshed every few seconds; the open-orders gauge exists (at 0)
                    # from the start, so wait for the order to show up in it.
                    ordered = [
                        v for labels, v in samples.get("tasking_orders", []) if labels["status"] == "ORDERED"
                    ]
                    return bool(samples.get("tasking_consumer_lag_messages")) and sum(ordered) > 0

                await scrape()
                for _ in range(80):
                    if refreshed():
                        break
                    await asyncio.sleep(0.25)
                    await scrape()
        finally:
            await worker.shutdown()
    for name in CONTRACT_FAMILIES:
        assert samples.get(name), f"{name} has no sample"
    consumed = {
        (labels["topic"], labels["outcome"]): value for labels, value in samples["tasking_messages_consumed"]
    }
    assert consumed[(unique_topics.requests, "accepted")] == 1
    assert consumed[(unique_topics.requests, "dead_letter")] == 1
    dead = {labels["reason"]: value for labels, value in samples["tasking_dead_letters"]}
    assert dead["MALFORMED_JSON"] == 1
    transitions = {
        labels["status"]: value
        for labels, value in samples["tasking_order_transitions"]
        if labels.get("provider") == "oneatlas"
    }
    assert transitions["ORDERED"] == 1
    ok_calls = [
        v
        for labels, v in samples["tasking_provider_requests"]
        if labels.get("outcome") == "ok" and labels.get("provider") == "oneatlas"
    ]
    assert sum(ok_calls) >= 3
    assert any(
        labels.get("status") == "ORDERED" and value == 1 for labels, value in samples["tasking_orders"]
    )
    assert all("m-1" not in str(labels) for series in samples.values() for labels, _ in series)


async def test_a_fresh_worker_exports_every_family_before_any_event(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """Before any message: every contract family is there, with zero series where labels are known."""
    async with stack_for(broker, unique_topics) as (stack, _events), running_worker(stack) as worker:
        code, text = await http_get(worker.worker.http.port, "/metrics")
    assert code == 200
    found = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in CONTRACT_FAMILIES.items():
        assert name in found, f"{name} is not exported by a fresh worker"
        assert found[name].type == kind, name
        if name not in LABELS_LEARNT_AT_RUN_TIME:
            assert found[name].samples, f"{name} has no series on a fresh worker"
    dead = {
        s.labels["reason"]: s.value
        for s in found["tasking_dead_letters"].samples
        if s.name.endswith("_total")
    }
    assert dead == {code.value: 0.0 for code in DeadLetterCode}
    consumed = {
        (s.labels["topic"], s.labels["outcome"]): s.value
        for s in found["tasking_messages_consumed"].samples
        if s.name.endswith("_total")
    }
    assert consumed == {
        (unique_topics.requests, "accepted"): 0.0,
        (unique_topics.requests, "duplicate"): 0.0,
        (unique_topics.requests, "dead_letter"): 0.0,
        (unique_topics.requests, "forwarded"): 0.0,
        (unique_topics.commands, "command"): 0.0,
        (unique_topics.commands, "dead_letter"): 0.0,
        (unique_topics.commands, "forwarded"): 0.0,
    }
    published = {s.labels["topic"] for s in found["tasking_events_published"].samples}
    assert {unique_topics.status, unique_topics.acquisitions, unique_topics.dead_letter} <= published
    inputs_and_state = {unique_topics.requests, unique_topics.commands, unique_topics.state}
    assert published <= set(unique_topics.model_dump().values()) - inputs_and_state
