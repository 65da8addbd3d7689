"""How the benchmark's tracking, delivery and handover results become figures of the report
(what ``bench/__main__.py`` measures, written down beside the references it is compared with)."""

from __future__ import annotations

from collections.abc import Callable

from bench import deliveries, handover, tracking
from bench.report import Figure, Report


def _tracking_figures(r: tracking.TrackingResult, big: bool, report: Report) -> None:
    sec = "tracking"
    report.add(
        Figure(
            sec,
            f"memory per open order ({r.orders:,} orders)",
            r.bytes_per_order,
            "B",
            target="≤ 730 B (goal 512 B)" if big else "",
            met=r.bytes_per_order <= 730 if big else None,
        )
    )
    report.add(
        Figure(
            sec,
            f"CPU per poll cycle ({r.orders:,} orders)",
            r.cycle_cpu,
            "s",
            f"wall {r.cycle_wall:.2f} s, {r.dispatched:,} orders polled; "
            f"adapter (HTTP, JSON, fingerprints) {r.provider_cpu:.2f} s, "
            f"worker {r.cycle_cpu - r.provider_cpu:.2f} s",
            target="≤ 1.0 s" if big else "",
            met=r.cycle_cpu <= 1.0 if big else None,
        )
    )
    floor_ratio = r.cycle_cpu / r.floor_cpu if r.floor_cpu > 0 else float("inf")
    report.add(
        Figure(
            sec,
            f"  poll cycle vs bare orjson decode of its pages ({r.orders:,} orders)",
            r.cycle_cpu,
            "s",
            f"floor {r.floor_cpu:.3f} s",
            floor_ratio,
            "≤ 2 (aim)" if big else "",
            floor_ratio <= 2 if big else None,
        )
    )
    first_ratio = r.first_cpu / r.cycle_cpu if r.cycle_cpu > 0 else float("inf")
    report.add(
        Figure(
            sec,
            f"  first cycle after the restore ({r.orders:,} orders)",
            r.first_cpu,
            "s",
            f"steady {r.cycle_cpu:.2f} s; wall {r.first_wall:.2f} s",
            first_ratio,
            "≤ 2" if big else "",
            first_ratio <= 2 if big else None,
        )
    )


def _delivery_figures(
    name: str,
    cycles: tuple[deliveries.CycleResult, deliveries.CycleResult],
    busy_bound: Callable[[deliveries.CycleResult], int],
    report: Report,
) -> None:
    """Calls and CPU of a provider's quiet and busy cycles; ``busy_bound`` is the most calls the
    busy cycle may make for its new products."""
    quiet, busy = cycles
    sec = "deliveries"
    report.add(
        Figure(
            sec,
            f"{name} calls per quiet delivery cycle ({quiet.waiting:,} orders waiting)",
            quiet.total_calls,
            "calls",
            ", ".join(f"{k}: {v}" for k, v in sorted(quiet.calls.items())),
            target="no call per order (≤ 2)",
            met=quiet.total_calls <= 2,
        )
    )
    report.add(Figure(sec, f"  CPU per quiet cycle ({quiet.waiting:,} orders waiting)", quiet.cpu, "s"))
    bound = busy_bound(busy)
    report.add(
        Figure(
            sec,
            f"{name} calls per busy cycle ({busy.waiting:,} waiting, {busy.new:,} new products)",
            busy.total_calls,
            "calls",
            ", ".join(f"{k}: {v}" for k, v in sorted(busy.calls.items())),
            target=f"grows with new products (≤ {bound})",
            met=busy.total_calls <= bound and busy.products == busy.new,
        )
    )
    report.add(Figure(sec, f"  CPU per busy cycle ({busy.new:,} new products)", busy.cpu, "s"))


def _handover_figures(r: handover.HandoverResult, label: str, big: bool, report: Report) -> None:
    sec = "handover"
    first = r.cycles[0]
    targeted = big and label == "handover"
    report.add(
        Figure(
            sec,
            f"{label}: event-loop lag p99, first cycle ({r.orders:,} orders)",
            first.lag.p99 * 1000,
            "ms",
            f"p50 {first.lag.p50 * 1000:.2f} ms",
            target="≤ 50 ms" if targeted else "",
            met=first.lag.p99 <= 0.05 if targeted else None,
        )
    )
    report.add(
        Figure(
            sec,
            f"{label}: event-loop lag max, first cycle",
            first.lag.max * 1000,
            "ms",
            target="≤ 200 ms" if targeted else "",
            met=first.lag.max <= 0.2 if targeted else None,
        )
    )
    report.add(
        Figure(
            sec,
            f"{label}: CPU of the first cycle",
            first.cpu,
            "s",
            f"wall {first.wall:.2f} s, {first.dispatched:,} orders polled, {first.decided:,} decided",
            target="≤ 4 s" if targeted else "",
            met=first.cpu <= 4.0 if targeted else None,
        )
    )
    for n, cycle in enumerate(r.cycles[1:], 2):
        report.add(
            Figure(
                sec,
                f"  {label}: cycle {n} CPU; loop lag p99 / max",
                cycle.cpu,
                "s",
                f"lag p99 {cycle.lag.p99 * 1000:.2f} ms, max {cycle.lag.max * 1000:.1f} ms",
            )
        )
    report.add(
        Figure(
            sec,
            f"  {label}: restore + resume until ready; loop lag p99 / max",
            r.ready_seconds,
            "s",
            f"lag p99 {r.restore_lag.p99 * 1000:.2f} ms, max {r.restore_lag.max * 1000:.1f} ms",
        )
    )
    report.add(
        Figure(
            sec,
            f"{label}: membership kept over {len(r.cycles)} cycles "
            f"(session timeout {r.session_timeout_ms / 1000:g} s)",
            float(r.kept_membership),
            "(1 = yes)",
            f"rebalances after ready: assigned {r.assigned:g}, revoked {r.revoked:g}; "
            f"{r.owned_after} partitions owned after",
            target="= 1",
            met=r.kept_membership,
        )
    )
