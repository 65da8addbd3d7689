"""``TrackingFailed`` / ``TrackingRecovered``: the current status published once more, sequenced,
with reason ``TRACKING_ERROR`` (what fails, since when) and then ``TRACKING_RECOVERED``."""

from __future__ import annotations

from worker.domain.model import TrackingFailed, TrackingRecovered
from worker.events.status import OrderStatus as S

from .builders import Order, at, request, to_placed


def test_tracking_trouble_repeats_the_status_with_its_reason_and_recovery() -> None:
    order = to_placed(request())
    before = order.last()
    effects = order.send(
        TrackingFailed(failures=5, what="read", message="get_coverage: HTTP 500", since=at(10), at=at(20))
    )
    assert effects == []
    failed = order.last()
    assert failed.sequence == before.sequence + 1
    assert failed.status is before.status
    assert failed.previous_status is before.status
    assert failed.reason is not None
    assert failed.reason.code == "TRACKING_ERROR"
    assert failed.reason.details == {
        "failing": "read",
        "failures": 5,
        "since": at(10).isoformat(),
        "error": "get_coverage: HTTP 500",
    }
    order.send(TrackingRecovered(failures=7, since=at(10), at=at(30)))
    recovered = order.last()
    assert recovered.sequence == failed.sequence + 1
    assert recovered.reason is not None
    assert recovered.reason.code == "TRACKING_RECOVERED"
    assert recovered.status is before.status


def test_a_finished_order_ignores_tracking_trouble() -> None:
    order = Order()
    assert order.send(TrackingFailed(failures=5, what="parse", message="x", since=at(1), at=at(2))) == []
    assert order.state is None
    placed = to_placed(request())
    placed.state = placed.s.model_copy(update={"phase": placed.s.phase.DONE, "status": S.COMPLETED})
    count = len(placed.events)
    placed.send(TrackingFailed(failures=5, what="parse", message="x", since=at(1), at=at(2)))
    assert len(placed.events) == count
