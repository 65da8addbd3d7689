"""A group member that restores many open orders keeps its membership through the poll cycles
that follow, and a handover's first cycle decides only what changed.

Two workers, built as ``tasking-worker run`` builds them and running in this process (so that
their poller can be pointed at a provider listing every order, and their runner observed), one
after the other on the same changelog (``bench.handover``): the first restores the orders as the
previous release (0.1.0) left them, the second what the first left. Each runs three poll cycles
against the real OneAtlas adapter, whose HTTP client is answered in-process with ``/taskings``
pages of every order (nothing changed at the provider). Small in ``make test``; 100,000 orders in
``make soak`` (``SOAK_HANDOVER_ORDERS``), the size at which a cycle that never handed the event
loop back held it for ~15 s, longer than the default session timeout.

The embedded broker is a weak judge of membership: in the run that measured the 15 s stall
(docs/performance.md) it did not evict the member either. The assertions on what each cycle
decided do not depend on it.
"""

from __future__ import annotations

import pytest
from reliability_sizes import Sizes

from bench import handover, tracking
from bench.handover import HandoverResult
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def _run(broker: EmbeddedBroker, orders: int) -> tuple[HandoverResult, HandoverResult]:
    template = tracking.steady_template(await handover.ordered_state(broker))
    return await handover.measure(broker, template, orders)


def _check(fresh: HandoverResult, handed: HandoverResult, orders: int) -> None:
    for result in (fresh, handed):
        assert result.kept_membership, (result.assigned, result.revoked, result.owned_after)
        assert [c.dispatched for c in result.cycles] == [orders] * 3  # every order was polled
        assert all(c.writes == 0 for c in result.cycles)  # steady orders: no state changed
    # First start of a new version on the changelog the previous release left: its seen marks
    # still count (the mark is tied to the snapshot revision, not the worker version), so no
    # order whose snapshot is unchanged is decided again.
    assert [c.decided for c in fresh.cycles] == [0, 0, 0]
    # Handover: the next owner restored those fingerprints and decides nothing.
    assert [c.decided for c in handed.cycles] == [0, 0, 0]
    # The loop kept running during each cycle (a 1 ms timer fired while the cycle ran).
    assert all(len(c.lag.samples) > 1 for r in (fresh, handed) for c in r.cycles)


async def test_membership_and_a_cheap_first_cycle_after_a_handover(
    broker: EmbeddedBroker, sizes: Sizes
) -> None:
    fresh, handed = await _run(broker, sizes.handover_orders)
    _check(fresh, handed, sizes.handover_orders)


@pytest.mark.soak
async def test_soak_handover_of_many_orders(broker: EmbeddedBroker, soak_sizes: Sizes) -> None:
    fresh, handed = await _run(broker, soak_sizes.handover_orders)
    _check(fresh, handed, soak_sizes.handover_orders)
