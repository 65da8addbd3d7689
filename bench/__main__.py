"""``make bench``: measure the worker against its limits, print a table, write docs/performance.md.

Every figure is measured in this one run, next to the reference it is compared with (see the
modules: throughput, latency, restore, tracking, intake). ``--quick`` scales every size down for
trying things out; the default sizes are the ones the targets speak of.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench import cli, deliveries, handover, intake, latency, restore, throughput, tracking
from bench.figures import _delivery_figures, _handover_figures, _tracking_figures
from bench.latency import percentile
from bench.report import Figure, Report, measured_block, text_table, write_document
from bench.stack import simulators, unique_topics
from worker.domain.model import OrderState
from worker.kafka.broker import EmbeddedBroker
from worker.kafka.statecodec import SEEN_BY
from worker.kafka.statestore import FOLD_ENTRIES

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


@dataclass(frozen=True)
class Sizes:
    orders: int = 1000
    serial_orders: int = 20
    concurrency: int = 32
    latency_seconds: float = 15.0
    restore_records: int = 100_000
    tracked: tuple[int, ...] = (10_000, 100_000)
    intake_messages: int = 5000
    delivery_waiting: int = 10_000
    delivery_new: int = 100
    delivery_new_oneatlas: int = 1000
    handover_orders: int = 100_000
    finished_factor: int = 10  # finished orders per open order in the finished-orders run


QUICK = Sizes(
    orders=200,
    serial_orders=5,
    latency_seconds=4.0,
    restore_records=10_000,
    tracked=(2_000, 10_000),
    intake_messages=1000,
    handover_orders=10_000,
)
CALL_LATENCY = 0.05
RATE = 100.0
LIGHT_RATE = 20.0  # a load far below the worker's capacity: the step without loop queueing


def _log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


SECTIONS = ("throughput", "latency", "restore", "tracking", "handover", "intake", "deliveries", "cli")


async def run(sizes: Sizes, report: Report, only: frozenset[str] = frozenset(SECTIONS)) -> None:
    """Run the sections in ``only`` (all by default); the ones that need a real ``ORDERED``
    state take it from the latency run, or from a single order when that section is skipped."""
    async with EmbeddedBroker() as broker:
        if "throughput" in only:
            _log("throughput: worker, ceiling replay, serial")
            await _throughput(broker, sizes, report)
        ordered: OrderState | None = None
        if "latency" in only:
            _log("added latency")
            ordered = await _latency(broker, sizes, report)
        elif only & {"restore", "tracking", "handover"}:
            ordered = await handover.ordered_state(broker)
        if "restore" in only:
            _log("restore")
            assert ordered is not None
            await _restore(broker, sizes, ordered, report)
        if "tracking" in only:
            _log("tracking")
            assert ordered is not None
            await _tracking(broker, sizes, ordered, report)
        if "handover" in only:
            _log("handover: first poll cycles after a restore, in a consumer group")
            assert ordered is not None
            await _handover(broker, sizes, ordered, report)
        if "intake" in only:
            _log("intake")
            await _intake(broker, sizes, report)
    if "deliveries" in only:
        _log("deliveries")
        await _deliveries(sizes, report)
    if "cli" in only:
        _log("cli: start times")
        _cli(report)


CLI_TARGET = 0.3  # seconds, for --help and the read-only commands' start


def _cli(report: Report) -> None:
    r = cli.measure()
    for name, seconds in r.cases.items():
        report.add(
            Figure(
                "cli",
                name,
                seconds,
                "s",
                f"bare interpreter {r.bare:.3f} s",
                seconds / r.bare,
                f"≤ {CLI_TARGET} s",
                seconds <= CLI_TARGET,
            )
        )
    report.note(
        "cli",
        "Median wall time of 5 fresh interpreters per case, interleaved with 5 bare starts "
        "(`python -c pass`, the ratio's reference). A read-only command's start is what it does "
        "before its first network call: reading the settings and importing its modules.",
    )


async def _throughput(broker: EmbeddedBroker, sizes: Sizes, report: Report) -> None:
    r = await throughput.measure(
        broker,
        orders=sizes.orders,
        serial_orders=sizes.serial_orders,
        latency=CALL_LATENCY,
        concurrency=sizes.concurrency,
    )
    sec = "throughput"
    ratio = r.worker.rate / r.ceiling_rate
    report.add(
        Figure(
            sec,
            f"worker, request→ORDERED ({r.worker.orders} orders)",
            r.worker.rate,
            "orders/s",
            f"ceiling {r.ceiling_rate:.1f} orders/s",
            ratio,
            "≥ 0.8",
            ratio >= 0.8,
        )
    )
    serial_ratio = r.worker.rate / r.serial.rate
    # The most any consumer can gain over a serial one here is the ceiling's own gain: the
    # provider answers at most `concurrency` calls at once, each after CALL_LATENCY, so a fixed
    # "≥ 100x" is out of reach by construction (100x would need ~3x the connections). The target
    # is that bound: at least 0.8 of what the ceiling gains over the serial consumer.
    bound = r.ceiling_rate / r.serial.rate
    report.add(
        Figure(
            sec,
            "worker vs serial consumer",
            r.worker.rate,
            "orders/s",
            f"serial {r.serial.rate:.2f} orders/s; bound (ceiling vs serial) {bound:.1f}",
            serial_ratio,
            f"≥ 0.8 of the bound ({0.8 * bound:.1f})",
            serial_ratio >= 0.8 * bound,
        )
    )
    report.add(
        Figure(
            sec,
            f"ceiling: raw httpx replay, {r.concurrency} connections",
            r.ceiling.rate,
            "calls/s",
            f"{r.worker.calls_per_order:.2f} calls/order",
        )
    )
    report.add(
        Figure(
            sec,
            "ceiling vs serial consumer",
            r.ceiling_rate,
            "orders/s",
            f"serial {r.serial.rate:.2f} orders/s",
            r.ceiling_rate / r.serial.rate,
        )
    )
    report.note(
        sec,
        f"Simulator in a child process on loopback, {CALL_LATENCY * 1000:.0f} ms "
        f"added to every call; worker `max_concurrency` = {r.concurrency}, rate limit "
        f"lifted. Calls per order counted from the simulator's call record: "
        f"{len(r.worker.calls)} calls for {r.worker.orders} orders. Replay answers: "
        f"{dict(sorted(r.ceiling.statuses.items()))}. The replay uses httpx's default "
        f"transport (one pool of {r.concurrency} connections); the worker uses its own "
        f"(`worker/providers/transport.py`: pools of 4).",
    )
    report.note(
        sec,
        f"Serial consumer: the same worker fed one request at a time "
        f"({r.serial.orders} orders, {r.serial.seconds / r.serial.orders * 1000:.0f} ms "
        f"per order).",
    )


async def _latency(broker: EmbeddedBroker, sizes: Sizes, report: Report) -> OrderState:
    r = await latency.measure(
        broker, rate=RATE, seconds=sizes.latency_seconds, latency=CALL_LATENCY, concurrency=sizes.concurrency
    )
    sec = "added latency"
    p50, p99 = r.quantile(0.5) * 1000, r.quantile(0.99) * 1000
    report.add(Figure(sec, f"step p50 ({len(r.steps)} steps)", p50, "ms"))
    floor99 = percentile(r.floor, 0.99) * 1000
    floor_ratio = p99 / floor99 if floor99 > 0 else float("inf")
    # At the floor, what is left above 5 ms is the broker's produce round trip, not the worker's.
    broker_bound = floor_ratio <= 1.3 and floor99 > 5.0
    report.add(
        Figure(
            sec,
            "step p99",
            p99,
            "ms",
            f"the broker's own p99 is {floor99:.1f} ms: the 5 ms target is the broker's"
            if broker_bound
            else "",
            target="≤ 5 ms",
            met=p99 <= 5.0,
        )
    )
    report.add(
        Figure(
            sec,
            f"step p99 vs a bare producer's p99 (acks=all, {r.payload:,} B records)",
            p99,
            "ms",
            f"bare producer p99 {floor99:.2f} ms (p50 {percentile(r.floor, 0.5) * 1000:.2f} ms)",
            floor_ratio,
            "≤ 1.3",
            floor_ratio <= 1.3,
        )
    )
    report.add(
        Figure(
            sec,
            "  whole step p50 / p99 (up to the events' ack)",
            r.whole(0.5) * 1000,
            "ms",
            f"p99 {r.whole(0.99) * 1000:.2f} ms",
        )
    )
    for phase in latency.PHASES:
        report.add(
            Figure(
                sec,
                f"  {phase} p50 / p99",
                r.quantile(0.5, phase) * 1000,
                "ms",
                f"p99 {r.quantile(0.99, phase) * 1000:.2f} ms",
            )
        )
    report.add(
        Figure(
            sec,
            "  event-loop lag p50 / p99 (a 1 ms timer's lateness)",
            percentile(r.lag, 0.5) * 1000,
            "ms",
            f"p99 {percentile(r.lag, 0.99) * 1000:.2f} ms",
        )
    )
    light = await latency.measure(
        broker,
        rate=LIGHT_RATE,
        seconds=sizes.latency_seconds,
        latency=CALL_LATENCY,
        concurrency=sizes.concurrency,
    )
    report.add(
        Figure(
            sec,
            f"step p50 / p99 at {LIGHT_RATE:.0f} requests/s ({len(light.steps)} steps)",
            light.quantile(0.5) * 1000,
            "ms",
            f"p99 {light.quantile(0.99) * 1000:.2f} ms; loop lag p99 "
            f"{percentile(light.lag, 0.99) * 1000:.2f} ms",
        )
    )
    report.note(
        sec,
        f"Offered {r.offered:.0f} requests/s; the worker completed "
        f"{r.achieved:.1f} orders/s over the run. A step is one applied event that wrote "
        f"state, timed by the runner's probe (`Runner.probe`); its added latency is its time "
        f"until the order's next provider call starts (decide + persist + perform); the "
        f"events are published while that call runs (whole step). The last row is the same "
        f"measurement at {LIGHT_RATE:.0f} requests/s ({light.achieved:.1f} orders/s "
        f"completed), where the event loop is mostly idle.",
    )
    return max(r.states, key=lambda s: s.sequence)


async def _restore(broker: EmbeddedBroker, sizes: Sizes, ordered: OrderState, report: Report) -> None:
    template = tracking.steady_template(ordered)
    r = await restore.measure(broker, template, sizes.restore_records, unique_topics("rst").state)
    ratio = r.store_rate / r.raw_rate
    report.add(
        Figure(
            "restore",
            f"StateStore.restore ({r.records:,} states, {r.bytes_total / r.records:.0f} B each)",
            r.store_rate,
            "records/s",
            f"raw consumer {r.raw_rate:,.0f} records/s",
            ratio,
            "≥ 0.5",
            ratio >= 0.5,
        )
    )


async def _tracking(broker: EmbeddedBroker, sizes: Sizes, ordered: OrderState, report: Report) -> None:
    template = tracking.steady_template(ordered)
    largest = max(sizes.tracked)
    alone: tracking.TrackingResult | None = None
    for count in sizes.tracked:
        topic = unique_topics("trk").state
        # As a worker that polled the orders leaves the changelog: each state with its mark.
        await restore.write_states(broker, topic, tracking.tracked_records(template, count, SEEN_BY))
        r = tracking.measure_in_child(broker.bootstrap_servers, topic)
        _tracking_figures(r, count == largest, report)
        alone = r
    assert alone is not None
    await _finished(broker, sizes, template, alone, report)
    report.note(
        "tracking",
        "Memory: growth of a fresh process's resident set while "
        "`StateStore.restore` loads the orders, after gc and malloc_trim. Poll cycle: "
        "the worker's `Poller.run_cycle` against the OneAtlas adapter, whose HTTP client is "
        "answered in-process (`httpx.MockTransport`) with `/taskings` pages of 100 orders "
        "serialised once; every order is due, nothing changed, so no state is written and "
        "no snapshot is built (the fingerprints match). The records carry the seen mark a "
        "previous owner leaves (`StateStore.mark_seen`), so the first cycle after the restore "
        "is a restart's; it is reported apart, as a ratio to the steady cycle (the median of "
        "the 3 cycles after it). Floor: a bare `orjson.loads` of the same page bodies in the "
        "same process (no HTTP, no fingerprint, no per-order work).",
    )


async def _finished(
    broker: EmbeddedBroker,
    sizes: Sizes,
    template: OrderState,
    alone: tracking.TrackingResult,
    report: Report,
) -> None:
    """The open orders of the largest tracking run plus ``finished_factor`` times as many
    finished orders in the same changelog, against that run (restore, memory, steady cycle):
    folded into segment records (a compacted log after ``StateStore.fold_finished``), then as
    single finished records (before a fold, or written by the previous release)."""
    count = alone.open_orders
    open_records = tracking.tracked_records(template, count, SEEN_BY)
    open_bytes = sum(len(r.value) for r in open_records)
    sec = "finished orders"
    layouts = [
        ("segments", tracking.finished_segments(template, count * sizes.finished_factor)),
        ("single records", tracking.finished_records(template, count * sizes.finished_factor)),
    ]
    for layout, finished in layouts:
        topic = unique_topics("fin").state
        await restore.write_states(broker, topic, open_records + finished)
        both = tracking.measure_in_child(broker.bootstrap_servers, topic)
        finished_bytes = sum(len(r.value) for r in finished)
        _finished_figures(sec, layout, both, alone, report, main=layout == "segments")
        report.add(
            Figure(
                sec,
                f"  bytes read: {both.finished:,} finished as {len(finished):,} {layout} vs open",
                finished_bytes / 2**20,
                "MiB",
                f"open {open_bytes / 2**20:.0f} MiB; {finished_bytes / both.finished:.0f} B a finished order",
                finished_bytes / open_bytes,
            )
        )
    report.note(
        sec,
        f"The changelog of the largest tracking run plus {sizes.finished_factor} finished orders "
        "per open order, restored and polled in a fresh process as in the tracking section: "
        f"folded into segments of {FOLD_ENTRIES:,} (as `StateStore.fold_finished` leaves a "
        "compacted log: id hashes, source offsets, then the entries' JSON compressed; each "
        "order's last event differs in ids, sequence and time), then as single finished "
        "records (as `StateStore.retire` writes them, before a fold or by the previous "
        "release). Memory is the resident-set growth over the whole restore; the packed entry "
        "is `FinishedIds`' arrays per finished order. Restore times are wall clock.",
    )


def _finished_figures(
    sec: str,
    layout: str,
    both: tracking.TrackingResult,
    alone: tracking.TrackingResult,
    report: Report,
    *,
    main: bool,
) -> None:
    label = f"{both.open_orders:,} open + {both.finished:,} finished ({layout})"
    label += f" vs {alone.open_orders:,} open alone"
    grown, base = both.bytes_per_order * both.orders, alone.bytes_per_order * alone.orders
    rows = [
        ("restore time", both.restore_seconds, alone.restore_seconds, "s"),
        ("memory (resident growth)", grown / 2**20, base / 2**20, "MiB"),
    ]
    if main:
        rows.append(("steady poll cycle CPU", both.cycle_cpu, alone.cycle_cpu, "s"))
    for name, value, reference, unit in rows:
        ratio = value / reference if reference > 0 else float("inf")
        target, met = ("≤ 1.2", ratio <= 1.2) if main else ("", None)
        report.add(
            Figure(sec, f"{name}: {label}", value, unit, f"alone {reference:.3g} {unit}", ratio, target, met)
        )
    if main:
        per = both.finished_bytes / both.finished if both.finished else 0.0
        report.add(Figure(sec, "  packed finished entry in memory", per, "B", target="≤ 12 B", met=per <= 12))


async def _deliveries(sizes: Sizes, report: Report) -> None:
    sec = "deliveries"
    up42 = await deliveries.measure(sizes.delivery_waiting, sizes.delivery_new)
    # UP42: the asset listing, one STAC search per 50 assets, one collection read per product.
    _delivery_figures("UP42", up42, lambda busy: 2 + busy.new + busy.new // 50 + 1, report)
    oneatlas = await deliveries.measure_oneatlas(sizes.delivery_waiting, sizes.delivery_new_oneatlas)
    # OneAtlas: per workspace (legacy, neo), the pages of 500 items updated since the cursor.
    _delivery_figures("OneAtlas", oneatlas, lambda busy: 2 + -(-(busy.new + busy.new // 10) // 500), report)
    report.note(
        sec,
        "The worker's `DeliveryHarvester.run_cycle` against the real adapters, whose HTTP clients "
        "are answered in-process (`httpx.MockTransport`) with reference-shaped pages. UP42: the "
        "storage assets created since the cursor, the STAC items of a batch of assets, the "
        "collections; busy = one new asset (one item) for each new product. OneAtlas: the "
        "waiting orders are half SPOT/Pléiades and half Pléiades Neo (a quarter of these before their sales "
        "order id, matched by customer reference); the two delivery workspaces (`/api/v1/me`, "
        "`/api/v1/contracts`) are resolved once per process, in a cycle before the measured one; "
        "`POST /api/v2/opensearch` answers each workspace's items by `lastUpdateDate` from the "
        "cursor, 500 a page; busy = one item for each new product plus one in ten of orders that "
        "are not waiting (kept out). Quiet: nothing new since the cursor. Each product goes to a "
        "counting `deliver` (applying it is one state step, see latency).",
    )


async def _handover(broker: EmbeddedBroker, sizes: Sizes, ordered: OrderState, report: Report) -> None:
    template = tracking.steady_template(ordered)
    fresh, handed = await handover.measure(broker, template, sizes.handover_orders)
    big = sizes.handover_orders >= 100_000
    for r, label in ((handed, "handover"), (fresh, "first start")):
        _handover_figures(r, label, big, report)
    report.note(
        "handover",
        f"Two workers built as `tasking-worker run` builds them, one after the other, join a "
        f"consumer group on the embedded broker (session timeout {fresh.session_timeout_ms / 1000:g} "
        f"s), restore and resume {fresh.orders:,} steady tracked orders (as in the tracking "
        f"section), then run {len(fresh.cycles)} poll cycles of their own `Poller` in their own "
        f"event loop against the OneAtlas adapter answered in-process (one loop round trip per "
        f"page). *first start*: the first worker finds the orders as the previous release "
        f"({handover.PREVIOUS_RELEASE}) left them, each state with its seen mark: the first start "
        f"of a new version, which decides only the orders whose snapshot changed (none here). "
        f"*handover*: the second takes over what the first left in the changelog. A 1 ms timer "
        f"measures the loop's lag; membership is read from the worker's "
        f"`tasking_rebalances_total` and owned partitions, from ready until "
        f"{handover.SETTLE_SECONDS:g} s after the last cycle. Targets apply to the handover.",
    )


async def _intake(broker: EmbeddedBroker, sizes: Sizes, report: Report) -> None:
    with simulators(CALL_LATENCY) as sims:
        for valid in (True, False):
            r = await intake.measure(broker, sims.env, sizes.intake_messages, valid, sizes.concurrency)
            report.add(Figure("intake", f"{r.kind} requests ({r.messages:,})", r.rate, "messages/s"))
    report.note(
        "intake",
        "From the first fetched batch until every record's state is written "
        "(valid: RECEIVED state + event; invalid: dead letter + REJECTED event + burnt "
        "id). Provider calls are stalled so that only the intake writes.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for trying")
    parser.add_argument("--out", type=Path, default=DOC, help="the document to write")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable); the document is then left unchanged",
    )
    parser.add_argument("--handover-orders", type=int, help="orders of the handover section")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    if args.handover_orders:
        sizes = replace(sizes, handover_orders=args.handover_orders)
    report = Report()
    started = time.perf_counter()
    asyncio.run(run(sizes, report, frozenset(args.only or SECTIONS)))
    seconds = time.perf_counter() - started
    print(text_table(report.figures))
    if args.only:
        _log(f"{seconds:.0f} s; {args.out} left unchanged (--only)")
        return
    write_document(args.out, measured_block(report, " --quick" if args.quick else "", seconds))
    _log(f"wrote {args.out} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
