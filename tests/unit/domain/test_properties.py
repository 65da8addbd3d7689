"""Random event sequences never break the core's guarantees:

- status events have contiguous sequences 1..n and every change is a legal transition;
- after a terminal status (or the end of a dry run) only ``COMMAND_REJECTED`` repeats follow;
- two PLACE_ORDER calls are always separated by an ``OrderNotFound``;
- a paid or irreversible call is only ever returned with its intent already in the state;
- the state round-trips through JSON at every step (checked by the ``Order`` harness).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.domain.model import (
    PAID_OPS,
    AcquisitionsListed,
    AttemptsFound,
    CallProvider,
    CommandReceived,
    DomainEvent,
    ErrorInfo,
    FeasibilityAnswered,
    Op,
    OrderNotFound,
    OrderPlaced,
    Phase,
    Polled,
    Priced,
    RequestReceived,
    Resumed,
    Settings,
    StepFailed,
    TimerFired,
    TimerKind,
    Validated,
    WriteDone,
)
from worker.domain.ports import QuotationDecision, RemotePhase, StudyDecision
from worker.events.models import AcquisitionStatus, Automation, OrderRequest
from worker.events.status import TERMINAL, transition_allowed

from .builders import (
    Order,
    acquisition,
    at,
    attempt,
    command,
    counts,
    feasibility,
    placed,
    quotation,
    quote,
    request,
    snapshot,
    study,
)

Factory = Callable[[datetime], DomainEvent]

ERRORS = [
    ErrorInfo(reason_code="PROVIDER_ERROR", message="503", retriable=True),
    ErrorInfo(reason_code="PROVIDER_ERROR", message="timeout", outcome_unknown=True),
    ErrorInfo(reason_code="PROVIDER_REJECTED", message="refused", rejected=True),
    ErrorInfo(reason_code="NOT_FEASIBLE", message="no sensor", rejected=True, not_feasible=True),
]
SNAPSHOTS = [
    snapshot(RemotePhase.FEASIBILITY_STUDY),
    snapshot(RemotePhase.AWAITING_OPTION, study=study()),
    snapshot(RemotePhase.AWAITING_QUOTATION, study=study(decision=StudyDecision.ACCEPTED)),
    snapshot(RemotePhase.QUOTATION_READY, quotation=quotation(amount=900)),
    snapshot(RemotePhase.QUOTATION_READY, quotation=quotation("QUO-2", amount=5000)),
    snapshot(RemotePhase.QUOTATION_READY, quotation=quotation(decision=QuotationDecision.ACCEPTED)),
    snapshot(RemotePhase.ACTIVE, counts=counts(proposed=1), change_marker="a"),
    snapshot(
        RemotePhase.ACQUIRING, counts=counts(proposed=1, validated=1), coverage_pct=40, change_marker="b"
    ),
    snapshot(RemotePhase.COMPLETED, counts=counts(validated=1)),
    snapshot(RemotePhase.CANCELLED),
    snapshot(RemotePhase.FAILED),
    snapshot(RemotePhase.REJECTED),
]
COMMANDS = [
    command("approve", "c1"),
    command("approve", "c2"),
    command("reject", "c3"),
    command("cancel", "c4"),
    command("select-feasibility-option", "c5", optionId="opt-1"),
    command("select-feasibility-option", "c6", optionId="bad"),
    command("accept-acquisition", "c7", acquisitionId="s1"),
    command("refuse-acquisition", "c8", acquisitionId="s2"),
]
WRITE_TARGETS = [
    (Op.DECIDE_QUOTATION, "QUO-1"),
    (Op.DECIDE_QUOTATION, "QUO-2"),
    (Op.CHOOSE_OPTION, "opt-1"),
    (Op.DECIDE_ACQUISITION, "s1"),
    (Op.DECIDE_ACQUISITION, "s2"),
    (Op.CANCEL, None),
]
FAILING_OPS = [
    Op.VALIDATE,
    Op.FEASIBILITY,
    Op.ATTEMPTS,
    Op.PRICE,
    Op.PLACE_ORDER,
    Op.FIND_ORDER,
    Op.GET_ORDER,
    Op.LIST_ACQUISITIONS,
    Op.DECIDE_QUOTATION,
    Op.CHOOSE_OPTION,
    Op.DECIDE_ACQUISITION,
    Op.CANCEL,
]


def _factories() -> list[Factory]:
    f: list[Factory] = [
        lambda t: Validated(at=t),
        lambda t: FeasibilityAnswered(result=feasibility(), at=t),
        lambda t: FeasibilityAnswered(result=feasibility(Automation.MANUAL, expires_at=t), at=t),
        lambda t: AttemptsFound(attempts=[attempt("a1", deadline=at(10_000))], at=t),
        lambda t: Priced(quote=quote(900), at=t),
        lambda t: Priced(quote=quote(5000), at=t),
        lambda t: OrderPlaced(placed=placed(), at=t),
        lambda t: OrderPlaced(placed=placed(), found=True, at=t),
        lambda t: OrderNotFound(at=t),
        lambda t: AcquisitionsListed(acquisitions=[acquisition("s1"), acquisition("s2", cloud=90)], at=t),
        lambda t: AcquisitionsListed(acquisitions=[acquisition("s1", AcquisitionStatus.VALIDATED)], at=t),
        lambda t: Resumed(at=t),
        lambda t: RequestReceived(request=request(), at=t),
    ]
    f += [lambda t, s=s: Polled(snapshot=s, at=t) for s in SNAPSHOTS]  # type: ignore[misc]
    f += [lambda t, c=c: CommandReceived(command=c, at=t) for c in COMMANDS]  # type: ignore[misc]
    f += [lambda t, k=k: TimerFired(timer=k, at=t) for k in TimerKind]  # type: ignore[misc]
    f += [lambda t, o=o, g=g: WriteDone(op=o, target=g, at=t) for o, g in WRITE_TARGETS]  # type: ignore[misc]
    f += [
        lambda t, o=o, e=e: StepFailed(op=o, error=e, at=t)  # type: ignore[misc]
        for o in FAILING_OPS
        for e in ERRORS
    ]
    return f


FACTORIES = _factories()
REQUESTS: list[OrderRequest] = [
    request(),
    request(
        budget={"maxAmount": 1000, "currency": "EUR"},
        acquisitionPolicy={"autoAccept": {"maxCloudCover": 20}, "autoRefuse": True},
    ),
    request(autoApprove=False, constraints={"acquisitionMode": "STEREO"}),
    request(programming_type="ONEDAY"),
    request(mission="PLEIADESNEO", budget={"maxAmount": 1000, "currency": "EUR"}),
    request(mission="PLEIADESNEO", programming_type="ONENOWATTEMPTS", dryRun=True),
    request(provider="up42"),
    request(provider="up42", budget={"maxAmount": 1000, "currency": "EUR"}, autoApprove=False),
]
SETTINGS = Settings(settle_seconds=120, max_step_retries=2, max_place_attempts=2)
# More examples for a deeper search: DOMAIN_PROPERTY_EXAMPLES=20000 pytest tests/unit/domain
EXAMPLES = int(os.environ.get("DOMAIN_PROPERTY_EXAMPLES", "500"))


def _answer(call: CallProvider, variant: int, t: datetime) -> DomainEvent:
    """A plausible provider answer to ``call`` (``variant`` picks success or one failure)."""
    if variant % 5 == 4:
        return StepFailed(op=call.op, error=ERRORS[variant % len(ERRORS)], target=call.target, at=t)
    successes: dict[Op, list[DomainEvent]] = {
        Op.VALIDATE: [Validated(at=t)],
        Op.FEASIBILITY: [
            FeasibilityAnswered(result=feasibility(), at=t),
            FeasibilityAnswered(result=feasibility(Automation.MANUAL), at=t),
        ],
        Op.ATTEMPTS: [AttemptsFound(attempts=[attempt("a1", deadline=at(10_000))], at=t)],
        Op.PRICE: [Priced(quote=quote(900), at=t), Priced(quote=quote(5000), at=t)],
        Op.PLACE_ORDER: [OrderPlaced(placed=placed(), at=t)],
        Op.FIND_ORDER: [OrderPlaced(placed=placed(), found=True, at=t), OrderNotFound(at=t)],
        Op.GET_ORDER: [Polled(snapshot=s, at=t) for s in SNAPSHOTS],
        Op.LIST_ACQUISITIONS: [
            AcquisitionsListed(acquisitions=[acquisition("s1"), acquisition("s2", cloud=90)], at=t),
            AcquisitionsListed(acquisitions=[acquisition("s1", AcquisitionStatus.VALIDATED)], at=t),
        ],
    }
    options = successes.get(call.op) or [WriteDone(op=call.op, target=call.target, at=t)]
    return options[variant % len(options)]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    req=st.sampled_from(REQUESTS),
    steps=st.lists(st.integers(min_value=0, max_value=999), max_size=50),
)
def test_random_event_sequences_keep_the_guarantees(req: OrderRequest, steps: list[int]) -> None:
    """Mostly answers to the calls asked for (as the runner would give), plus polls, due timers
    and random noise (stale answers, commands, restarts, duplicates)."""
    order = Order(SETTINGS)
    pending = [c for c in order.send(RequestReceived(request=req, at=at(0))) if isinstance(c, CallProvider)]
    timers: list[TimerKind] = []
    places_since_not_found = 0
    for step, value in enumerate(steps, start=1):
        t = at(step)
        event = _next_event(order, value, t, pending, timers)
        effects = order.send(event)
        if isinstance(event, OrderNotFound):
            places_since_not_found = 0
        for effect in effects:
            if isinstance(effect, CallProvider):
                pending.append(effect)
                if effect.op is Op.PLACE_ORDER:
                    places_since_not_found += 1
                    assert places_since_not_found == 1, "PLACE_ORDER twice without OrderNotFound between"
                if effect.op in PAID_OPS or effect.op is Op.CANCEL:
                    assert order.s.intent is not None, f"{effect.op} without a durable intent"
            elif effect.kind == "schedule":
                timers.append(effect.timer)
    _check_events(order)


def _next_event(
    order: Order, value: int, t: datetime, pending: list[CallProvider], timers: list[TimerKind]
) -> DomainEvent:
    if value < 550 and pending:
        return _answer(pending.pop(0), value, t)
    if value < 750 and order.s.tracking:
        return Polled(snapshot=SNAPSHOTS[value % len(SNAPSHOTS)], at=t)
    if value < 850 and timers:
        return TimerFired(timer=timers.pop(value % len(timers)), at=t)
    if value < 900:
        pending.clear()  # a restart loses the calls in flight; Resumed asks again
        return Resumed(at=t)
    return FACTORIES[value % len(FACTORIES)](t)


def _check_events(order: Order) -> None:
    events = order.events
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    ended = False
    for previous, event in zip([None, *events], events, strict=False):
        if ended:
            assert previous is not None
            assert event.status is previous.status
            assert event.reason is not None
            assert event.reason.code == "COMMAND_REJECTED"
            continue
        before = previous.status if previous else None
        assert event.previous_status == before
        assert event.status == before or transition_allowed(before, event.status)
        ended = event.status in TERMINAL or _ended_dry_run(order, event.sequence)
    if order.s.status in TERMINAL:
        assert order.s.phase is Phase.DONE


def _ended_dry_run(order: Order, sequence: int) -> bool:
    """The dry run's QUOTED is its end: the last transition before phase DONE."""
    s = order.s
    if not s.request.dry_run or s.phase is not Phase.DONE:
        return False
    transitions = [e for e in order.events if e.previous_status != e.status]
    return bool(transitions) and transitions[-1].sequence == sequence and s.status not in TERMINAL
