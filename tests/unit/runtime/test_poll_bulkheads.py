"""One order's tracking trouble stays that order's: the rest of the cycle goes on, the failure is
counted, backed off, reported once past the threshold and again when it recovers."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from unit.domain.builders import snapshot
from unit.runtime.test_poller import tracked_order

from worker.domain.ports import Known, OrderSnapshot, PolledOrder, RemotePhase
from worker.errors import ProviderProtocolError, ProviderRejected
from worker.events.models import Provider
from worker.runtime.timers import Poller, TrackingTrouble

NOW = datetime(2026, 5, 1, tzinfo=UTC)


class Metrics:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.gauge: dict[str, int] = {}
        self.polls: int = 0

    def scheduler_job(self, job: str, ok: bool) -> None:
        return None

    def poll_succeeded(self, provider: str) -> None:
        self.polls += 1

    def poll_error(self, provider: str, kind: str) -> None:
        self.errors.append((provider, kind))

    def set_tracking_errors(self, provider: str, orders: int) -> None:
        self.gauge[provider] = orders


def _unparsable() -> OrderSnapshot:
    raise ProviderProtocolError("poll: not a tasking item", provider="oneatlas", operation="poll")


class FaultyProvider:
    """SO-1's own read fails (``PolledOrder.failed``), SO-2's payload does not parse; the rest is
    fine. ``healed`` makes every order fine."""

    name = Provider.ONEATLAS

    def __init__(self) -> None:
        self.healed = False
        self.asked: list[set[str]] = []

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        self.asked.append(set(keys))
        found = {}
        for key in keys:
            if key == "SO-1" and not self.healed:
                found[key] = PolledOrder.failed(ProviderRejected("get_coverage: HTTP 400", provider="up42"))
            elif key == "SO-2" and not self.healed:
                found[key] = PolledOrder(2, _unparsable)
            else:
                found[key] = PolledOrder.of(snapshot(RemotePhase.ACTIVE, key=key))
        return found


def _poller(
    provider: FaultyProvider, metrics: Metrics, fail_dispatch: set[str], reports: list[tuple[str, str]]
) -> Poller:
    orders = [tracked_order(n) for n in range(6)]

    async def dispatch(request_id: str, polled: PolledOrder, at: datetime) -> None:
        if request_id in fail_dispatch:
            raise RuntimeError("the step applying the snapshot crashed")
        delivered.append((request_id, polled.snapshot.tracking_key))

    async def report(
        request_id: str, now: TrackingTrouble | None, last: TrackingTrouble, at: datetime
    ) -> None:
        reports.append((request_id, "failed" if now is not None else "recovered"))

    delivered: list[tuple[str, str]] = []
    poller = Poller(
        scheduler=None,  # type: ignore[arg-type]  # run_cycle only
        providers={Provider.ONEATLAS: provider},  # type: ignore[dict-item]
        tracked=lambda name: orders,
        dispatch=dispatch,
        metrics=metrics,
        interval=1.0,
        clock=lambda: NOW,
        report=report,
        error_threshold=3,
    )
    poller.delivered = delivered  # type: ignore[attr-defined]
    return poller


async def test_one_orders_failures_do_not_stop_the_others() -> None:
    provider, metrics, reports = FaultyProvider(), Metrics(), []
    poller = _poller(provider, metrics, {"order-3"}, reports)
    await poller.run_cycle(Provider.ONEATLAS)
    delivered = poller.delivered  # type: ignore[attr-defined]
    assert sorted(r for r, _ in delivered) == ["order-0", "order-4", "order-5"]
    assert sorted(metrics.errors) == [("oneatlas", "dispatch"), ("oneatlas", "parse"), ("oneatlas", "read")]
    assert metrics.polls == 1  # the listing worked: the cycle is not a provider failure


async def test_failing_orders_back_off_are_reported_once_and_on_recovery() -> None:
    provider, metrics, reports = FaultyProvider(), Metrics(), []
    poller = _poller(provider, metrics, {"order-3"}, reports)
    for _ in range(8):
        await poller.run_cycle(Provider.ONEATLAS)
    # Failing orders are asked for at cycles 1, 2, 4, 8 (backoff 1, 2, 4); healthy ones every cycle.
    asked_for_failing = [n for n, keys in enumerate(provider.asked, start=1) if "SO-1" in keys]
    assert asked_for_failing == [1, 2, 4, 8]
    assert all("SO-0" in keys for keys in provider.asked)
    assert sorted(reports) == [("order-1", "failed"), ("order-2", "failed"), ("order-3", "failed")]
    assert metrics.gauge["oneatlas"] == 3

    provider.healed = True
    poller._troubles["order-3"].retry_cycle = 0  # due at once (dispatch still fails for order-3)
    for _ in range(8):
        await poller.run_cycle(Provider.ONEATLAS)
    assert ("order-1", "recovered") in reports
    assert ("order-2", "recovered") in reports
    assert ("order-3", "recovered") not in reports
    assert reports.count(("order-3", "failed")) == 1  # reported once, not at every failure
    assert metrics.gauge["oneatlas"] == 1


async def test_a_cycle_with_nothing_due_leaves_the_next_cycles_running() -> None:
    provider, metrics, reports = FaultyProvider(), Metrics(), []
    orders: list[object] = []
    poller = _poller(provider, metrics, set(), reports)
    poller.tracked = lambda name: orders  # type: ignore[assignment,misc]
    assert await poller.run_cycle(Provider.ONEATLAS) == 0
    orders.extend(tracked_order(n) for n in range(2))
    assert await poller.run_cycle(Provider.ONEATLAS) == 2
