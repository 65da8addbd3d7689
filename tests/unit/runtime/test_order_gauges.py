"""Open-order gauges: counts and oldest age per provider and status; terminal orders excluded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.domain.model import OrderState, Phase
from worker.events.models import OrderRequest
from worker.events.status import OrderStatus
from worker.kafka.statecodec import OrderIndex
from worker.runtime.timers import OrderGauges, OrderView

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def state(
    rid: str, status: OrderStatus, since_hours: float, phase: Phase = Phase.AWAITING_PROVIDER
) -> OrderState:
    request = OrderRequest.model_validate(
        {
            "requestId": rid,
            "provider": "oneatlas",
            "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"},
            "aoi": {
                "type": "Polygon",
                "coordinates": [[[1, 43], [1.1, 43], [1.1, 43.1], [1, 43.1], [1, 43]]],
            },
            "window": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
        }
    )
    return OrderState(
        request=request,
        received_at=NOW - timedelta(days=9),
        status=status,
        status_since=NOW - timedelta(hours=since_hours),
        phase=phase,
    )


class Sink:
    counts: Mapping[tuple[str, str], int] = {}
    ages: Mapping[tuple[str, str], float] = {}

    def set_open_orders(self, counts: Mapping[tuple[str, str], int]) -> None:
        self.counts = dict(counts)

    def set_status_ages(self, ages: Mapping[tuple[str, str], float]) -> None:
        self.ages = dict(ages)


@pytest.mark.parametrize("as_index", [False, True], ids=["states", "indexes"])
def test_counts_and_oldest_age_per_status(as_index: bool) -> None:
    """The same from decoded states and from the store's indexes (which keep epoch seconds)."""
    states = [
        state("a", OrderStatus.IN_PROGRESS, 1),
        state("b", OrderStatus.IN_PROGRESS, 5),
        state("c", OrderStatus.DECISION_REQUIRED, 2),
        state("d", OrderStatus.COMPLETED, 100, phase=Phase.DONE),
    ]
    orders: list[OrderView] = [OrderIndex.of_state(s, None) for s in states] if as_index else list(states)
    sink = Sink()
    OrderGauges(scheduler=None, orders=lambda: orders, metrics=sink, clock=lambda: NOW).refresh()  # type: ignore[arg-type]
    assert sink.counts == {("oneatlas", "IN_PROGRESS"): 2, ("oneatlas", "DECISION_REQUIRED"): 1}
    assert sink.ages == {
        ("oneatlas", "IN_PROGRESS"): 5 * 3600.0,
        ("oneatlas", "DECISION_REQUIRED"): 2 * 3600.0,
    }


async def test_the_scheduled_refresh_runs_on_the_event_loop_thread() -> None:
    """The scan reads the store the event loop writes: it must never run in a worker thread."""
    threads: list[int] = []

    class ThreadSink(Sink):
        def set_open_orders(self, counts: Mapping[tuple[str, str], int]) -> None:
            threads.append(threading.get_ident())
            super().set_open_orders(counts)

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        orders = [state("a", OrderStatus.IN_PROGRESS, 1)]
        gauges = OrderGauges(scheduler, lambda: orders, ThreadSink(), lambda: NOW, interval=0.05)
        gauges.start()
        for _ in range(200):
            if len(threads) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        scheduler.shutdown(wait=False)
    assert len(threads) >= 2
    assert set(threads) == {threading.get_ident()}
