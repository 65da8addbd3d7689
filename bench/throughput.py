"""Throughput vs ceiling vs a serial consumer (see docs/performance.md, "Throughput").

Three runs, each against a fresh simulator process with the same per-call latency:

1. *worker*: ``n`` OneAtlas ONEPLAN requests written to the request topic at once; the clock runs
   from the first write until the last order's ``ORDERED`` state is durable. The simulator's call
   record gives the provider calls per order.
2. *ceiling*: the worker's recorded calls (same paths, same bodies, same order) replayed with a
   bare ``httpx.AsyncClient`` by ``concurrency`` tasks over ``concurrency`` connections, i.e. the
   provider traffic of those orders with no worker around it. Ceiling orders/s = calls/s ÷
   calls per order.
3. *serial*: the same worker code path fed one request at a time (the next request is written
   when the previous order is ``ORDERED``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from bench.stack import (
    PARTITIONS,
    SimProcess,
    produce,
    producer,
    request_records,
    running_worker,
    send_all,
    simulators,
    unique_topics,
    worker_settings,
)
from worker.events.status import OrderStatus
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.statestore import StateStore

AUTH_PATH = "/auth/realms/IDP/protocol/openid-connect/token"
# ONEPLAN orders stop at ORDERED until a tracking poll moves them (polls are an hour apart here).
_REACHED = {OrderStatus.ORDERED, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED}
_FAILED = {OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}


@dataclass
class WorkerRun:
    orders: int
    seconds: float
    calls: list[dict[str, Any]]  # the measured orders' provider calls (simulator record)
    warmup_calls: list[dict[str, Any]]

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    @property
    def calls_per_order(self) -> float:
        return len(self.calls) / self.orders


async def wait_ordered(store: StateStore, expected: int, timeout: float, every: float) -> None:
    """Until ``expected`` orders are ORDERED (or later). Raises when one fails or time is up.

    Reads the store's index (as the worker's own scans do), so watching costs the worker little."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(index.status for _, index in store.indexes())
        if sum(statuses[s] for s in _REACHED) >= expected:
            return
        failed = sum(statuses[s] for s in _FAILED)
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"orders did not reach ORDERED: {dict(statuses)}")
        await asyncio.sleep(every)


async def run_worker(
    broker: EmbeddedBroker, sims: SimProcess, orders: int, warmup: int, concurrency: int
) -> WorkerRun:
    topics = unique_topics("tp")
    await broker.create_contract_topics(topics, PARTITIONS)
    settings = worker_settings(broker, topics, sims.env, concurrency)
    warm, measured = request_records("warm", warmup), request_records("tp", orders)
    async with running_worker(settings) as running:
        await running.ready()
        store = running.worker.intake.store
        await produce(broker.bootstrap_servers, topics.requests, warm)
        await wait_ordered(store, warmup, 60, 0.05)
        before = len(sims.calls())
        started = time.perf_counter()
        await produce(broker.bootstrap_servers, topics.requests, measured)
        await wait_ordered(store, warmup + orders, 300, 0.05)
        seconds = time.perf_counter() - started
        calls = sims.calls()
    return WorkerRun(orders, seconds, calls[before:], calls[:before])


@dataclass
class Replay:
    calls: int
    seconds: float
    statuses: Counter[int]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def replay(sims: SimProcess, calls: list[dict[str, Any]], concurrency: int) -> Replay:
    """Send ``calls`` (a simulator call record) with a bare client, ``concurrency`` at a time."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=sims.oneatlas_url, limits=limits, timeout=30) as client:
        headers = {"Authorization": f"Bearer {await _token(client, sims)}"}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for call in calls:
            if call["path"] != AUTH_PATH:
                queue.put_nowait(call)
        statuses: Counter[int] = Counter()
        count = queue.qsize()
        started = time.perf_counter()
        await asyncio.gather(*(_drain(client, queue, headers, statuses) for _ in range(concurrency)))
        return Replay(count, time.perf_counter() - started, statuses)


async def _token(client: httpx.AsyncClient, sims: SimProcess) -> str:
    form = {"apikey": sims.env["TASKING_ONEATLAS__API_KEY"], "grant_type": "api_key", "client_id": "IDP"}
    answer = await client.post(AUTH_PATH, data=form)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


async def _drain(
    client: httpx.AsyncClient,
    queue: asyncio.Queue[dict[str, Any]],
    headers: dict[str, str],
    statuses: Counter[int],
) -> None:
    while not queue.empty():
        call = queue.get_nowait()
        url = call["path"] + (f"?{call['query']}" if call["query"] else "")
        body = call["body"]
        response = await client.request(
            call["method"], url, headers=headers, json=body if body is not None else None
        )
        statuses[response.status_code] += 1


@dataclass
class SerialRun:
    orders: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.orders / self.seconds


async def run_serial(broker: EmbeddedBroker, sims: SimProcess, orders: int, concurrency: int) -> SerialRun:
    """The worker fed one request at a time (after one untimed warm-up order)."""
    topics = unique_topics("serial")
    await broker.create_contract_topics(topics, PARTITIONS)
    settings = worker_settings(broker, topics, sims.env, concurrency)
    records = request_records("serial", orders + 1)
    async with running_worker(settings) as running:
        await running.ready()
        store = running.worker.intake.store
        started = 0.0
        async with producer(broker.bootstrap_servers) as client:
            for done, record in enumerate(records):
                if done == 1:
                    started = time.perf_counter()
                await send_all(client, topics.requests, [record])
                await wait_ordered(store, done + 1, 60, 0.002)
        return SerialRun(orders, time.perf_counter() - started)


@dataclass
class ThroughputResult:
    worker: WorkerRun
    ceiling: Replay
    serial: SerialRun
    concurrency: int

    @property
    def ceiling_rate(self) -> float:
        return self.ceiling.rate / self.worker.calls_per_order


async def measure(
    broker: EmbeddedBroker, *, orders: int, serial_orders: int, latency: float, concurrency: int
) -> ThroughputResult:
    warmup = concurrency
    with simulators(latency) as sims:
        worker = await run_worker(broker, sims, orders, warmup, concurrency)
    with simulators(latency) as sims:
        await replay(sims, worker.warmup_calls, concurrency)  # same simulator state as the worker
        ceiling = await replay(sims, worker.calls, concurrency)
    with simulators(latency) as sims:
        serial = await run_serial(broker, sims, serial_orders, concurrency)
    return ThroughputResult(worker, ceiling, serial, concurrency)
