"""Long stretches of work hand the event loop back: the helpers, the poll cycle, the gauges and
the restore's indexing.

Nothing here times the code. A *ticker* task counts the turns of the event loop it gets (one per
``asyncio.sleep(0)``) while the work runs; a stretch that never yields leaves it at most a turn or
two, a sliced one gives it a turn per slice. Slices are made deterministic by setting
``cooperative.SLICE_SECONDS`` to 0 (yield at every check) or to an hour (never by time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from unit.runtime.test_order_gauges import NOW, Sink, state
from unit.runtime.test_poller import NoMetrics, tracked_order

from worker import cooperative
from worker.domain.ports import Known, PolledOrder
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.kafka.statecodec import OrderIndex
from worker.kafka.statestore import Held, StateStore
from worker.runtime import timers
from worker.runtime.timers import OrderGauges, Poller


class Ticker:
    """Counts the event-loop turns it is given while running."""

    def __init__(self) -> None:
        self.turns = 0

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Ticker]:
        task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        start = self.turns
        try:
            yield self
        finally:
            task.cancel()
            self.turns -= start


@pytest.fixture
def slice_every_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cooperative, "SLICE_SECONDS", 0.0)


@pytest.fixture
def no_time_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cooperative, "SLICE_SECONDS", 3600.0)


# ------------------------------------------------------------------------------ helpers


async def test_gather_in_batches_starts_one_batch_per_turn_and_keeps_results_in_order(
    no_time_slices: None,
) -> None:
    ticker = Ticker()
    seen_at: list[int] = []

    async def work(n: int) -> int:
        seen_at.append(ticker.turns)  # no suspension point: all of it runs when started
        if n == 7:
            raise ValueError("seven")
        return n * 2

    async with ticker.running():
        results = await cooperative.gather_in_batches(range(1000), work, batch=50)
    assert results[:7] == [0, 2, 4, 6, 8, 10, 12]
    assert isinstance(results[7], ValueError)  # returned, and the others still ran
    assert results[999] == 1998
    # 20 batches of 50: each ran in a turn of its own, never two batches in one.
    runs: dict[int, int] = {}
    for turn in seen_at:
        runs[turn] = runs.get(turn, 0) + 1
    assert len(runs) >= 20
    assert max(runs.values()) <= 50


async def test_gather_in_batches_yields_through_a_long_run_of_skipped_items(slice_every_check: None) -> None:
    ticker = Ticker()
    async with ticker.running():
        results = await cooperative.gather_in_batches(range(500), lambda n: None)
    assert results == []
    assert ticker.turns >= 500


async def test_gather_in_batches_keeps_at_most_limit_in_flight() -> None:
    in_flight, peak = 0, 0

    async def write(n: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (n % 3))  # an acknowledgement, sooner or later
        in_flight -= 1
        return n

    results = await cooperative.gather_in_batches(range(300), write, batch=16, limit=20)
    assert results == list(range(300))
    assert peak == 20


async def test_slicer_yields_only_when_its_slice_is_used_up() -> None:
    ticker = Ticker()
    async with ticker.running():
        never = cooperative.Slicer(budget=3600.0)
        for _ in range(100):
            await never.pause()
    assert (never.yields, ticker.turns) == (0, 0)
    async with ticker.running():
        always = cooperative.Slicer(budget=0.0)
        for _ in range(100):
            await always.pause()
    assert always.yields == 100
    assert ticker.turns >= 100


# ------------------------------------------------------------------------------ poll cycle


class ManyOrdersProvider:
    name = Provider.ONEATLAS

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        return {key: PolledOrder(1, lambda: None) for key in keys}  # type: ignore[arg-type,return-value]


async def test_a_large_poll_cycle_lets_other_tasks_run(no_time_slices: None) -> None:
    """3,000 snapshots whose handling never suspends (as a snapshot that changes nothing): all
    started at once they would run in one turn of the loop; in batches the ticker gets a turn
    per batch."""
    count = 3000
    orders = [tracked_order(n) for n in range(count)]
    dispatched: list[str] = []

    async def dispatch(request_id: str, polled: PolledOrder, at: datetime) -> None:
        dispatched.append(request_id)

    poller = Poller(
        scheduler=None,  # type: ignore[arg-type]  # run_cycle only
        providers={Provider.ONEATLAS: ManyOrdersProvider()},  # type: ignore[dict-item]
        tracked=lambda name: orders,
        dispatch=dispatch,
        metrics=NoMetrics(),
        interval=1.0,
        clock=lambda: NOW,
    )
    ticker = Ticker()
    async with ticker.running():
        assert await poller.run_cycle(Provider.ONEATLAS) == count
    assert sorted(dispatched) == sorted(o.request_id for o in orders)
    assert ticker.turns >= count // cooperative.BATCH


async def test_the_due_scan_yields_when_its_slice_is_used_up(slice_every_check: None) -> None:
    orders = [tracked_order(n) for n in range(300)]
    poller = Poller(
        scheduler=None,  # type: ignore[arg-type]
        providers={},
        tracked=lambda name: orders,
        dispatch=None,  # type: ignore[arg-type]
        metrics=NoMetrics(),
        interval=1.0,
        clock=lambda: NOW,
    )
    ticker = Ticker()
    async with ticker.running():
        keys = await poller.collect_due(Provider.ONEATLAS, 1)
    assert keys == poller.due(Provider.ONEATLAS, 1)
    # The clock is read every _CLOCK_EVERY orders: with no budget, each read is a yield.
    assert ticker.turns >= 300 // timers._CLOCK_EVERY >= 4


# ------------------------------------------------------------------------------ gauges


async def test_the_gauges_refresh_yields_and_counts_as_the_one_shot_refresh(slice_every_check: None) -> None:
    orders = [state(f"o-{n}", OrderStatus.IN_PROGRESS, n % 7) for n in range(400)]
    once, sliced = Sink(), Sink()
    OrderGauges(None, lambda: orders, once, lambda: NOW).refresh()  # type: ignore[arg-type]
    ticker = Ticker()
    async with ticker.running():
        await OrderGauges(None, lambda: orders, sliced, lambda: NOW).refresh_cooperatively()  # type: ignore[arg-type]
    assert (sliced.counts, sliced.ages) == (once.counts, once.ages)
    assert sliced.counts == {("oneatlas", "IN_PROGRESS"): 400}
    assert ticker.turns >= 400


# ------------------------------------------------------------------------------ restore


class OneFetch:
    """A consumer whose one fetch holds every record of one partition (as a 64 MB fetch holds
    ~25,000 states); the restore's own code indexes them."""

    def __init__(self, tp: TopicPartition, records: list[Any]) -> None:
        self.tp, self.records, self.fetched = tp, records, False

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        if self.fetched:
            return {}
        self.fetched = True
        return {self.tp: self.records}

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.records)

    async def position(self, tp: TopicPartition) -> int:
        return len(self.records) if self.fetched else 0


class Record:
    def __init__(self, offset: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.offset, self.key, self.value, self.headers = offset, key, value, headers


def _records(count: int) -> list[Record]:
    out = []
    for n in range(count):
        order = tracked_order(n)
        value = order.model_dump_json().encode()
        out.append(Record(n, order.request_id.encode(), value, [OrderIndex.of_state(order, None).header()]))
    return out


@pytest.mark.parametrize(("budget", "yields"), [(0.0, True), (3600.0, False)])
async def test_restore_indexing_yields_when_its_slice_is_used_up(
    monkeypatch: pytest.MonkeyPatch, budget: float, yields: bool
) -> None:
    monkeypatch.setattr(cooperative, "SLICE_SECONDS", budget)
    count = 200
    tp = TopicPartition("state", 0)
    store = StateStore(None, "", "state")  # type: ignore[arg-type]  # reads only
    into: dict[int, dict[str, Held]] = {0: {}}
    ticker = Ticker()
    async with ticker.running():
        records = await store._drain(OneFetch(tp, _records(count)), {tp: count}, into)  # type: ignore[arg-type]
    assert records == count
    assert len(into[0]) == count
    if yields:
        assert ticker.turns >= count
    else:
        assert ticker.turns <= 3  # the fetch and the turn after it: the rest in one stretch
