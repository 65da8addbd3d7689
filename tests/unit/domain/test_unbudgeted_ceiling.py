"""A request with ``autoApprove`` and no ``budget`` (ADR 0007): auto-approved only within the
deployment's ceiling for the price's currency; otherwise ``DECISION_REQUIRED`` with
``NO_BUDGET``. The ceiling is the one in force when the request was received."""

from __future__ import annotations

from worker.domain.model import (
    CommandReceived,
    FeasibilityAnswered,
    OrderPlaced,
    Phase,
    Polled,
    Priced,
    RequestReceived,
    Settings,
    Validated,
)
from worker.domain.ports import PlacedOrder, RemotePhase
from worker.events.models import Automation, DecisionKind, OfferStatus, OrderRequest
from worker.events.status import OrderStatus as S

from .builders import (
    Order,
    at,
    calls,
    command,
    feasibility,
    must,
    quotation,
    quote,
    request,
    snapshot,
    start,
    to_quoted,
)
from .test_routing import OA_ID, UP_ID, auto, oneatlas_quoted, up42_quoted

CEILING = Settings(unbudgeted_ceiling={"EUR": 5000, "CREDITS": 400_000})
NONE_SET = Settings(unbudgeted_ceiling={})  # the service's default


def test_a_price_within_the_ceiling_is_ordered() -> None:
    order = to_quoted(request(), amount=4999, settings=CEILING)
    assert order.s.phase is Phase.PLACING
    assert [c.op.value for c in order.calls][-1] == "place_order"


def test_a_price_above_the_ceiling_waits_for_approve_with_no_budget() -> None:
    order = to_quoted(request(), amount=5001, settings=CEILING)
    last = order.last()
    assert last.status is S.DECISION_REQUIRED
    assert must(last.decision).kind is DecisionKind.APPROVE_PRICE
    why = must(last.reason)
    assert why.code == "NO_BUDGET"
    assert why.details == {"amount": 5001, "currency": "EUR", "ceiling": 5000}
    assert "place_order" not in [c.op.value for c in order.calls]
    order.send(CommandReceived(command=command("approve"), at=at(5)))
    assert [c.op.value for c in order.calls][-1] == "place_order"


def test_without_a_ceiling_every_unbudgeted_price_waits() -> None:
    order = to_quoted(request(), amount=1, settings=NONE_SET)
    assert order.last().status is S.DECISION_REQUIRED
    assert must(order.last().reason).code == "NO_BUDGET"
    assert must(order.last().reason).details == {"amount": 1, "currency": "EUR"}


def test_a_currency_the_ceiling_does_not_list_waits() -> None:
    order = to_quoted(request(), amount=10, settings=Settings(unbudgeted_ceiling={"CREDITS": 10**9}))
    assert must(order.last().reason).code == "NO_BUDGET"


def test_a_budget_wins_over_the_ceiling() -> None:
    req = request(budget={"maxAmount": 9000, "currency": "EUR"})
    assert to_quoted(req, amount=8000, settings=NONE_SET).s.phase is Phase.PLACING
    over = to_quoted(req, amount=9500, settings=CEILING)
    assert must(over.last().reason).code == "OVER_BUDGET"


def test_auto_approve_false_still_asks_without_a_reason_code() -> None:
    order = to_quoted(request(autoApprove=False), amount=10, settings=CEILING)
    assert order.last().status is S.DECISION_REQUIRED
    assert order.last().reason is None


def test_the_ceiling_stays_with_the_order_received_under_it() -> None:
    order = start(request(), CEILING)
    assert order.s.unbudgeted_ceiling == {"EUR": 5000, "CREDITS": 400_000}
    order.settings = NONE_SET  # a restart with another ceiling
    order.send(FeasibilityAnswered(result=feasibility(), at=at(2)))
    order.send(Priced(quote=quote(4000), at=at(3)))
    assert order.s.phase is Phase.PLACING


def test_a_manual_study_without_budget_is_confirmed_first_when_nothing_caps_its_price() -> None:
    order = start(request(), NONE_SET)
    order.send(FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=at(2)))
    assert order.last().status is S.DECISION_REQUIRED
    assert must(order.last().decision).kind is DecisionKind.CONFIRM_ORDER
    capped = start(request(), CEILING)
    capped.send(FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=at(2)))
    assert [c.op.value for c in capped.calls][-1] == "place_order"


def _up42(settings: Settings) -> Order:
    order = Order(settings)
    order.send(RequestReceived(request=request(provider="up42"), at=at(0)))
    order.send(Validated(at=at(1)))
    order.send(Priced(quote=quote(300_000, "CREDITS", indicative=True), at=at(2)))
    order.send(OrderPlaced(placed=PlacedOrder(tracking_key="ord-1", refs={"orderId": "ord-1"}), at=at(3)))
    return order


def test_up42_creates_the_order_and_caps_the_binding_quotation() -> None:
    within = _up42(CEILING)
    effects = within.send(
        Polled(
            snapshot=snapshot(
                RemotePhase.QUOTATION_READY, "ord-1", quotation=quotation("q-1", 390_000, "CREDITS")
            ),
            at=at(4),
        )
    )
    assert [(c.op.value, c.accept) for c in calls(effects)] == [("decide_quotation", True)]
    above = _up42(CEILING)
    above.send(
        Polled(
            snapshot=snapshot(
                RemotePhase.QUOTATION_READY, "ord-1", quotation=quotation("q-1", 410_000, "CREDITS")
            ),
            at=at(4),
        )
    )
    assert above.last().status is S.DECISION_REQUIRED
    assert must(above.last().reason).code == "NO_BUDGET"


def _auto(settings: Settings, req: OrderRequest | None = None) -> Order:
    order = Order(Settings(rates={"CREDITS": 0.01}, unbudgeted_ceiling=settings.unbudgeted_ceiling))
    order.send(RequestReceived(request=req or auto(), at=at(0)))
    oneatlas_quoted(order, 1200)
    up42_quoted(order, 100_000)  # 1000 EUR
    return order


def test_provider_choice_without_budget_orders_within_the_ceiling_and_asks_above_it() -> None:
    within = _auto(CEILING)
    assert must(within.s.intent).target == UP_ID
    above = _auto(Settings(unbudgeted_ceiling={"EUR": 900}))
    last = above.last()
    assert last.status is S.DECISION_REQUIRED
    assert must(last.decision).kind is DecisionKind.SELECT_OFFER
    assert must(last.reason).code == "NO_BUDGET"
    assert {o.id: o.status for o in must(last.offers)} == {
        UP_ID: OfferStatus.OFFERED,
        OA_ID: OfferStatus.OFFERED,
    }
