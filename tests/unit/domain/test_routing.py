"""Provider choice (``provider: "auto"``): offers collected concurrently, compared, chosen by the
worker or a command, and a fallback that never places two orders."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from worker.domain.model import (
    AttemptsFound,
    CallProvider,
    CommandReceived,
    ErrorInfo,
    FeasibilityAnswered,
    IntentKind,
    OfferAnswered,
    Op,
    OrderNotFound,
    OrderPlaced,
    Phase,
    Priced,
    RequestReceived,
    Resumed,
    Settings,
    StepFailed,
    TimerFired,
    TimerKind,
    Validated,
)
from worker.events.models import (
    Automation,
    DecisionKind,
    OfferStatus,
    OrderRequest,
    Provider,
)
from worker.events.status import OrderStatus as S

from .builders import (
    AOI,
    UP42_PRODUCT,
    WINDOW_END,
    WINDOW_START,
    Order,
    at,
    attempt,
    calls,
    command,
    feasibility,
    must,
    placed,
    quote,
    schedules,
)

RATES = Settings(rates={"CREDITS": 0.01, "USD": 0.9})
OA = {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"}}
OA_DAY = {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEDAY"}}
UP = {"provider": "up42", "product": {"dataProductId": UP42_PRODUCT}}
OA_ID, UP_ID = "oneatlas-1", "up42-2"


def auto(*candidates: dict[str, Any], **extra: Any) -> OrderRequest:
    data: dict[str, Any] = {
        "requestId": "req-1",
        "provider": "auto",
        "candidates": list(candidates or (OA, UP)),
        "aoi": AOI,
        "window": {"start": WINDOW_START.isoformat(), "end": WINDOW_END.isoformat()},
        **extra,
    }
    return OrderRequest.model_validate(data)


def answer(offer: str, event: Any, minute: float) -> OfferAnswered:
    return OfferAnswered(offer=offer, event=event.model_copy(update={"at": at(minute)}), at=at(minute))


def oneatlas_quoted(order: Order, amount: float, minute: float = 1, offer: str = OA_ID) -> None:
    order.send(answer(offer, Validated(at=at(0)), minute))
    order.send(answer(offer, FeasibilityAnswered(result=feasibility(), at=at(0)), minute))
    order.send(answer(offer, Priced(quote=quote(amount), at=at(0)), minute))


def up42_quoted(order: Order, credits: float, minute: float = 1, offer: str = UP_ID) -> None:
    order.send(answer(offer, Validated(at=at(0)), minute))
    order.send(answer(offer, Priced(quote=quote(credits, "CREDITS", indicative=True), at=at(0)), minute))


def received(req: OrderRequest, settings: Settings = RATES) -> Order:
    order = Order(settings)
    order.send(RequestReceived(request=req, at=at(0)))
    return order


def offers_of(order: Order) -> list[tuple[str, OfferStatus, float | None]]:
    offers = must(order.last().offers)
    return [(o.id, o.status, o.comparable_price.amount if o.comparable_price else None) for o in offers]


def refused(minute: float, message: str = "contract has no rights for this product") -> StepFailed:
    error = ErrorInfo(reason_code="PROVIDER_REJECTED", message=message, rejected=True, provider_code="403")
    return StepFailed(op=Op.PLACE_ORDER, error=error, at=at(minute))


# --------------------------------------------------------------------------- offers


def test_every_candidate_is_validated_at_once_with_its_offer_id() -> None:
    order = received(auto())
    assert order.statuses() == [S.RECEIVED]
    assert order.last().provider is Provider.AUTO
    assert [(c.op, c.offer) for c in order.calls] == [(Op.VALIDATE, OA_ID), (Op.VALIDATE, UP_ID)]
    assert order.s.phase is Phase.OFFERS


def test_each_candidate_follows_its_own_flow_and_nothing_is_published_until_all_are_known() -> None:
    order = received(auto())
    order.send(answer(OA_ID, Validated(at=at(0)), 1))
    order.send(answer(UP_ID, Validated(at=at(0)), 1))
    assert [(c.op, c.offer) for c in order.calls[2:]] == [(Op.FEASIBILITY, OA_ID), (Op.PRICE, UP_ID)]
    oneatlas_quoted_rest = [
        answer(OA_ID, FeasibilityAnswered(result=feasibility(), at=at(0)), 2),
        answer(OA_ID, Priced(quote=quote(1200), at=at(0)), 3),
    ]
    for event in oneatlas_quoted_rest:
        order.send(event)
    assert order.statuses() == [S.RECEIVED], "the offers are published together"
    order.send(answer(UP_ID, Priced(quote=quote(100_000, "CREDITS", indicative=True), at=at(0)), 4))
    assert order.statuses()[:2] == [S.RECEIVED, S.QUOTED]


def test_cheapest_wins_and_is_ordered_at_its_provider_with_the_other_offer_visible() -> None:
    order = received(auto(budget={"maxAmount": 2000, "currency": "EUR"}))
    oneatlas_quoted(order, 1200)
    up42_quoted(order, 100_000)  # 1000 EUR at 0.01
    quoted = order.last()
    assert quoted.status is S.QUOTED
    assert quoted.provider is Provider.AUTO
    assert offers_of(order) == [(UP_ID, OfferStatus.OFFERED, 1000.0), (OA_ID, OfferStatus.OFFERED, 1200.0)]
    state = order.s
    assert state.request.provider is Provider.UP42
    assert state.request.up42_product().data_product_id
    assert must(state.intent).kind is IntentKind.PLACE_ORDER
    assert must(state.intent).target == UP_ID
    assert [(c.op, c.offer, c.target) for c in order.calls[-1:]] == [(Op.PLACE_ORDER, None, UP_ID)]
    # The budget is now in the chosen provider's currency: the direct rules apply from here.
    assert must(state.request.budget).currency == "CREDITS"
    assert must(state.request.budget).max_amount == pytest.approx(200_000)
    assert must(state.routing).chosen_by == "worker"


def test_after_the_choice_the_order_is_a_direct_request_to_the_chosen_provider() -> None:
    order = received(auto(budget={"maxAmount": 2000, "currency": "EUR"}))
    oneatlas_quoted(order, 900)
    up42_quoted(order, 150_000)
    assert must(order.s.intent).target == OA_ID
    assert order.s.approved_amount == 900, "choosing a OneAtlas offer approves its binding price"
    order.send(OrderPlaced(placed=placed(), at=at(5)))
    last = order.last()
    assert last.status is S.ORDERED
    assert last.provider is Provider.ONEATLAS
    assert last.price is not None
    assert last.price.amount == 900
    assert [o.id for o in must(last.offers)] == [OA_ID, UP_ID], "the offers stay on the events"
    assert order.s.tracking


def test_earliest_prefers_the_first_stated_opportunity_over_the_price() -> None:
    soon = attempt("a-1")
    order = received(auto(OA, OA_DAY, routing={"prefer": "earliest"}))
    oneatlas_quoted(order, 900, offer="oneatlas-1")
    order.send(answer("oneatlas-2", Validated(at=at(0)), 1))
    order.send(answer("oneatlas-2", AttemptsFound(attempts=[soon], at=at(0)), 2))
    order.send(answer("oneatlas-2", Priced(quote=quote(1500), at=at(0)), 3))
    offers = must(order.last().offers)
    assert [o.id for o in offers] == ["oneatlas-2", "oneatlas-1"]
    assert offers[0].first_opportunity == WINDOW_START
    assert offers[1].first_opportunity is None
    assert must(order.s.intent).target == "oneatlas-2"


def test_listed_follows_the_candidates_order() -> None:
    order = received(auto(OA, UP, routing={"prefer": "listed"}))
    oneatlas_quoted(order, 1500)
    up42_quoted(order, 10_000)
    assert [o.id for o in must(order.last().offers)] == [OA_ID, UP_ID]
    assert must(order.s.intent).target == OA_ID


def test_an_infeasible_candidate_drops_out_with_its_reason_and_the_other_is_ordered() -> None:
    order = received(auto())
    order.send(answer(OA_ID, Validated(at=at(0)), 1))
    order.send(answer(OA_ID, FeasibilityAnswered(result=feasibility(available=False), at=at(0)), 2))
    up42_quoted(order, 100_000, minute=3)
    assert offers_of(order) == [(UP_ID, OfferStatus.OFFERED, 1000.0), (OA_ID, OfferStatus.DROPPED, None)]
    dropped = must(order.last().offers)[1]
    assert must(dropped.reason).code == "NOT_FEASIBLE"
    assert must(order.s.intent).target == UP_ID


def test_a_candidate_retries_on_its_own_and_gives_up_without_holding_the_other_back() -> None:
    settings = Settings(rates={"CREDITS": 0.01}, max_step_retries=1)
    order = received(auto(), settings)
    down = ErrorInfo(reason_code="PROVIDER_ERROR", message="503", retriable=True)
    effects = order.send(answer(UP_ID, StepFailed(op=Op.VALIDATE, error=down, at=at(0)), 1))
    retry_at = schedules(effects)["retry"]
    assert order.s.phase is Phase.OFFERS
    oneatlas_quoted(order, 1000, minute=2)
    assert order.statuses() == [S.RECEIVED], "one candidate still retries"
    effects = order.send(TimerFired(timer=TimerKind.RETRY, at=retry_at))
    assert [(c.op, c.offer) for c in calls(effects)] == [(Op.VALIDATE, UP_ID)]
    order.send(answer(UP_ID, StepFailed(op=Op.VALIDATE, error=down, at=at(0)), 20))
    assert offers_of(order) == [(OA_ID, OfferStatus.OFFERED, 1000.0), (UP_ID, OfferStatus.DROPPED, None)]
    assert must(must(order.last().offers)[1].reason).code == "RETRIES_EXHAUSTED"
    assert must(order.s.intent).target == OA_ID


def test_an_early_retry_timer_re_runs_only_the_offers_that_are_due() -> None:
    order = received(auto())
    down = ErrorInfo(reason_code="PROVIDER_ERROR", message="503", retriable=True)
    effects = order.send(answer(UP_ID, StepFailed(op=Op.VALIDATE, error=down, at=at(0)), 1))
    retry_at = schedules(effects)["retry"]
    early = order.send(TimerFired(timer=TimerKind.RETRY, at=retry_at - timedelta(seconds=1)))
    assert calls(early) == []
    assert schedules(early) == {"retry": retry_at}


def test_no_offer_at_all_rejects_the_request_with_every_reason() -> None:
    order = received(auto())
    refusal = ErrorInfo(reason_code="PROVIDER_NOT_CONFIGURED", message="no credentials", rejected=True)
    order.send(answer(OA_ID, StepFailed(op=Op.VALIDATE, error=refusal, at=at(0)), 1))
    order.send(answer(UP_ID, StepFailed(op=Op.VALIDATE, error=refusal, at=at(0)), 1))
    assert order.statuses() == [S.RECEIVED, S.REJECTED]
    assert must(order.last().reason).code == "NO_OFFER"
    assert {must(o.reason).code for o in must(order.last().offers)} == {"PROVIDER_NOT_CONFIGURED"}
    assert order.s.terminal


def test_dry_run_ends_at_quoted_with_the_offers() -> None:
    order = received(auto(dryRun=True))
    oneatlas_quoted(order, 1200)
    up42_quoted(order, 100_000)
    assert order.statuses() == [S.RECEIVED, S.QUOTED]
    assert order.s.terminal
    assert order.s.intent is None
    assert len(must(order.last().offers)) == 2
    assert not [c for c in order.calls if c.op is Op.PLACE_ORDER]


# --------------------------------------------------------------------------- comparable prices


def test_an_offer_in_an_unknown_currency_has_no_comparable_price_and_is_never_chosen_by_the_worker() -> None:
    order = received(auto(), Settings(rates={}))  # no rate for CREDITS
    oneatlas_quoted(order, 5000)
    up42_quoted(order, 10)
    assert offers_of(order) == [(OA_ID, OfferStatus.OFFERED, 5000.0), (UP_ID, OfferStatus.OFFERED, None)]
    assert must(order.s.intent).target == OA_ID, "the cheaper-looking offer without a rate is not chosen"


def test_only_offers_without_comparable_price_ask_a_human() -> None:
    order = received(auto(UP, {**UP, "providerOptions": {"priority": "high"}}), Settings(rates={}))
    up42_quoted(order, 10, offer="up42-1")
    up42_quoted(order, 12, offer="up42-2")
    last = order.last()
    assert last.status is S.DECISION_REQUIRED
    assert must(last.reason).code == "PRICE_NOT_COMPARABLE"
    assert must(last.decision).kind is DecisionKind.SELECT_OFFER
    assert order.s.intent is None


def test_a_manual_study_is_offered_without_price_and_only_a_command_chooses_it() -> None:
    stereo = {"acquisitionMode": "STEREO"}
    order = received(auto(OA, {**OA, "providerOptions": {"x": 1}}, constraints=stereo))
    for offer in ("oneatlas-1", "oneatlas-2"):
        order.send(answer(offer, Validated(at=at(0)), 1))
        order.send(answer(offer, FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=at(0)), 2))
    offers = must(order.last().offers)
    assert [(o.status, o.price, must(o.reason).code) for o in offers] == [
        (OfferStatus.OFFERED, None, "MANUAL_FEASIBILITY")
    ] * 2
    assert order.last().status is S.DECISION_REQUIRED
    order.send(CommandReceived(command=command("select-offer", optionId="oneatlas-2"), at=at(3)))
    assert must(order.s.intent).target == "oneatlas-2"
    order.send(OrderPlaced(placed=placed(), at=at(4)))
    assert order.last().status is S.FEASIBILITY_PENDING
    assert must(order.last().reason).code == "OFFER_SELECTED"


def test_a_budget_in_a_listed_currency_converts_through_the_base() -> None:
    rates = Settings(rates={"EUR": 1.0, "USD": 0.9, "CREDITS": 0.01})
    order = received(auto(budget={"maxAmount": 2000, "currency": "USD"}), rates)
    oneatlas_quoted(order, 900)  # 900 EUR = 1000 USD
    up42_quoted(order, 99_000)  # 990 EUR = 1100 USD
    assert offers_of(order) == [
        (OA_ID, OfferStatus.OFFERED, pytest.approx(1000.0)),
        (UP_ID, OfferStatus.OFFERED, pytest.approx(1100.0)),
    ]
    assert must(order.s.request.budget).currency == "EUR"
    assert must(order.s.request.budget).max_amount == pytest.approx(1800.0)


# --------------------------------------------------------------------------- decisions


def decided(**extra: Any) -> Order:
    order = received(auto(**extra))
    oneatlas_quoted(order, 1200)
    up42_quoted(order, 100_000)
    return order


def test_without_auto_approve_a_human_selects_the_offer() -> None:
    order = decided(autoApprove=False)
    last = order.last()
    assert last.status is S.DECISION_REQUIRED
    assert last.provider is Provider.AUTO
    assert [o.id for o in must(last.decision).options] == [UP_ID, OA_ID]
    assert order.s.intent is None
    effects = order.send(CommandReceived(command=command("select-offer", optionId=OA_ID), at=at(5)))
    assert [(c.op, c.target) for c in calls(effects)] == [(Op.PLACE_ORDER, OA_ID)]
    assert must(order.s.routing).chosen_by == "command"
    order.send(OrderPlaced(placed=placed(), at=at(6)))
    assert order.last().provider is Provider.ONEATLAS
    assert order.last().status is S.ORDERED


def test_over_budget_preferred_offer_asks_a_human() -> None:
    order = decided(budget={"maxAmount": 500, "currency": "EUR"})
    assert order.last().status is S.DECISION_REQUIRED
    assert must(order.last().reason).code == "OVER_BUDGET"


def test_an_unknown_offer_or_an_approve_is_answered_command_rejected() -> None:
    order = decided(autoApprove=False)
    order.send(CommandReceived(command=command("select-offer", "c-1", optionId="nope"), at=at(5)))
    assert must(order.last().reason).code == "COMMAND_REJECTED"
    order.send(CommandReceived(command=command("approve", "c-2"), at=at(6)))
    assert must(order.last().reason).code == "COMMAND_REJECTED"
    assert order.s.phase is Phase.AWAITING_OFFER


def test_reject_declines_the_offers() -> None:
    order = decided(autoApprove=False)
    order.send(CommandReceived(command=command("reject"), at=at(5)))
    assert order.last().status is S.REJECTED
    assert must(order.last().reason).code == "DECLINED"


def test_the_decision_deadline_is_the_earliest_offer_deadline_and_expires_the_request() -> None:
    deadline = at(60 * 24)
    order = received(auto(OA_DAY, UP, autoApprove=False))
    order.send(answer("oneatlas-1", Validated(at=at(0)), 1))
    order.send(answer("oneatlas-1", AttemptsFound(attempts=[attempt("a", deadline=deadline)], at=at(0)), 2))
    order.send(answer("oneatlas-1", Priced(quote=quote(900), at=at(0)), 2))
    effects: list[Any] = []
    order.send(answer(UP_ID, Validated(at=at(0)), 3))
    effects = order.send(answer(UP_ID, Priced(quote=quote(1, "CREDITS", indicative=True), at=at(0)), 3))
    assert must(order.last().decision).deadline == deadline
    assert schedules(effects)["decision_deadline"] == deadline
    order.send(TimerFired(timer=TimerKind.DECISION_DEADLINE, at=deadline))
    assert order.last().status is S.EXPIRED
    assert must(order.last().reason).code == "DECISION_EXPIRED"


def test_the_window_end_expires_a_request_still_collecting_offers() -> None:
    order = received(auto())
    order.send(TimerFired(timer=TimerKind.WINDOW_END, at=WINDOW_END))
    assert order.last().status is S.EXPIRED
    assert must(order.last().reason).code == "WINDOW_EXPIRED"


def test_cancel_while_collecting_offers_ends_at_once_and_late_answers_change_nothing() -> None:
    order = received(auto())
    order.send(CommandReceived(command=command("cancel"), at=at(1)))
    assert order.last().status is S.CANCELLED
    before = order.s
    order.send(answer(OA_ID, Validated(at=at(0)), 2))
    assert order.s == before


# --------------------------------------------------------------------------- never two orders


def test_a_definitive_refusal_falls_back_to_the_next_offer_with_a_status_event() -> None:
    order = decided()
    assert must(order.s.intent).target == UP_ID
    effects = order.send(refused(5))
    assert [(c.op, c.target) for c in calls(effects)] == [(Op.PLACE_ORDER, OA_ID)]
    last = order.last()
    assert last.status is S.QUOTED
    assert must(last.reason).code == "PROVIDER_REJECTED"
    assert last.provider is Provider.ONEATLAS
    assert must(last.reason).details["offer"] == UP_ID
    assert [o["id"] for o in must(last.reason).details["offers"]] == [UP_ID, OA_ID]
    assert offers_of(order)[0][:2] == (UP_ID, OfferStatus.DROPPED)
    assert must(order.s.routing).chosen_by == "fallback"
    assert order.s.request.provider is Provider.ONEATLAS
    order.send(OrderPlaced(placed=placed(), at=at(6)))
    assert order.last().status is S.ORDERED


def test_a_refusal_after_a_command_choice_falls_back_from_the_decision() -> None:
    order = decided(autoApprove=False)
    order.send(CommandReceived(command=command("select-offer", optionId=UP_ID), at=at(5)))
    order.send(refused(6))
    last = order.last()
    assert last.status is S.DECISION_REQUIRED
    assert last.provider is Provider.AUTO
    assert [o.id for o in must(last.decision).options] == [OA_ID]
    assert must(last.reason).code == "PROVIDER_REJECTED"
    assert order.s.intent is None


def test_without_fallback_a_refusal_ends_the_request() -> None:
    order = decided(routing={"prefer": "cheapest", "fallback": False})
    order.send(refused(5))
    assert order.last().status is S.REJECTED
    assert must(order.last().reason).code == "PROVIDER_REJECTED"
    assert order.s.terminal
    assert [c.op for c in order.calls].count(Op.PLACE_ORDER) == 1


def test_a_cancel_waiting_for_the_placement_is_not_overtaken_by_a_fallback() -> None:
    order = decided()
    order.send(CommandReceived(command=command("cancel"), at=at(5)))
    order.send(refused(6))
    assert order.last().status is S.REJECTED
    assert [c.target for c in order.calls if c.op is Op.PLACE_ORDER] == [UP_ID]


def test_no_fallback_once_the_window_is_over() -> None:
    order = decided()
    late = refused(0).model_copy(update={"at": WINDOW_END})
    order.send(late)
    assert order.last().status is S.REJECTED
    assert [c.target for c in order.calls if c.op is Op.PLACE_ORDER] == [UP_ID]


def test_a_refusal_that_is_not_a_business_refusal_does_not_fall_back() -> None:
    order = decided()
    error = ErrorInfo(reason_code="PROVIDER_ERROR", message="401 after a renewed token")
    order.send(StepFailed(op=Op.PLACE_ORDER, error=error, target=UP_ID, at=at(5)))
    assert order.s.terminal
    assert [c.target for c in order.calls if c.op is Op.PLACE_ORDER] == [UP_ID]


def test_a_stale_failure_of_the_refused_offer_does_not_touch_the_fallback_placement() -> None:
    order = decided()
    order.send(refused(5))
    before = order.s
    stale = StepFailed(op=Op.PLACE_ORDER, error=refused(6).error, target=UP_ID, at=at(6))
    order.send(stale)
    assert order.s == before, "the failure names the refused offer, not the one being placed"


def test_a_refusal_of_the_last_offer_ends_the_request() -> None:
    order = decided()
    order.send(refused(5))
    order.send(refused(6))
    assert order.last().status is S.REJECTED
    assert [o.status for o in must(order.last().offers)] == [OfferStatus.DROPPED, OfferStatus.DROPPED]
    assert [c.target for c in order.calls if c.op is Op.PLACE_ORDER] == [UP_ID, OA_ID]


def test_an_unknown_outcome_is_reconciled_at_that_provider_and_never_falls_back() -> None:
    order = decided()
    unknown = ErrorInfo(reason_code="PROVIDER_ERROR", message="timeout", outcome_unknown=True)
    effects = order.send(StepFailed(op=Op.PLACE_ORDER, error=unknown, target=UP_ID, at=at(5)))
    assert order.s.phase is Phase.RECONCILING
    assert order.s.request.provider is Provider.UP42
    assert calls(effects) == []
    effects = order.send(TimerFired(timer=TimerKind.RECONCILE, at=at(10)))
    assert [c.op for c in calls(effects)] == [Op.FIND_ORDER]
    order.send(OrderPlaced(placed=placed("ord-1"), found=True, at=at(11)))
    assert order.last().provider is Provider.UP42
    assert [c.target for c in order.calls if c.op is Op.PLACE_ORDER] == [UP_ID]


def test_a_placement_interrupted_by_a_restart_is_read_back_at_the_chosen_provider() -> None:
    order = decided()
    effects = order.send(Resumed(at=at(6)))
    assert [c.op for c in calls(effects)] == [Op.FIND_ORDER]
    assert order.s.request.provider is Provider.UP42
    order.send(OrderNotFound(at=at(7)))  # settled and not there: placed again, same provider
    assert [c.target for c in order.calls if c.op is Op.PLACE_ORDER] == [UP_ID, UP_ID]


def test_a_restart_while_collecting_offers_re_runs_each_unsettled_offer() -> None:
    order = received(auto())
    oneatlas_quoted(order, 1000)
    effects = order.send(Resumed(at=at(5)))
    assert [(c.op, c.offer) for c in calls(effects)] == [(Op.VALIDATE, UP_ID)]
    assert "window_end" in schedules(effects)


def test_the_state_with_offers_round_trips_through_json() -> None:
    order = decided()
    order.send(refused(5))
    dumped = order.s.model_dump_json()
    assert type(order.s).model_validate_json(dumped) == order.s


def test_calls_of_offers_name_their_offer_and_direct_requests_are_unchanged() -> None:
    from .builders import request, start

    direct = start(request())
    assert all(isinstance(c, CallProvider) and c.offer is None for c in direct.calls)
    assert direct.last().offers is None
    assert direct.s.routing is None


def test_time_is_taken_from_events_only() -> None:
    order = decided()
    stamp: datetime = order.last().occurred_at
    assert stamp == at(1)
