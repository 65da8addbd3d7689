"""The outcome rule of paid writes: a refusal after an unknown outcome is no proof, reads decide,
an undecidable write ends in DECISION_REQUIRED OUTCOME_UNKNOWN, and an order found by customer
reference is adopted only when it matches the request (docs/adr/0008-outcome-of-paid-writes.md)."""

from __future__ import annotations

from worker.domain.identity import listed_identity, request_identity
from worker.domain.model import (
    CommandReceived,
    ErrorInfo,
    IntentKind,
    Op,
    OrderNotFound,
    OrderPlaced,
    OrderState,
    Phase,
    Polled,
    Resumed,
    Settings,
    StepFailed,
    TimerFired,
    TimerKind,
)
from worker.domain.ports import PlacedOrder, RemotePhase
from worker.events.models import DecisionKind, Provider
from worker.events.status import OrderStatus as S

from .builders import (
    AOI,
    WINDOW_END,
    WINDOW_START,
    Order,
    at,
    calls,
    command,
    must,
    placed,
    quotation,
    request,
    schedules,
    snapshot,
    to_placed,
    to_quoted,
)
from .test_routing import UP_ID, decided

SETTINGS = Settings(
    settle_seconds=60, retry_base_seconds=10, retry_max_seconds=600, outcome_timeout_seconds=1800
)
UNKNOWN = ErrorInfo(reason_code="PROVIDER_ERROR", message="read timeout", outcome_unknown=True)
DUPLICATE = ErrorInfo(
    reason_code="PROVIDER_REJECTED",
    message="customerReference already used",
    rejected=True,
    provider_code="ORDER-409",
)


def _lost_then_refused(order: Order) -> None:
    """The placement's answer is lost, the read finds nothing yet, the re-send is refused."""
    order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
    order.send(OrderNotFound(at=at(5)))  # settled and not (yet) listed: sent again
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 2
    effects = order.send(StepFailed(op=Op.PLACE_ORDER, error=DUPLICATE, at=at(6)))
    assert calls(effects) == []
    assert "reconcile" in schedules(effects)


def _mine(key: str = "SO-1", req_identity: dict[str, str] | None = None) -> PlacedOrder:
    return PlacedOrder(tracking_key=key, refs={"salesOrderId": key}, identity=req_identity or {})


def test_a_refusal_after_a_lost_answer_reads_back_and_adopts_the_order() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    _lost_then_refused(order)
    assert order.s.status is S.QUOTED  # not REJECTED
    assert order.s.phase is Phase.RECONCILING
    intent = must(order.s.intent)
    assert intent.unknown_sends == 1
    assert intent.refused_at == at(6)
    effects = order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(7)))
    assert [c.op for c in calls(effects)] == [Op.FIND_ORDER]
    order.send(
        OrderPlaced(placed=_mine(req_identity=request_identity(order.s.request)), found=True, at=at(8))
    )
    last = order.last()
    assert last.status is S.ORDERED
    assert must(last.reason).code == "ORDER_FOUND"
    assert must(last.reason).details["unknownSends"] == 1
    assert any("refused after an unknown outcome" in e for e in must(last.reason).details["evidence"])
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 2


def test_reads_after_a_refusal_in_doubt_back_off_and_never_send_again() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    _lost_then_refused(order)
    delays = []
    minute = 6.0
    for _ in range(4):
        effects = order.send(OrderNotFound(at=at(minute)))
        assert calls(effects) == []
        wake = schedules(effects)["reconcile"]
        delays.append((wake - at(minute)).total_seconds())
        minute = (wake - at(0)).total_seconds() / 60
    assert delays == [20, 40, 80, 160]
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 2
    assert order.s.status is S.QUOTED


def test_an_undecidable_placement_goes_to_decision_required_outcome_unknown_once() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    _lost_then_refused(order)
    order.send(OrderNotFound(at=at(20)))
    assert order.s.status is S.QUOTED
    effects = order.send(OrderNotFound(at=at(37)))  # 31 min after the refusal: past 1800 s
    last = order.last()
    assert last.status is S.DECISION_REQUIRED
    why = must(last.reason)
    assert why.code == "OUTCOME_UNKNOWN"
    assert why.details["write"] == "place_order"
    assert why.details["unknownSends"] == 1
    assert why.details["customerReference"] == order.s.request.reference
    assert must(last.decision).kind is DecisionKind.CONFIRM_ORDER
    assert schedules(effects)["reconcile"] == at(47)  # reads go on at the longest backoff
    events = len(order.events)
    order.send(OrderNotFound(at=at(47)))
    assert len(order.events) == events  # said once
    # The order shows up later: adopted, no second order.
    order.send(OrderPlaced(placed=_mine(), found=True, at=at(60)))
    assert order.last().status is S.ORDERED
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 2


def test_cancel_stops_an_undecidable_placement() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    _lost_then_refused(order)
    order.send(OrderNotFound(at=at(40)))
    assert order.last().status is S.DECISION_REQUIRED
    order.send(CommandReceived(command=command("cancel"), at=at(41)))
    order.send(OrderNotFound(at=at(42)))
    assert order.last().status is S.CANCELLED


def test_a_first_refusal_without_an_unknown_outcome_is_definitive() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=DUPLICATE, at=at(4)))
    assert order.last().status is S.REJECTED


def test_a_refusal_after_a_restart_mid_placement_is_not_definitive() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    order.send(Resumed(at=at(4)))  # the previous owner stopped with the placement in flight
    order.send(OrderNotFound(at=at(6)))  # settled, not listed: sent again
    assert must(order.s.intent).unknown_sends == 1
    order.send(StepFailed(op=Op.PLACE_ORDER, error=DUPLICATE, at=at(7)))
    assert order.s.status is S.QUOTED
    assert order.s.phase is Phase.RECONCILING


def test_auto_never_falls_back_after_a_refusal_in_doubt() -> None:
    order = decided()
    assert must(order.s.intent).target == UP_ID
    order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, target=UP_ID, at=at(5)))
    order.send(OrderNotFound(at=at(7)))
    order.send(StepFailed(op=Op.PLACE_ORDER, error=DUPLICATE, target=UP_ID, at=at(8)))
    for minute in (9, 20, 40):
        order.send(OrderNotFound(at=at(minute)))
    assert order.last().status is S.DECISION_REQUIRED
    assert must(order.last().reason).code == "OUTCOME_UNKNOWN"
    assert {c.target for c in order.calls if c.op is Op.PLACE_ORDER} == {UP_ID}
    assert order.s.request.provider is Provider.UP42


def test_an_order_found_under_the_reference_that_differs_is_not_adopted() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
    other_aoi = {"type": "Polygon", "coordinates": [[[10, 40], [10.1, 40], [10.1, 40.1], [10, 40]]]}
    theirs = listed_identity(programming_type="OneDay", geometry=other_aoi)
    order.send(OrderPlaced(placed=_mine("SO-9", theirs), found=True, at=at(5)))
    last = order.last()
    assert last.status is S.DECISION_REQUIRED
    why = must(last.reason)
    assert why.code == "CUSTOMER_REFERENCE_IN_USE"
    assert why.details["mismatched"] == ["programmingType", "aoi"]
    assert why.details["trackingKey"] == "SO-9"
    assert order.s.placed is None
    assert order.s.intent is None
    assert order.s.phase is Phase.AWAITING_ADOPTION
    assert [o.id for o in must(last.decision).options] == ["approve", "reject"]
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 1


def test_approve_adopts_the_order_found_and_reject_declines() -> None:
    theirs = listed_identity(programming_type="OneDay")
    for name, status in (("approve", S.ORDERED), ("reject", S.REJECTED)):
        order = to_quoted(request(), settings=SETTINGS)
        order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
        order.send(OrderPlaced(placed=_mine("SO-9", theirs), found=True, at=at(5)))
        order.send(CommandReceived(command=command(name), at=at(6)))
        assert order.last().status is status
        assert (order.s.placed is not None) is (name == "approve")
        assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 1


def test_an_order_found_whose_listing_states_nothing_or_the_same_is_adopted() -> None:
    req = request()
    same = listed_identity(programming_type="OnePlan", geometry=AOI, period=(WINDOW_START, WINDOW_END))
    for identity in ({}, same):
        order = to_quoted(req, settings=SETTINGS)
        order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
        order.send(OrderPlaced(placed=_mine(req_identity=identity), found=True, at=at(5)))
        assert order.last().status is S.ORDERED


def test_a_pneo_accept_refused_after_a_lost_answer_is_read_back_not_failed() -> None:
    order = to_placed(request(mission="PLEIADESNEO"), PlacedOrder(tracking_key="QUO-1", refs={}))
    order.settings = SETTINGS
    q = quotation()
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(10)))
    assert must(order.s.intent).kind is IntentKind.ACCEPT_QUOTATION
    order.send(StepFailed(op=Op.DECIDE_QUOTATION, error=UNKNOWN, target="QUO-1", at=at(11)))
    order.send(Polled(snapshot=snapshot(RemotePhase.QUOTATION_READY, "QUO-1", quotation=q), at=at(12)))
    assert [c.op for c in order.calls].count(Op.DECIDE_QUOTATION) == 2  # read: no effect, sent again
    refused = ErrorInfo(reason_code="PROVIDER_REJECTED", message="already accepted", rejected=True)
    effects = order.send(StepFailed(op=Op.DECIDE_QUOTATION, error=refused, target="QUO-1", at=at(13)))
    assert order.s.status is not S.FAILED
    assert "reconcile" in schedules(effects)
    effects = order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(14)))
    assert [c.op for c in calls(effects)] == [Op.GET_ORDER]
    order.send(Polled(snapshot=snapshot(RemotePhase.ACTIVE, "QUO-1"), at=at(15)))
    assert order.last().status is S.ORDERED
    assert [c.op for c in order.calls].count(Op.DECIDE_QUOTATION) == 2


def test_states_persisted_before_the_rule_still_load_and_count_as_in_doubt() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
    order.send(OrderNotFound(at=at(5)))  # sent again: attempt 2
    raw = order.s.model_dump(mode="json")
    for key in ("unknown_sends", "refused_at", "reads", "undecided", "evidence", "identity"):
        raw["intent"].pop(key)
    raw.pop("found_order")
    old = OrderState.model_validate(raw)  # a state written by the previous version
    assert must(old.intent).unknown_sends == 0
    order.state = old
    order.send(StepFailed(op=Op.PLACE_ORDER, error=DUPLICATE, at=at(6)))
    assert order.s.status is S.QUOTED
    assert must(order.s.intent).refused_at == at(6)
    assert placed("SO-1").identity == {}


def test_a_cancel_refused_after_a_lost_answer_is_read_back_and_an_active_order_stays_tracked() -> None:
    order = to_placed(request(), settings=SETTINGS)
    order.send(CommandReceived(command=command("cancel"), at=at(10)))
    order.send(StepFailed(op=Op.CANCEL, error=UNKNOWN, at=at(11)))
    order.send(Polled(snapshot=snapshot(RemotePhase.ACTIVE), at=at(12)))  # no effect: sent again
    assert [c.op for c in order.calls].count(Op.CANCEL) == 2
    refused = ErrorInfo(reason_code="PROVIDER_REJECTED", message="already cancelled", rejected=True)
    events = len(order.events)
    order.send(StepFailed(op=Op.CANCEL, error=refused, at=at(13)))
    assert len(order.events) == events  # not answered COMMAND_REJECTED: read back first
    assert order.s.phase is Phase.CANCELLING
    status = order.s.status
    for minute in (14, 30, 50):
        order.send(Polled(snapshot=snapshot(RemotePhase.ACTIVE), at=at(minute)))
    last = order.last()
    assert must(last.reason).code == "OUTCOME_UNKNOWN"
    assert last.status is status  # repeated: the order exists and is still tracked
    assert [c.op for c in order.calls].count(Op.CANCEL) == 2
    order.send(Polled(snapshot=snapshot(RemotePhase.CANCELLED), at=at(60)))
    assert order.last().status is S.CANCELLED


def test_an_auth_failure_after_a_lost_answer_reads_back_and_may_send_again() -> None:
    order = to_quoted(request(), settings=SETTINGS)
    order.send(StepFailed(op=Op.PLACE_ORDER, error=UNKNOWN, at=at(4)))
    order.send(OrderNotFound(at=at(5)))
    auth = ErrorInfo(reason_code="PROVIDER_ERROR", message="HTTP 401 (not authorised)")
    effects = order.send(StepFailed(op=Op.PLACE_ORDER, error=auth, at=at(6)))
    assert schedules(effects) == {"reconcile": at(7)}  # the settle period, not the refusal's reads
    assert must(order.s.intent).refused_at is None
    assert must(order.s.intent).unknown_sends == 2
    assert order.s.status is S.QUOTED
