"""Tracking cost: resident memory per open order and CPU per batched poll cycle.

The orders are steady-state tracked orders: a real ``ORDERED`` state from the latency run, moved
through the domain core's own first poll (``Polled`` with an ``in progress`` tasking, then the
empty acquisition listing it asks for), copied under new ids (request id, sales order, tasking).
They are written to a state topic; a child process (``python -m bench.tracking``) then

1. restores them with ``StateStore.restore`` and reports the growth of its resident set (after a
   garbage collection and ``malloc_trim``) divided by the number of orders;
2. runs the worker's :class:`~worker.runtime.timers.Poller` cycle, built as ``worker.app`` builds
   it (``tracked`` = the open orders of the store, ``dispatch`` = ``Runner.deliver_snapshot``,
   ``news`` = ``Runner.snapshot_is_news``), against the real OneAtlas adapter whose HTTP client
   is answered in-process (``httpx.MockTransport``) with ``/taskings`` pages of every order,
   serialised once. The figure is the worker's CPU per cycle including the adapter's (HTTP client,
   JSON decoding, fingerprints, snapshots); the provider's own serving time is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import HttpUrl, SecretStr

from bench.probe import StepRecorder
from bench.restore import state_record
from bench.stack import PARTITIONS
from bench.throughput import AUTH_PATH
from worker.config import HttpClientSettings, OneAtlasSettings, TopicSettings
from worker.domain.decide import decide
from worker.domain.model import AcquisitionsListed, OrderState, Polled
from worker.domain.ports import Known, PolledOrder, stable_fingerprint
from worker.events.codec import EncodedRecord
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.kafka.finished import FinishedRecord, Segment, request_fingerprint
from worker.kafka.publisher import Publisher
from worker.kafka.statecodec import OrderIndex
from worker.kafka.statestore import FOLD_ENTRIES, StateStore
from worker.observability.metrics import WorkerMetrics
from worker.providers.oneatlas import OneAtlasProvider, legacy_snapshot
from worker.runtime.runner import Runner
from worker.runtime.timers import Poller, Timers

CONTRACT = "CTR21000001"
PAGE_SIZE = 100  # the adapter's default page size


def _ids(i: int) -> dict[str, str]:
    return {
        "request": f"trk-{i:07d}",
        "sal": f"SAL{40000000 + i}",
        "so": f"SO{i:07d}",
        "icr": f"ICR_FC_{i:07d}",
    }


def _item(i: int) -> dict[str, object]:
    """A ``/taskings`` list item of an order in progress with nothing acquired yet."""
    ids = _ids(i)
    return {
        "sal": ids["sal"],
        "so": ids["so"],
        "icr": {
            "id": ids["icr"],
            "status": "in progress",
            "customerRef": ids["request"],
            "nbProposedSegments": 0,
            "nbTotalSegments": 0,
            "taskingProgress": {"validatedArea": 0, "orderedArea": 100},
        },
    }


def steady_template(ordered: OrderState) -> OrderState:
    """``ordered`` after its first poll and the acquisition listing that poll asks for."""
    assert ordered.placed is not None
    at = datetime.now(UTC)
    item = _item(0)
    item["sal"] = ordered.placed.tracking_key
    item["icr"]["customerRef"] = ordered.request.reference  # type: ignore[index]
    state, _ = decide(ordered, Polled(snapshot=legacy_snapshot(item, CONTRACT), at=at))
    assert state is not None
    state, _ = decide(state, AcquisitionsListed(acquisitions=[], at=at))
    assert state is not None
    return state.model_copy(update={"outbox": []})


def tracked_records(template: OrderState, count: int, seen_by: str | None = None) -> list[EncodedRecord]:
    """``count`` copies of ``template``, each with its own request id, order and tasking ids.

    With ``seen_by``, each record's index header carries the fingerprint of the order's list
    item (as the adapter takes it: ``orjson.dumps`` of the decoded item) marked by ``seen_by``
    (a snapshot revision, or a release that wrote its version there): the changelog as a worker
    that polled the orders once leaves it (``StateStore.mark_seen``). Without, no mark."""
    assert template.placed is not None
    refs = template.placed.refs
    raw = template.model_dump_json()
    old = {
        "request": template.request_id,
        "sal": template.placed.tracking_key,
        "so": refs.get("so", "\0"),
        "icr": refs.get("taskingId", "\0"),
    }
    records = []
    for i in range(1, count + 1):
        new, value = _ids(i), raw
        for name, token in old.items():
            value = value.replace(token, new[name])
        record = state_record(new["request"].encode(), value.encode())
        if seen_by is not None:
            record = _marked(record, stable_fingerprint(orjson.dumps(_item(i))), seen_by)
        records.append(record)
    return records


def _marked(record: EncodedRecord, fingerprint: int, seen_by: str) -> EncodedRecord:
    assert record.key is not None
    index = OrderIndex.of_json(record.key.decode(), record.value)
    index.seen = fingerprint
    name, raw = index.header()
    fields = orjson.loads(raw)
    fields[9] = seen_by
    return EncodedRecord(key=record.key, value=record.value, headers=[(name, orjson.dumps(fields))])


def finished_records(template: OrderState, count: int) -> list[EncodedRecord]:
    """``count`` finished records (``worker.kafka.finished``) of ``COMPLETED`` orders, as
    ``StateStore.retire`` writes them, under ids of their own (``fin-…``)."""
    assert template.last_event is not None
    event = template.last_event.model_copy(update={"status": OrderStatus.COMPLETED})
    base = FinishedRecord("fin-0000000", OrderStatus.COMPLETED, request_fingerprint(template.request), event)
    value = base.to_bytes().replace(template.request_id.encode(), b"fin-0000000")
    records = []
    for i in range(1, count + 1):
        key = f"fin-{i:07d}".encode()
        records.append(EncodedRecord(key=key, value=value.replace(b"fin-0000000", key), headers=[]))
    return records


def finished_segments(template: OrderState, count: int, entries: int = FOLD_ENTRIES) -> list[EncodedRecord]:
    """``count`` finished orders folded into segment records of ``entries`` each, as
    ``StateStore.fold_finished`` writes them once the log is compacted (no single record, no
    tombstone left). Each order's last event differs as real ones do (request id, provider
    references, sequence, time), so the segment's compression is not that of copies."""
    assert template.last_event is not None
    base = template.last_event.model_copy(update={"status": OrderStatus.COMPLETED})
    fingerprint = request_fingerprint(template.request)
    records: list[EncodedRecord] = []
    for start in range(1, count + 1, entries):
        folded = []
        for i in range(start, min(start + entries, count + 1)):
            request_id = f"fin-{i:07d}"
            event = base.model_copy(
                update={
                    "request_id": request_id,
                    "sequence": 3 + i % 40,
                    "occurred_at": base.occurred_at + timedelta(seconds=37 * i),
                    "provider_refs": {k: f"{v}-{i}" for k, v in base.provider_refs.items()},
                }
            )
            folded.append(FinishedRecord(request_id, OrderStatus.COMPLETED, fingerprint, event))
        segment = Segment(folded, list(range(start, start + len(folded))))
        records.append(EncodedRecord(key=segment.key(), value=segment.to_bytes(), headers=[]))
    return records


TOKEN = {"access_token": "bench-token", "expires_in": 3600, "token_type": "Bearer"}


class TaskingPages:
    """The provider's side of a legacy poll: ``GET …/taskings`` pages of every order, answered
    in-process (``httpx.MockTransport``, one turn of the event loop per answer) from bodies
    serialised once, so a cycle's CPU is the client's work (the adapter's HTTP client, JSON
    decoding, fingerprints) and the worker's."""

    def __init__(self, count: int, page_size: int) -> None:
        items = [_item(i) for i in range(1, count + 1)]
        self.pages = [
            orjson.dumps({"taskings": items[start : start + page_size]})
            for start in range(0, count, page_size)
        ] or [orjson.dumps({"taskings": []})]

    async def handler(self, request: httpx.Request) -> httpx.Response:
        # One turn of the event loop, as a network answer takes at least one: without it the
        # client would read every page of a cycle without ever handing the loop back.
        await asyncio.sleep(0)
        if request.url.path == AUTH_PATH:
            return httpx.Response(200, json=TOKEN)
        page = int(request.url.params["startPage"])
        body = self.pages[page - 1] if page <= len(self.pages) else orjson.dumps({"taskings": []})
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})


class TimedProvider:
    """The real OneAtlas adapter over :class:`TaskingPages`; ``cpu`` is the CPU time of each of
    its polls (the provider side of a cycle, reported apart from the worker's)."""

    name = Provider.ONEATLAS

    def __init__(self, pages: TaskingPages) -> None:
        settings = OneAtlasSettings(
            api_key=SecretStr("bench-key"),
            contract_id=CONTRACT,
            auth_url=HttpUrl(f"https://authenticate.oneatlas.test{AUTH_PATH}"),
            base_url=HttpUrl("https://order.api.oneatlas.test"),
            rate_limit_per_second=1_000_000,
        )
        client = httpx.AsyncClient(transport=httpx.MockTransport(pages.handler))
        self.adapter = OneAtlasProvider(settings, HttpClientSettings(), client=client)
        self.pages = pages
        self.cpu: list[float] = []

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        started = time.process_time()
        polled = await self.adapter.poll(keys, known)
        self.cpu.append(time.process_time() - started)
        return polled

    async def refresh_token(self) -> bool:
        return await self.adapter.refresh_token()

    def forget(self, tracking_keys: Collection[str]) -> None:
        self.adapter.forget(tracking_keys)

    async def aclose(self) -> None:
        await self.adapter.aclose()


# --------------------------------------------------------------------------- child process


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle_memory() -> int:
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: the figure only loses some precision
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


async def _child(bootstrap: str, topic: str, cycles: int) -> dict[str, object]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    store = StateStore(producer, bootstrap, topic)
    before = settle_memory()
    restored = await store.restore(range(PARTITIONS))
    after = settle_memory()
    recorder = StepRecorder()
    poller = _poller(store, producer, recorder)
    cycle_cpu, cycle_wall, dispatched = [], [], 0
    for _ in range(cycles):
        cpu, wall = time.process_time(), time.perf_counter()
        dispatched = await poller.run_cycle(Provider.ONEATLAS)
        cycle_cpu.append(time.process_time() - cpu)
        cycle_wall.append(time.perf_counter() - wall)
    floor = _decode_floor(poller.providers[Provider.ONEATLAS].pages.pages)  # type: ignore[attr-defined]
    await poller.providers[Provider.ONEATLAS].adapter.aclose()  # type: ignore[attr-defined]
    await producer.stop()
    return {
        "orders": restored.records,
        "rss_before": before,
        "rss_after": after,
        "cycle_cpu": cycle_cpu,
        "cycle_wall": cycle_wall,
        "dispatched": dispatched,
        "state_writes": len(recorder.steps),
        "unchanged": recorder.unchanged,
        "provider_cpu": poller.providers[Provider.ONEATLAS].cpu,  # type: ignore[attr-defined]
        "restore_seconds": restored.seconds,
        "open_orders": len(store),
        "finished": store.finished_count(),
        "finished_bytes": store.finished_nbytes(),
        "floor_cpu": floor,
    }


def _decode_floor(pages: list[bytes], runs: int = 3) -> float:
    """The floor of a poll cycle: a bare ``orjson.loads`` of the same page bodies (median CPU of
    ``runs``), without HTTP, fingerprints or any per-order work."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        for page in pages:
            orjson.loads(page)
        times.append(time.process_time() - started)
    return sorted(times)[runs // 2]


def _poller(store: StateStore, producer: AIOKafkaProducer, recorder: StepRecorder) -> Poller:
    """Runner and Poller wired like ``worker.app._wire_runtime``; the provider is
    :class:`TimedProvider` (the real adapter over in-process pages)."""
    metrics = WorkerMetrics()
    scheduler = AsyncIOScheduler(timezone=UTC)

    async def fire(request_id: str, kind: object) -> None:
        return None

    provider = TimedProvider(TaskingPages(len(store), PAGE_SIZE))  # the open orders only
    runner = Runner(
        store,
        Publisher(producer, TopicSettings(), metrics),
        {},
        Timers(scheduler, fire, metrics),
        metrics,
        probe=recorder,
    )

    return Poller(
        scheduler,
        {Provider.ONEATLAS: provider},  # type: ignore[dict-item]  # only poll() is called
        store.tracked,
        runner.deliver_snapshot,
        metrics,
        300.0,
        lambda: datetime.now(UTC),
        news=runner.snapshot_is_news,
    )


@dataclass
class TrackingResult:
    orders: int
    bytes_per_order: float
    cycle_cpu: float  # median CPU seconds of the cycles after the first
    cycle_wall: float
    first_cpu: float  # the first cycle after the restore (every order decoded once)
    first_wall: float
    provider_cpu: float  # of cycle_cpu: the adapter's poll (HTTP client, JSON, fingerprints; median)
    dispatched: int  # orders the adapter returned in the last cycle
    decided: int  # snapshots that went through the runner, over all cycles
    state_writes: int
    restore_seconds: float
    open_orders: int
    finished: int
    finished_bytes: int
    floor_cpu: float  # a bare orjson decode of the same pages (the cycle's floor)


def measure_in_child(bootstrap: str, topic: str, cycles: int = 4) -> TrackingResult:
    """Restore and ``cycles`` poll cycles in a fresh process (see the module docstring).

    The first cycle after a restore decodes and decides every order once (no snapshot has been
    seen yet); the later ones are the steady state, reported as their median."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.tracking",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--cycles",
            str(cycles),
        ],
        check=True,
        capture_output=True,
    )
    data = orjson.loads(out.stdout.splitlines()[-1])
    orders = int(data["orders"])
    cpu, wall = sorted(data["cycle_cpu"][1:]), sorted(data["cycle_wall"][1:])
    return TrackingResult(
        orders,
        (data["rss_after"] - data["rss_before"]) / orders,
        cpu[len(cpu) // 2],
        wall[len(wall) // 2],
        data["cycle_cpu"][0],
        data["cycle_wall"][0],
        sorted(data["provider_cpu"][1:])[len(cpu) // 2],
        int(data["dispatched"]),
        int(data["state_writes"]) + int(data["unchanged"]),
        int(data["state_writes"]),
        float(data["restore_seconds"]),
        int(data["open_orders"]),
        int(data["finished"]),
        int(data["finished_bytes"]),
        float(data["floor_cpu"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--cycles", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(_child(args.bootstrap, args.topic, args.cycles))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
