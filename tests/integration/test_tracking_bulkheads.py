"""One order's tracking trouble stays that order's (real broker, both simulators, the worker in
process):

* a UP42 order whose coverage UP42 does not serve (404 on ``/v2/coverage/orders/{id}``) still
  advances to ``COMPLETED`` (coverage is an optional read);
* a OneAtlas order whose ``/taskings`` item is corrupted, and a UP42 order whose tracking step
  raises, do not stop the others: every other order of both providers reaches ``COMPLETED``;
* the order whose step keeps failing is published once more with ``TRACKING_ERROR`` after
  ``TASKING_TRACKING__ERROR_THRESHOLD`` failures, and with ``TRACKING_RECOVERED`` when it works
  again; then it completes too. Every status stream stays contiguous, every order is paid once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from harness import (
    fast_oneatlas_request,
    fast_up42_request,
    metric_value,
    reliability_stack,
    running_worker,
    sim_window,
    verdict,
    wait_all_terminal,
    wait_until,
)

from worker.config import TopicSettings
from worker.domain.ports import PolledOrder
from worker.kafka.broker import EmbeddedBroker
from worker.runtime.timers import Poller

pytestmark = pytest.mark.integration


def _reasons(events: Any, request_id: str) -> list[str]:
    return [e["reason"]["code"] for e in events.unique(request_id) if e.get("reason")]


async def test_one_orders_tracking_trouble_stays_its_own(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with reliability_stack(broker, unique_topics) as (stack, events):
        sims = stack.sims
        requests = [
            fast_up42_request("bh-up-cov", sims, window=sim_window(sims, 1)),
            fast_up42_request("bh-up-step", sims, window=sim_window(sims, 1)),
            fast_up42_request("bh-up-ok", sims, window=sim_window(sims, 1)),
            fast_oneatlas_request("bh-oa-bad", sims),
            fast_oneatlas_request("bh-oa-ok", sims),
        ]
        sims.up42.coverage_unavailable.add("bh-up-cov")
        async with running_worker(stack, TASKING_TRACKING__ERROR_THRESHOLD="2") as running:
            job = running.worker.scheduler.get_job("poll:up42")
            poller = job.func.__self__
            assert isinstance(poller, Poller)
            broken = {"bh-up-step"}
            apply = poller.dispatch

            async def dispatch(request_id: str, polled: PolledOrder, at: datetime) -> None:
                if request_id in broken:
                    raise RuntimeError("the tracking step crashed")
                await apply(request_id, polled, at)

            poller.dispatch = dispatch
            await stack.publish(*requests)
            await events.wait_status("bh-oa-bad", "ORDERED", timeout=60)
            sims.oneatlas.malformed_items.add("bh-oa-bad")

            await wait_until(lambda: "TRACKING_ERROR" in _reasons(events, "bh-up-step"), 60, "TRACKING_ERROR")
            others = [r for r in requests if r.request_id not in ("bh-up-step", "bh-oa-bad")]
            await wait_all_terminal(events, others, 90)
            assert [events.statuses(r.request_id)[-1] for r in others] == ["COMPLETED"] * len(others)
            assert events.statuses("bh-up-step")[-1] != "COMPLETED"
            metrics = running.worker.metrics.render().decode()
            assert metric_value(metrics, "tasking_poll_errors_total", provider="up42", kind="dispatch") >= 2
            assert metric_value(metrics, "tasking_tracking_error_orders", provider="up42") == 1

            broken.clear()
            sims.oneatlas.malformed_items.clear()
            await wait_all_terminal(events, requests, 90)

        coverage = sims.up42.calls("GET", r"/v2/coverage/orders/.*")
        assert 404 in {c["status"] for c in coverage}, "no coverage read answered 404"
        found = verdict(stack, events, requests)
        assert found.failures() == []
        step = _reasons(events, "bh-up-step")
        assert step.count("TRACKING_ERROR") == 1
        assert step.index("TRACKING_RECOVERED") > step.index("TRACKING_ERROR")
