"""Contract tests: the OneAtlas adapter driven step by step against the OneAtlas simulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from providers import oneatlas_payloads as oa

from worker.domain.ports import Acquisition, OrderContext, OrderSnapshot, PlacedOrder, RemotePhase
from worker.errors import (
    NotFeasible,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderRejected,
)
from worker.events.models import AcquisitionStatus, Automation, OrderRequest, ProgrammingType
from worker.providers.oneatlas import OneAtlasProvider
from worker.simulators.common import Fault, SimClock, SimulatorCore
from worker.simulators.oneatlas import AUTH_PATH, DEFAULT_CONTRACTS, OneAtlasSimulator

DAY = 86_400.0
HOST = "https://oneatlas.sim"
LEGACY, NEO = DEFAULT_CONTRACTS
TERMINAL = {RemotePhase.COMPLETED, RemotePhase.CANCELLED, RemotePhase.FAILED, RemotePhase.REJECTED}
ATTEMPT_TYPES = {ProgrammingType.ONEDAY, ProgrammingType.ONENOW, ProgrammingType.ONENOWATTEMPTS}


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def provider_for(
    sim: OneAtlasSimulator,
    *,
    api_key: str = "sim-oneatlas-key",
    sleeps: Sleeps | None = None,
    page_size: int = 100,
) -> OneAtlasProvider:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app))
    settings = oa.settings(
        api_key=api_key,
        contract_id=LEGACY.contract_id,
        neo_contract_id=NEO.contract_id,
        workspace_id=LEGACY.workspace,
        auth_url=HOST + AUTH_PATH,
        base_url=HOST,
    )
    return OneAtlasProvider(
        settings,
        oa.http_settings(max_retries=8),
        client=client,
        sleep=sleeps or Sleeps(),
        page_size=page_size,
    )


def order_request(
    sim: OneAtlasSimulator,
    mission: str = "PLEIADES",
    ptype: str = "ONEPLAN",
    *,
    days: float = 70,
    ref: str = "ref-1",
    **fields: Any,
) -> OrderRequest:
    start = sim.core.clock.now()
    end = start.timestamp() + days * DAY
    return oa.request(
        mission,
        ptype,
        start=start.isoformat(),
        end=datetime.fromtimestamp(end, UTC).isoformat(),
        customerReference=ref,
        requestId=f"req-{ref}",
        **fields,
    )


async def place_once(provider: OneAtlasProvider, req: OrderRequest, ctx: OrderContext) -> PlacedOrder:
    """What the worker does: place; on OutcomeUnknown look the order up, place again only if absent."""
    for _ in range(3):
        try:
            return await provider.place_order(req, ctx)
        except OutcomeUnknown:
            found = await provider.find_order(req)
            if found is not None:
                return found
    raise AssertionError("could not place the order")


@dataclass
class Flow:
    placed: PlacedOrder
    snapshot: OrderSnapshot
    phases: list[RemotePhase] = field(default_factory=list)
    acquisitions: list[Acquisition] = field(default_factory=list)
    decided: list[tuple[str, bool]] = field(default_factory=list)


async def prepare(provider: OneAtlasProvider, req: OrderRequest) -> OrderContext:
    """Validate, feasibility (where it applies), attempts (where they apply) and price."""
    await provider.validate(req)
    product = req.oneatlas_product()
    feasibility = None
    if product.programming_type not in ATTEMPT_TYPES:
        feasibility = await provider.check_feasibility(req)
    attempt = None
    if product.programming_type in ATTEMPT_TYPES:
        attempt = (await provider.find_attempts(req))[0]
    ctx = OrderContext(feasibility=feasibility, attempt=attempt)
    quote = await provider.price(req, ctx)
    assert quote.amount > 0
    assert quote.currency == "EUR"
    return ctx


async def drive(
    sim: OneAtlasSimulator,
    provider: OneAtlasProvider,
    req: OrderRequest,
    *,
    accept_quotation: bool = True,
    decide: Callable[[Acquisition], bool] = lambda a: True,
    each_step: Callable[[OrderSnapshot], None] | None = None,
    step: float = DAY,
    max_steps: int = 200,
) -> Flow:
    """Drive one request to a terminal phase: poll, decide, list acquisitions, advance the clock."""
    ctx = await prepare(provider, req)
    placed = await place_once(provider, req, ctx)
    flow: Flow | None = None
    marker: str | None = None
    for _ in range(max_steps):
        polled = (await provider.poll([placed.tracking_key])).get(placed.tracking_key)
        assert polled is not None, "a placed order must be listed"
        snap = polled.snapshot
        placed = PlacedOrder(tracking_key=placed.tracking_key, refs={**placed.refs, **snap.refs})
        flow = flow or Flow(placed=placed, snapshot=snap)
        flow.placed, flow.snapshot = placed, snap
        flow.phases.append(snap.phase)
        if snap.phase is RemotePhase.QUOTATION_READY:
            assert snap.quotation is not None
            await provider.decide_quotation(placed, snap.quotation.id, accept_quotation)
            continue
        if snap.change_marker != marker:
            marker = snap.change_marker
            for a in await provider.list_acquisitions(placed):
                if a.status is AcquisitionStatus.PROPOSED:
                    await provider.decide_acquisition(placed, a.id, decide(a))
                    flow.decided.append((a.id, decide(a)))
        if snap.phase in TERMINAL:
            break
        if each_step is not None:
            each_step(snap)
        sim.advance(step)
    assert flow is not None
    assert flow.snapshot.phase in TERMINAL
    flow.acquisitions = await provider.list_acquisitions(flow.placed)
    return flow


def dedupe(phases: list[RemotePhase]) -> list[RemotePhase]:
    return [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] is not p]


# ============================================================================= nominal flows


@pytest.mark.parametrize(
    ("mission", "ptype"),
    [
        ("PLEIADES", "ONEPLAN"),
        ("SPOT", "ONEPLAN"),
        ("PLEIADES", "ONESERIES"),
    ],
)
async def test_plan_flows_complete(mission: str, ptype: str) -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, mission, ptype))
    assert flow.snapshot.phase is RemotePhase.COMPLETED
    assert flow.snapshot.coverage_pct == 100.0
    assert dedupe(flow.phases)[:1] == [RemotePhase.ACTIVE]
    assert RemotePhase.ACQUIRING in flow.phases
    assert flow.acquisitions
    assert all(a.status is AcquisitionStatus.VALIDATED for a in flow.acquisitions)
    assert all(a.cloud_cover is not None and a.cloud_cover <= 20 for a in flow.acquisitions)
    assert sim.paid_order_count("ref-1") == 1
    icr = sim.order("ref-1")
    assert flow.placed.refs["taskingId"] == icr.tasking_id


@pytest.mark.parametrize(("mission", "ptype"), [("PLEIADES", "ONEDAY"), ("SPOT", "ONENOW")])
async def test_attempt_flows_complete_at_the_attempt(mission: str, ptype: str) -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim, mission, ptype, days=7)
    flow = await drive(sim, provider, req, step=6 * 3600)
    assert flow.snapshot.phase is RemotePhase.COMPLETED
    [acquisition] = flow.acquisitions
    order = sim.order("ref-1")
    assert order.attempt is not None
    assert acquisition.acquired_at == order.attempt["start"]
    assert sim.core.count("POST", "/api/v1/attempts") == 1
    assert sim.paid_order_count("ref-1") == 1


async def test_stereo_manual_study_then_proposals_accepted_and_refused() -> None:
    sim = OneAtlasSimulator(study_duration=30 * DAY)
    provider = provider_for(sim)
    req = order_request(sim, constraints={"acquisitionMode": "STEREO"}, days=90)
    ctx = await prepare(provider, req)
    assert ctx.feasibility is not None
    assert ctx.feasibility.automation is Automation.MANUAL
    placed = await place_once(provider, req, ctx)
    snap = await provider.get_order(placed)
    assert snap.phase is RemotePhase.FEASIBILITY_STUDY
    sim.advance(DAY)
    polled = (await provider.poll([placed.tracking_key]))[placed.tracking_key]
    assert polled.snapshot.phase is RemotePhase.FEASIBILITY_STUDY
    sim.finish_study(placed.tracking_key)
    assert (await provider.get_order(placed)).phase is RemotePhase.ACTIVE
    cloudy = sim.propose_acquisition(placed.tracking_key, cloud_cover=35.0)
    fine = sim.propose_acquisition(placed.tracking_key, cloud_cover=18.0)
    snap = await provider.get_order(placed)
    assert snap.counts is not None
    assert snap.counts.proposed == 2
    proposed = {a.id: a for a in await provider.list_acquisitions(placed)}
    assert proposed[cloudy].cloud_cover == pytest.approx(35.0)
    await provider.decide_acquisition(placed, cloudy, accept=False)
    await provider.decide_acquisition(placed, fine, accept=True)
    statuses = {a.id: a.status for a in await provider.list_acquisitions(placed)}
    assert statuses == {cloudy: AcquisitionStatus.REFUSED, fine: AcquisitionStatus.VALIDATED}
    with pytest.raises(ProviderRejected):  # already decided
        await provider.decide_acquisition(placed, fine, accept=True)
    snap = await provider.get_order(placed)
    assert snap.coverage_pct == 50.0
    assert snap.phase is RemotePhase.ACQUIRING
    sim.advance(120 * DAY)
    assert (await provider.get_order(placed)).phase is RemotePhase.COMPLETED
    assert sim.paid_order_count(req.reference) == 1


async def test_manual_study_ends_by_itself_after_the_study_duration() -> None:
    sim = OneAtlasSimulator(study_duration=2 * DAY)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, constraints={"maxCloudCover": 5}))
    assert dedupe(flow.phases)[0] is RemotePhase.FEASIBILITY_STUDY
    assert flow.snapshot.phase is RemotePhase.COMPLETED


async def test_failed_study_cancels_the_icr() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim, constraints={"maxIncidenceAngle": 10})
    placed = await place_once(provider, req, await prepare(provider, req))
    sim.finish_study(req.reference, feasible=False)
    assert (await provider.get_order(placed)).phase is RemotePhase.CANCELLED


async def test_neo_oneplan_quotation_accepted() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADESNEO", ref="neo-1"), step=DAY / 4)
    phases = dedupe(flow.phases)
    assert phases[:3] == [RemotePhase.AWAITING_QUOTATION, RemotePhase.QUOTATION_READY, RemotePhase.ACTIVE]
    assert flow.snapshot.phase is RemotePhase.COMPLETED
    assert flow.snapshot.coverage_pct == 100.0
    assert flow.placed.tracking_key.startswith("QUO")
    assert {"salesOrderId", "orderItemId", "quotationId"} <= set(flow.placed.refs)
    assert flow.acquisitions
    assert all(a.id.startswith("CIE_") for a in flow.acquisitions)
    assert sim.paid_order_count("neo-1") == 1


async def test_neo_quotation_refused_is_rejected_and_unpaid() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    flow = await drive(
        sim, provider, order_request(sim, "PLEIADESNEO", ref="neo-2"), accept_quotation=False, step=DAY / 4
    )
    assert flow.snapshot.phase is RemotePhase.REJECTED
    assert sim.paid_order_count("neo-2") == 0
    assert flow.acquisitions == []


async def test_neo_operator_quotation_amount_and_proposed_coverage_items() -> None:
    sim = OneAtlasSimulator(quotation_delay=10 * DAY)
    provider = provider_for(sim)
    req = order_request(sim, "PLEIADESNEO", ref="neo-3")
    placed = await place_once(provider, req, await prepare(provider, req))
    sim.send_quotation(placed.tracking_key, amount=4321.5)
    snap = await provider.get_order(placed)
    assert snap.phase is RemotePhase.QUOTATION_READY
    assert snap.quotation is not None
    assert snap.quotation.amount == 4321.5
    assert snap.quotation.valid_until is not None
    await provider.decide_quotation(placed, snap.quotation.id, accept=True)
    item = sim.propose_acquisition(placed.tracking_key, cloud_cover=30.0)
    [acq] = await provider.list_acquisitions(placed)
    assert (acq.id, acq.status) == (item, AcquisitionStatus.PROPOSED)
    await provider.decide_acquisition(placed, item, accept=False)
    assert (await provider.list_acquisitions(placed))[0].status is AcquisitionStatus.REFUSED
    await provider.cancel(placed)  # acquisitions exist: the order is stopped
    assert sim.order(placed.tracking_key).status == "STOPPED"
    assert (await provider.get_order(placed)).phase is RemotePhase.CANCELLED


async def test_legacy_cancel_and_refused_second_cancel() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim)
    placed = await place_once(provider, req, await prepare(provider, req))
    await provider.cancel(placed)
    assert (await provider.get_order(placed)).phase is RemotePhase.CANCELLED
    with pytest.raises(ProviderRejected, match="cannot be cancelled"):
        await provider.cancel(placed)


async def test_window_end_with_nothing_validated_completes_with_zero_coverage() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim, constraints={"maxCloudCover": 0}, days=20)
    placed = await provider.place_order(req, OrderContext())
    sim.advance(21 * DAY)
    snap = await provider.get_order(placed)
    assert snap.phase is RemotePhase.COMPLETED
    assert snap.coverage_pct == 0.0
    assert await provider.list_acquisitions(placed) == []


# ============================================================================= refusals


async def test_feasibility_rules_and_no_capacity() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    auto = await provider.check_feasibility(order_request(sim))
    assert (auto.automation, auto.classification) == (Automation.AUTOMATIC, "EASY")
    short = await provider.check_feasibility(order_request(sim, days=45))
    assert (short.automation, short.classification) == (Automation.AUTOMATIC, "CHALLENGING")
    for constraints in ({"maxCloudCover": 9}, {"maxIncidenceAngle": 19}, {"acquisitionMode": "TRISTEREO"}):
        result = await provider.check_feasibility(order_request(sim, constraints=constraints))
        assert result.automation is Automation.MANUAL, constraints
    neo = await provider.check_feasibility(order_request(sim, "PLEIADESNEO"))
    assert neo.expires_at is not None
    assert neo.automation_name is None
    sim.add_no_capacity_aoi(oa.TOULOUSE)
    with pytest.raises(NotFeasible):
        await provider.check_feasibility(order_request(sim))


async def test_no_attempt_aoi_is_not_feasible() -> None:
    sim = OneAtlasSimulator()
    sim.add_no_attempt_aoi(oa.TOULOUSE)
    with pytest.raises(NotFeasible) as info:
        await provider_for(sim).find_attempts(order_request(sim, ptype="ONEDAY", days=2))
    assert info.value.provider_code == "ERR_NO_SENSOR_AVAILABLE"


async def test_attempts_answer_object_with_wkt_and_future_deadlines() -> None:
    sim = OneAtlasSimulator()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HOST)
    token = (
        await client.post(
            AUTH_PATH, data={"apikey": "sim-oneatlas-key", "grant_type": "api_key", "client_id": "IDP"}
        )
    ).json()
    body = {
        "progTypeNames": ["ONEDAY"],
        "missions": ["PLEIADES"],
        "contractId": LEGACY.contract_id,
        "acquisitionDate": {"startDate": "2020-01-01T00:00:00.000Z", "endDate": None},
        "optical": {"acquisitionMode": "MONO", "maxCloudCover": 25, "maxIncidenceAngle": 30},
        "aoi": oa.TOULOUSE["coordinates"],
    }  # the spec's bare coordinate array
    answer = await client.post(
        "/api/v1/attempts", json=body, headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert answer.status_code == 200
    caps = answer.json()["progCapacities"]
    assert isinstance(caps, dict)
    segments = caps["progTypes"][0]["segments"]
    assert len(segments) == 3
    assert all(s["footprint"]["geometry"].startswith("POLYGON((") for s in segments)
    now = sim.core.clock.now().isoformat()
    assert all(s["orderDeadline"] > now[:19] for s in segments)  # a past start is replaced by now


async def test_unknown_contract_is_e2203() -> None:
    sim = OneAtlasSimulator()
    provider = OneAtlasProvider(
        oa.settings(
            contract_id="CTR_NOPE", auth_url=HOST + AUTH_PATH, base_url=HOST, api_key="sim-oneatlas-key"
        ),
        oa.http_settings(),
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app)),
    )
    with pytest.raises(ProviderRejected) as info:
        await provider.check_feasibility(order_request(sim))
    assert info.value.provider_code == "E2203"
    assert "CTR_NOPE" in info.value.message


async def test_wrong_api_key_is_auth_error() -> None:
    sim = OneAtlasSimulator()
    with pytest.raises(ProviderAuthError) as info:
        await provider_for(sim, api_key="wrong-key-123").check_feasibility(order_request(sim))
    assert "wrong-key-123" not in str(info.value)
    assert info.value.status_code == 403


async def test_simulator_refuses_flattened_options() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim)
    body = provider.order_body(req, OrderContext())
    body["optionsPerProductType"] = body["optionsPerProductType"][0]["options"]  # the doc bug
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HOST)
    token = (
        await client.post(
            AUTH_PATH, data={"apikey": "sim-oneatlas-key", "grant_type": "api_key", "client_id": "IDP"}
        )
    ).json()
    answer = await client.post(
        "/api/v1/orders", json=body, headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert answer.status_code == 400
    assert "optionsPerProductType" in answer.json()["message"]
    assert sim.paid_orders() == 0


# ============================================================================= faults


FAULTS: dict[str, list[Fault]] = {
    "5xx": [
        Fault("status", path=r"/api/v1/contracts/.*/taskings", times=3, status=503),
        Fault("status", path=r"/api/v1/feasibility", times=1),
        Fault("status", path=r"/api/v2/orders/search", times=2, status=502),
        Fault("status", path=r"/api/v1/orders", method="POST", times=1),
    ],
    "429": [
        Fault(
            "status",
            path=".*",
            times=4,
            status=429,
            retry_after=3,
            body={
                "correlationId": "x",
                "hint": "",
                "internalCode": "RATE",
                "message": "Too many requests",
                "timestamp": 0,
            },
        )
    ],
    "latency": [Fault("latency", path=".*", times=10, delay=0.01)],
    "flaky": [Fault("status", path=r"/api/.*", times=None, probability=0.25, status=500)],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize(
    ("mission", "ptype"), [("PLEIADES", "ONEPLAN"), ("PLEIADES", "ONEDAY"), ("PLEIADESNEO", "ONEPLAN")]
)
async def test_flows_under_faults_pay_exactly_once(fault: str, mission: str, ptype: str) -> None:
    sim = OneAtlasSimulator()
    sleeps = Sleeps()
    provider = provider_for(sim, sleeps=sleeps)
    for f in FAULTS[fault]:
        sim.inject(Fault(**{**f.__dict__}))
    expired: list[int] = []

    def expire_sometimes(snap: OrderSnapshot) -> None:
        if len(expired) < 2:  # expired tokens mid-flow, twice
            sim.expire_tokens()
            expired.append(1)

    flow = await drive(
        sim,
        provider,
        order_request(sim, mission, ptype, days=70 if ptype == "ONEPLAN" else 7),
        step=DAY / 2,
        each_step=expire_sometimes,
    )
    assert flow.snapshot.phase is RemotePhase.COMPLETED
    assert sim.paid_order_count("ref-1") == 1
    assert sim.paid_orders() == 1
    assert expired
    assert sim.core.count("POST", AUTH_PATH) >= 1 + len(expired)
    if fault == "429":
        assert any(d >= 3 for d in sleeps.delays)
    if fault in ("5xx", "flaky"):
        assert any(c.fault == "status" for c in sim.core.calls)


async def test_lost_order_answer_is_reconciled_not_reposted() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim, ref="lost-1")
    ctx = await prepare(provider, req)
    sim.inject(Fault("lost_response", path="/api/v1/orders", method="POST"))
    with pytest.raises(OutcomeUnknown):
        await provider.place_order(req, ctx)
    found = await provider.find_order(req)
    assert found is not None
    assert found.tracking_key == sim.order("lost-1").sales_order_id
    assert [c.path for c in sim.core.calls if c.method == "POST"].count("/api/v1/orders") == 1
    assert sim.core.count("POST", "/api/v1/orders") == 1
    assert sim.paid_order_count("lost-1") == 1
    assert (await provider.get_order(found)).phase is RemotePhase.ACTIVE


async def test_lost_neo_order_answer_is_found_by_reference() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim, "PLEIADESNEO", ref="lost-neo")
    ctx = await prepare(provider, req)
    sim.inject(Fault("lost_response", path="/api/v1/orders", method="POST"))
    placed = await place_once(provider, req, ctx)
    assert placed.tracking_key == sim.order("lost-neo").quotation_id
    assert len([c for c in sim.core.calls if c.path == "/api/v1/orders"]) == 1


async def test_poll_load_is_bounded_by_pages() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim, page_size=100)
    placed = [
        await provider.place_order(order_request(sim, ref=f"load-{n}"), OrderContext()) for n in range(250)
    ]
    before = len(sim.core.calls)
    snapshots = await provider.poll([p.tracking_key for p in placed])
    assert len(snapshots) == 250
    listing = [c for c in sim.core.calls[before:] if c.path.endswith("/taskings")]
    assert len(listing) == 3
    assert len(sim.core.calls) - before == 3
    assert [c.query for c in listing] == [f"count=100&startPage={n}" for n in (1, 2, 3)]
    assert sim.paid_orders() == 250


async def test_same_seed_same_history() -> None:
    histories = []
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for _ in range(2):
        # A frozen clock (speed 0) moves only when advanced: the whole history is reproducible.
        sim = OneAtlasSimulator(SimulatorCore(clock=SimClock(speed=0.0, start=start)), seed=11)
        provider = provider_for(sim)
        flow = await drive(sim, provider, order_request(sim))
        histories.append([(a.id, a.cloud_cover, a.acquired_at) for a in flow.acquisitions])
    assert histories[0] == histories[1]
    assert histories[0]


# ============================================================================= operator endpoints


async def test_sim_http_controls() -> None:
    sim = OneAtlasSimulator(quotation_delay=30 * DAY)
    provider = provider_for(sim)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HOST)
    req = order_request(sim, "PLEIADESNEO", ref="ops-1")
    placed = await provider.place_order(req, await prepare(provider, req))
    start = (await client.get("/_sim/clock")).json()["now"]
    moved = (await client.post("/_sim/clock", json={"advanceSeconds": 3600})).json()["now"]
    assert moved > start
    sent = await client.post(f"/_sim/orders/{placed.tracking_key}/quotation", json={"amount": 999})
    assert sent.status_code == 200
    snap = await provider.get_order(placed)
    assert snap.quotation is not None
    assert snap.quotation.amount == 999
    await provider.decide_quotation(placed, snap.quotation.id, accept=True)
    added = (
        await client.post(
            f"/_sim/orders/{placed.tracking_key}/acquisitions", json={"cloudCover": 12.5, "incidenceAngle": 9}
        )
    ).json()
    [acq] = await provider.list_acquisitions(placed)
    assert acq.id == added["id"]
    assert acq.incidence_angle == 9
    assert (await client.get("/_sim/paid-orders")).json() == {"count": 1, "byReference": {"ops-1": 1}}
    await client.post(f"/_sim/orders/{placed.tracking_key}/status", json={"status": "FAILED"})
    assert (await provider.get_order(placed)).phase is RemotePhase.FAILED
    await client.post("/_sim/faults", json={"kind": "status", "path": "/api/v1/contracts", "status": 418})
    calls_before = len((await client.get("/_sim/calls")).json()["calls"])
    token = await provider._tokens.get()
    teapot = await client.get("/api/v1/contracts", headers={"Authorization": f"Bearer {token}"})
    assert teapot.status_code == 418
    assert len((await client.get("/_sim/calls")).json()["calls"]) == calls_before + 1
    await client.post("/_sim/tokens/expire")
    expired = await client.get("/api/v1/contracts", headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401
    assert expired.json() == {"message": "Authentication failed (cause: Token expired)"}
    missing = await client.post("/_sim/orders/NOPE/study", json={})
    assert missing.status_code == 400
