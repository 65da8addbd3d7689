"""Delivered products: published once per item, joined to acquisitions, and completion on
evidence (at once at the defaults; an optional grace period, a late product holding COMPLETED
back, the delivery timeout; UP42 storage settled), products after COMPLETED, partial products
completed later."""

from __future__ import annotations

from datetime import timedelta

from worker.domain.model import (
    AcquisitionsListed,
    CommandReceived,
    DeliveryFound,
    DeliverySettled,
    Op,
    Phase,
    Polled,
    Resumed,
    Settings,
    TimerFired,
    TimerKind,
)
from worker.domain.ports import RemotePhase
from worker.events.models import AcquisitionStatus as A
from worker.events.status import OrderStatus as S

from .builders import (
    Order,
    acquisition,
    at,
    calls,
    command,
    counts,
    deliver,
    must,
    product,
    request,
    schedules,
    snapshot,
    to_placed,
)

GRACE = 10 * 60.0  # seconds
TIMEOUT = 24 * 3600.0
SETTINGS = Settings(delivery_grace_seconds=GRACE, delivery_timeout_seconds=TIMEOUT)


def acquiring(*validated: str) -> Order:
    """A placed order acquiring, with these acquisitions validated (refs ``segmentId`` = id)."""
    order = to_placed(request(), settings=SETTINGS)
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    listed = [acquisition(a, A.VALIDATED) for a in validated]
    order.send(AcquisitionsListed(acquisitions=listed, at=at(6)))
    return order


def finish(order: Order, minute: float) -> dict[str, object]:
    """The provider reports the order finished; returns the timers it asked for."""
    done = snapshot(RemotePhase.COMPLETED, counts=counts(validated=len(order.s.acquisitions)))
    return dict(schedules(order.send(Polled(snapshot=done, at=at(minute)))))


def check(order: Order, minute: float) -> None:
    order.send(TimerFired(timer=TimerKind.DELIVERY_CHECK, at=at(minute)))


def test_a_product_is_published_once_with_a_deterministic_id_also_while_in_progress() -> None:
    order = acquiring("s1")
    deliver(order, "item-1", 7, "s1")
    deliver(order, "item-1", 8, "s1")  # the same item harvested again (a restart, a re-listing)
    assert [d.ce_id for d in order.deliveries] == ["req-1:delivery:item-1"]
    assert order.deliveries[0].acquisition_ids == ["s1"]
    assert order.last().status is S.IN_PROGRESS
    assert must(order.last().progress).deliveries == 1
    assert not order.s.terminal


def test_join_matches_acquisition_ids_and_provider_refs_else_nothing() -> None:
    order = acquiring("s1", "s2")
    deliver(order, "by-id", 7, "s2")
    deliver(order, "by-ref", 7, "segmentId-unused", "s1")
    deliver(order, "no-sources", 7)
    joined = {d.product.item_id: d.acquisition_ids for d in order.deliveries}
    assert joined == {"by-id": ["s2"], "by-ref": ["s1"], "no-sources": []}


def test_a_product_ahead_of_its_acquisition_is_held_for_one_listing() -> None:
    order = acquiring("s1")
    effects = deliver(order, "p-new", 7, "s9")
    assert [c.op for c in calls(effects)] == [Op.LIST_ACQUISITIONS], "list the acquisitions once more"
    assert order.deliveries == []
    assert calls(deliver(order, "p-other", 7, "s8")) == [], "one listing serves every held product"
    listed = [acquisition("s1", A.VALIDATED), acquisition("s9", A.VALIDATED)]
    order.send(AcquisitionsListed(acquisitions=listed, at=at(8)))
    joined = {d.product.item_id: d.acquisition_ids for d in order.deliveries}
    assert joined == {"p-new": ["s9"], "p-other": []}
    assert order.s.held_products == []


def test_a_held_product_seen_again_is_published_whatever_the_join() -> None:
    order = acquiring("s1")
    deliver(order, "p", 7, "ACQ_UNKNOWN")  # held; say the listing failed
    deliver(order, "p", 8, "ACQ_UNKNOWN")  # the next harvest brings it again
    assert [(d.product.item_id, d.acquisition_ids) for d in order.deliveries] == [("p", [])]
    deliver(order, "p", 9, "ACQ_UNKNOWN")
    assert len(order.deliveries) == 1


def test_a_product_of_another_order_or_of_a_finished_order_is_ignored() -> None:
    order = acquiring("s1")
    deliver(order, "x", 7, "s1")
    order.send(DeliveryFound(product=product("elsewhere", "SO-OTHER", "s1"), at=at(8)))
    assert [d.product.item_id for d in order.deliveries] == ["x"]


def test_completed_only_after_every_validated_acquisition_is_delivered_and_the_grace_period() -> None:
    order = acquiring("s1", "s2")
    deliver(order, "item-1", 7, "s1")
    timers = finish(order, 10)
    assert order.last().status is S.IN_PROGRESS, "waiting for delivery is shown as IN_PROGRESS"
    assert order.s.phase is Phase.AWAITING_DELIVERY
    assert timers == {"delivery_check": at(10) + timedelta(seconds=TIMEOUT)}, "s2 is missing"
    effects = deliver(order, "item-2", 12, "s2")
    assert schedules(effects) == {"delivery_check": at(10) + timedelta(seconds=GRACE)}
    check(order, 15)  # a stale timer before the grace period ended changes nothing
    assert not order.s.terminal
    check(order, 20)
    assert order.last().status is S.COMPLETED
    assert order.last().reason is None
    assert must(order.last().progress).deliveries == 2


def test_a_product_that_appears_after_the_provider_finished_holds_completed_back() -> None:
    order = acquiring("s1")
    finish(order, 10)
    check(order, 10 + GRACE / 60)  # grace over, but s1 has no product yet
    assert order.last().status is S.IN_PROGRESS
    deliver(order, "late", 30, "s1")
    assert order.last().status is S.COMPLETED, "the grace period is over: the last product completes it"
    assert [e.status for e in order.events].index(S.COMPLETED) == len(order.events) - 1


def test_no_product_before_the_timeout_ends_with_delivery_incomplete() -> None:
    order = acquiring("s1", "s2")
    deliver(order, "item-1", 7, "s1")
    finish(order, 10)
    check(order, 10 + TIMEOUT / 60 - 1)
    assert not order.s.terminal
    check(order, 10 + TIMEOUT / 60)
    last = order.last()
    assert last.status is S.COMPLETED
    why = must(last.reason)
    assert why.code == "DELIVERY_INCOMPLETE"
    assert why.details["missingAcquisitionIds"] == ["s2"]
    assert why.details["delivered"] == 1
    deliver(order, "too-late", 10 + TIMEOUT / 60 + 1, "s2")
    assert len(order.deliveries) == 2, "a product after COMPLETED is still published"
    assert order.last().status is S.COMPLETED
    assert order.last().previous_status is S.COMPLETED
    assert order.last().reason is None, "nothing is missing any more: DELIVERY_INCOMPLETE is dropped"
    assert must(order.last().progress).deliveries == 2


def test_a_provider_that_finished_with_nothing_delivered_waits_for_at_least_one_product() -> None:
    order = to_placed(request(), settings=SETTINGS)
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING), at=at(5)))
    finish(order, 10)
    check(order, 10 + GRACE / 60)
    assert not order.s.terminal
    check(order, 10 + TIMEOUT / 60)
    assert must(order.last().reason).details == {
        "missingAcquisitionIds": [],
        "delivered": 0,
        "providerStatus": "COMPLETED",
        "providerFinishedAt": at(10).isoformat(),
    }


def test_unjoined_products_cover_validated_acquisitions_by_count() -> None:
    order = acquiring("s1", "s2")
    deliver(order, "p1", 7, "DS_UNMATCHED_1")
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(8)))
    assert [d.acquisition_ids for d in order.deliveries] == [[]]
    finish(order, 10)
    check(order, 10 + GRACE / 60)
    assert not order.s.terminal, "one unjoined product covers one of two acquisitions"
    deliver(order, "p2", 40)
    assert order.last().status is S.COMPLETED


def test_completed_waits_while_a_product_is_held() -> None:
    order = acquiring("s1")
    deliver(order, "p1", 7, "s1")
    deliver(order, "p2", 8, "ACQ_LATER")  # held for a listing
    finish(order, 10)
    check(order, 10 + GRACE / 60)
    assert not order.s.terminal
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(30)))
    assert order.last().status is S.COMPLETED
    assert must(order.last().progress).deliveries == 2


def test_zero_grace_completes_on_the_final_snapshot_when_everything_is_there() -> None:
    order = to_placed(request(), settings=Settings(delivery_grace_seconds=0))
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(6)))
    deliver(order, "p1", 7, "s1")
    finish(order, 10)
    assert order.last().status is S.COMPLETED


def test_resume_while_awaiting_delivery_rebuilds_the_delivery_check() -> None:
    order = acquiring("s1")
    finish(order, 10)
    effects = order.send(Resumed(at=at(100)))
    assert schedules(effects)["delivery_check"] == at(10)
    assert calls(effects) == [], "the provider has finished: nothing is read again"
    assert order.s.phase is Phase.AWAITING_DELIVERY


def test_cancel_while_awaiting_delivery_is_answered_command_rejected() -> None:
    order = acquiring("s1")
    finish(order, 10)
    effects = order.send(CommandReceived(command=command("cancel"), at=at(11)))
    assert effects == []
    assert must(order.last().reason).code == "COMMAND_REJECTED"
    assert order.s.phase is Phase.AWAITING_DELIVERY


def test_which_orders_the_delivery_harvest_looks_for() -> None:
    from worker.domain.model import awaiting_delivery

    assert awaiting_delivery(True, Phase.AWAITING_PROVIDER), "products may come while in progress"
    assert awaiting_delivery(True, Phase.AWAITING_DELIVERY)
    assert awaiting_delivery(True, Phase.AWAITING_OPTION), "a poll may be behind the provider"
    assert not awaiting_delivery(False, Phase.AWAITING_PROVIDER), "not placed"
    assert not awaiting_delivery(True, Phase.DONE)


# --------------------------------------------------------------------------- completion at the defaults


def test_at_the_defaults_the_last_product_completes_the_order_in_the_same_step() -> None:
    order = to_placed(request())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(6)))
    timers = finish(order, 10)
    assert timers == {"delivery_check": at(10) + timedelta(seconds=Settings().delivery_timeout_seconds)}
    deliver(order, "p1", 10.5, "s1")
    assert order.last().status is S.COMPLETED, "no wall-clock wait after the last product"
    assert order.last().occurred_at == at(10.5)


def test_a_final_snapshot_with_a_new_change_marker_waits_for_that_listing() -> None:
    order = to_placed(request())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(6)))
    deliver(order, "p1", 7, "s1")
    done = snapshot(RemotePhase.COMPLETED, counts=counts(validated=2), change_marker="m1")
    effects = order.send(Polled(snapshot=done, at=at(10)))
    assert [c.op for c in calls(effects)] == [Op.LIST_ACQUISITIONS]
    assert not order.s.terminal, "an acquisition validated at the end may come with that listing"
    listed = [acquisition("s1", A.VALIDATED), acquisition("s2", A.VALIDATED)]
    order.send(AcquisitionsListed(acquisitions=listed, at=at(11)))
    assert not order.s.terminal, "s2 has no product yet"
    deliver(order, "p2", 12, "s2")
    assert order.last().status is S.COMPLETED


def test_up42_completes_only_once_its_storage_shows_every_asset_delivered() -> None:
    order = to_placed(request("up42"))
    key = must(order.s.placed).tracking_key
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, key), at=at(5)))
    deliver(order, "item-1", 6)
    order.send(Polled(snapshot=snapshot(RemotePhase.COMPLETED, key), at=at(7)))
    assert not order.s.terminal, "FULFILLED, but another asset may still be extracting"
    order.send(DeliverySettled(tracking_key="other-order", item_ids=["item-1"], at=at(8)))
    assert not order.s.terminal, "another order's evidence counts for nothing"
    order.send(DeliverySettled(tracking_key=key, item_ids=["item-1", "item-2"], at=at(8)))
    assert not order.s.terminal, "item-2 is not published yet"
    deliver(order, "item-2", 9)
    assert order.last().status is S.COMPLETED, "the evidence is complete with item-2"
    assert order.last().occurred_at == at(9)
    assert must(order.last().progress).deliveries == 2


def test_up42_evidence_for_a_held_product_completes_after_its_listing() -> None:
    order = to_placed(request("up42"))
    key = must(order.s.placed).tracking_key
    order.send(Polled(snapshot=snapshot(RemotePhase.COMPLETED, key, change_marker="m1"), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[], at=at(5.5)))
    deliver(order, "item-1", 6, "item-1")  # ahead of its acquisition: held for a listing
    order.send(DeliverySettled(tracking_key=key, item_ids=["item-1"], at=at(6)))
    assert not order.s.terminal
    order.send(AcquisitionsListed(acquisitions=[acquisition("item-1", A.VALIDATED)], at=at(6.2)))
    assert order.last().status is S.COMPLETED
    assert order.deliveries[0].acquisition_ids == ["item-1"]
    assert order.last().occurred_at == order.deliveries[0].occurred_at == at(6.2)


# --------------------------------------------------------------------------- after COMPLETED


def completed_order() -> Order:
    order = acquiring("s1")
    deliver(order, "p1", 7, "s1")
    finish(order, 10)
    check(order, 20)
    assert order.last().status is S.COMPLETED
    return order


def test_a_product_after_completed_is_published_and_counted_within_the_window() -> None:
    order = completed_order()
    before = order.last().sequence
    deliver(order, "p-late", 60, "s1")
    assert [d.product.item_id for d in order.deliveries] == ["p1", "p-late"]
    last = order.last()
    assert (last.status, last.previous_status, last.sequence) == (S.COMPLETED, S.COMPLETED, before + 1)
    assert must(last.progress).deliveries == 2
    deliver(order, "p-late", 61, "s1")
    assert order.last().sequence == before + 1, "the same product again publishes nothing"


def test_a_product_after_the_window_is_not_published() -> None:
    order = completed_order()
    window = Settings().harvest_after_completion_seconds / 60
    deliver(order, "p-too-late", 20 + window + 1, "s1")
    assert [d.product.item_id for d in order.deliveries] == ["p1"]


# --------------------------------------------------------------------------- partial products


def test_a_partial_product_is_published_again_complete_once() -> None:
    order = acquiring("s1")
    partial = product("p1", "SO-1", "s1").model_copy(update={"partial": True})
    order.send(DeliveryFound(product=partial, at=at(7)))
    order.send(DeliveryFound(product=partial, at=at(8)))
    assert [d.ce_id for d in order.deliveries] == ["req-1:delivery:p1"]
    deliver(order, "p1", 9, "s1")  # the whole product (the collection could be read)
    deliver(order, "p1", 10, "s1")
    assert [d.ce_id for d in order.deliveries] == ["req-1:delivery:p1", "req-1:delivery:p1:r1"]
    assert not order.s.deliveries["p1"].partial
    assert must(order.last().progress).deliveries == 1


def test_a_listing_still_in_flight_when_the_provider_finishes_holds_completed_back() -> None:
    order = to_placed(request())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(6)))
    moved = snapshot(RemotePhase.ACQUIRING, change_marker="m1")  # s2 validated: a listing goes out
    assert [c.op for c in calls(order.send(Polled(snapshot=moved, at=at(7))))] == [Op.LIST_ACQUISITIONS]
    done = snapshot(RemotePhase.COMPLETED, change_marker="m1")  # same marker: no new listing
    order.send(Polled(snapshot=done, at=at(8)))
    deliver(order, "p1", 9, "s1")
    assert not order.s.terminal, "the listing that may show s2 has not answered"
    listed = [acquisition("s1", A.VALIDATED), acquisition("s2", A.VALIDATED)]
    order.send(AcquisitionsListed(acquisitions=listed, at=at(10)))
    assert not order.s.terminal, "s2 has no product"
    deliver(order, "p2", 11, "s2")
    assert order.last().status is S.COMPLETED


def test_a_final_listing_that_fails_lets_the_order_complete_on_what_is_known() -> None:
    from worker.domain.model import ErrorInfo, StepFailed

    order = to_placed(request())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(6)))
    deliver(order, "p1", 7, "s1")
    order.send(Polled(snapshot=snapshot(RemotePhase.COMPLETED, change_marker="m1"), at=at(8)))
    assert not order.s.terminal
    failed = ErrorInfo(reason_code="PROVIDER_ERROR", message="listing failed", retriable=True)
    order.send(StepFailed(op=Op.LIST_ACQUISITIONS, error=failed, at=at(9)))
    assert order.last().status is S.COMPLETED


def test_a_listing_lost_with_its_owner_is_asked_for_again_on_resume() -> None:
    order = to_placed(request())
    order.send(Polled(snapshot=snapshot(RemotePhase.ACQUIRING, change_marker="m0"), at=at(5)))
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(6)))
    deliver(order, "p1", 7, "s1")
    order.send(Polled(snapshot=snapshot(RemotePhase.COMPLETED, change_marker="m1"), at=at(8)))
    assert order.s.listing_due
    effects = order.send(Resumed(at=at(9)))  # a new owner: the listing's answer never came
    assert [c.op for c in calls(effects)] == [Op.LIST_ACQUISITIONS]
    order.send(AcquisitionsListed(acquisitions=[acquisition("s1", A.VALIDATED)], at=at(10)))
    assert order.last().status is S.COMPLETED
