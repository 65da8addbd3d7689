"""Up42Provider end to end against the UP42 simulator (in process, ``httpx.ASGITransport``).

``ASGITransport`` applies no timeout, so :class:`TimeoutTransport` enforces one: a simulator
``lost_response`` fault (handler runs, answer held back) then reaches the adapter as a read
timeout after the order was created, exactly like a real lost answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from providers import up42_payloads as p
from pydantic import SecretStr

from worker.config import Up42Settings
from worker.domain.ports import OrderContext, PlacedOrder, QuotationDecision, RemotePhase
from worker.errors import OutcomeUnknown, ProviderAuthError, ProviderRejected
from worker.events.models import AcquisitionStatus, Automation, OrderRequest
from worker.providers.up42 import Up42Provider
from worker.simulators.common import Fault, iso
from worker.simulators.up42 import Up42SimConfig, Up42Simulator
from worker.simulators.up42_schemas import PLEIADES_TASKING_PRODUCT_ID

HOUR = 3600.0
DAY = 24 * HOUR
CTX = OrderContext()


class TimeoutTransport(httpx.AsyncBaseTransport):
    """Gives an in-process transport the client-side read timeout a real socket would have."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float) -> None:
        self._inner, self._seconds = inner, seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await asyncio.wait_for(self._inner.handle_async_request(request), self._seconds)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("no answer within the timeout", request=request) from exc


@pytest.fixture
def sim() -> Up42Simulator:
    return Up42Simulator(config=Up42SimConfig(deliveries_per_order=2))


def adapter(
    sim: Up42Simulator, *, password: str = "sim-up42-password", timeout: float = 2.0, max_retries: int = 8
) -> Up42Provider:
    transport = TimeoutTransport(httpx.ASGITransport(app=sim.app), timeout)
    client = httpx.AsyncClient(transport=transport)
    settings = Up42Settings(
        username=sim.username,
        password=SecretStr(password),
        base_url="https://up42.sim",
        auth_url="https://up42.sim/realms/public/protocol/openid-connect/token",
        rate_limit_per_second=100_000.0,
    )

    async def no_sleep(_: float) -> None:
        return None

    return Up42Provider(settings, p.http_settings(max_retries=max_retries), client=client, sleep=no_sleep)


def request_for(sim: Up42Simulator, reference: str, **overrides: Any) -> OrderRequest:
    start = sim.core.clock.now() + timedelta(days=1)
    window = {"start": iso(start), "end": iso(start + timedelta(days=10))}
    return p.order_request(requestId=reference, window=window, **overrides)


AUTO = {"constraints": {"maxCloudCover": 15}}  # above the 10 % threshold: an AUTO study

FAULTS: dict[str, Callable[[Up42Simulator], None]] = {
    "none": lambda sim: None,
    "5xx": lambda sim: sim.inject(Fault("status", method="GET", status=502, times=None, probability=0.3)),
    "524": lambda sim: sim.inject(
        Fault("status", method="GET", status=524, times=None, probability=0.3, body={"code": 524})
    ),
    "429": lambda sim: sim.inject(Fault("status", status=429, retry_after=0, times=None, probability=0.3)),
    "latency": lambda sim: sim.inject(Fault("latency", delay=0.005, times=None)),
    "token": lambda sim: sim.expire_tokens(),
}


def handled(sim: Up42Simulator, method: str, path: str) -> list[dict[str, Any]]:
    """Calls the simulator's handler answered 2xx (not those a status fault answered)."""
    return [c for c in sim.calls(method, path) if 200 <= c["status"] < 300]


async def phase_of(provider: Up42Provider, placed: PlacedOrder) -> RemotePhase:
    return (await provider.get_order(placed)).phase


# ------------------------------------------------------------------------------ flows


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_auto_study_accept_fulfilled_with_deliveries(sim: Up42Simulator, fault: str) -> None:
    provider = adapter(sim)
    inject = FAULTS[fault]
    request = request_for(sim, f"auto-{fault}", **AUTO)
    inject(sim)
    quote = await provider.price(request, CTX)
    placed = await provider.place_order(request, CTX)
    assert await phase_of(provider, placed) is RemotePhase.FEASIBILITY_STUDY

    sim.advance(4 * HOUR + 1)
    inject(sim)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.AWAITING_QUOTATION
    assert snapshot.study is not None
    assert snapshot.study.automation is Automation.AUTOMATIC

    sim.advance(4 * HOUR)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.QUOTATION_READY
    assert snapshot.quotation is not None
    assert snapshot.quotation.amount == quote.amount  # the simulator quotes area x rate
    credits_before = sim.credits
    inject(sim)
    await provider.decide_quotation(placed, snapshot.quotation.id, accept=True)
    assert sim.credits == credits_before - quote.amount
    assert await phase_of(provider, placed) is RemotePhase.ACTIVE

    sim.advance(5 * DAY)
    inject(sim)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.ACQUIRING
    assert snapshot.coverage_pct == 50.0
    assert len(await provider.list_acquisitions(placed)) == 1

    sim.advance(5 * DAY)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.COMPLETED
    assert snapshot.coverage_pct == 100.0
    acquisitions = await provider.list_acquisitions(placed)
    assert len(acquisitions) == 2
    assert all(a.status is AcquisitionStatus.DELIVERED for a in acquisitions)
    assert all(a.cloud_cover is not None and 0 <= a.cloud_cover <= 15 for a in acquisitions)
    assert all(a.refs["orderId"] == placed.tracking_key for a in acquisitions)
    # The recorded quirk: subStatus is not cleared when status moves on.
    raw = sim.order_json(sim.orders[placed.tracking_key])
    assert (raw["status"], raw["orderDetails"]["subStatus"]) == ("FULFILLED", "QUOTATION_ACCEPTED")
    assert sim.paid_order_count(request.reference) == 1
    assert sim.accepted_quotations(request.reference) == 1
    if fault in ("5xx", "524", "429"):
        assert any(c.fault == "status" for c in sim.core.calls)
    await provider.aclose()


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_manual_study_choose_option_then_accept(sim: Up42Simulator, fault: str) -> None:
    provider = adapter(sim)
    inject = FAULTS[fault]
    request = request_for(
        sim, f"manual-{fault}", constraints={"acquisitionMode": "STEREO", "maxCloudCover": 15}
    )
    inject(sim)
    placed = await provider.place_order(request, CTX)
    sim.advance(4 * HOUR + 1)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.AWAITING_OPTION
    study = snapshot.study
    assert study is not None
    assert study.automation is Automation.MANUAL
    assert len(study.options) == 2

    inject(sim)
    await provider.choose_option(placed, study.id, study.options[1].id)
    await provider.choose_option(placed, study.id, study.options[1].id)  # repeated: a no-op
    with pytest.raises(ProviderRejected, match="already decided"):
        await provider.choose_option(placed, study.id, study.options[0].id)
    assert len(handled(sim, "PATCH", r"/v2/tasking/feasibility-studies/.*")) == 1
    assert await phase_of(provider, placed) is RemotePhase.AWAITING_QUOTATION

    sim.advance(4 * HOUR)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.QUOTATION_READY
    assert snapshot.quotation is not None
    inject(sim)
    await provider.decide_quotation(placed, snapshot.quotation.id, accept=True)
    await provider.decide_quotation(placed, snapshot.quotation.id, accept=True)  # no second PATCH
    assert len(handled(sim, "PATCH", r"/v2/tasking/quotation/.*")) == 1
    assert await phase_of(provider, placed) is RemotePhase.ACTIVE
    assert sim.paid_order_count(request.reference) == 1
    assert sim.accepted_quotations(request.reference) == 1


@pytest.mark.parametrize("fault", ["none", "5xx", "429", "token"])
async def test_quotation_rejected(sim: Up42Simulator, fault: str) -> None:
    provider = adapter(sim)
    request = request_for(sim, f"reject-{fault}", **AUTO)
    placed = await provider.place_order(request, CTX)
    sim.advance(8 * HOUR + 1)
    quotation = (await provider.get_order(placed)).quotation
    assert quotation is not None
    credits = sim.credits
    FAULTS[fault](sim)
    await provider.decide_quotation(placed, quotation.id, accept=False)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.REJECTED
    assert snapshot.provider_status == "FAILED_PERMANENTLY"
    assert sim.credits == credits
    with pytest.raises(ProviderRejected, match="already REJECTED"):
        await provider.decide_quotation(placed, quotation.id, accept=True)
    assert sim.accepted_quotations(request.reference) == 0


@pytest.mark.parametrize("fault", ["none", "5xx", "429", "latency", "token"])
async def test_cancel_while_created_refused_later(sim: Up42Simulator, fault: str) -> None:
    provider = adapter(sim)
    FAULTS[fault](sim)
    first = await provider.place_order(request_for(sim, f"cancel-a-{fault}"), CTX)
    await provider.cancel(first)
    assert await phase_of(provider, first) is RemotePhase.CANCELLED
    await provider.cancel(first)  # already CANCELED: success, no second POST
    assert len(handled(sim, "POST", r"/v2/orders/.*/cancellation")) == 1

    second = await provider.place_order(request_for(sim, f"cancel-b-{fault}", **AUTO), CTX)
    sim.advance(8 * HOUR + 1)
    quotation = (await provider.get_order(second)).quotation
    assert quotation is not None
    await provider.decide_quotation(second, quotation.id, accept=True)
    with pytest.raises(ProviderRejected, match="only while CREATED or PLACEMENT_FAILED; order is"):
        await provider.cancel(second)
    sim.set_status(second.tracking_key, "PLACEMENT_FAILED")
    assert await phase_of(provider, second) is RemotePhase.ACTIVE  # recoverable, not terminal
    await provider.cancel(second)
    assert await phase_of(provider, second) is RemotePhase.CANCELLED


async def test_simulator_refuses_cancellation_outside_the_rule(sim: Up42Simulator) -> None:
    provider = adapter(sim)
    placed = await provider.place_order(request_for(sim, "cancel-direct", **AUTO), CTX)
    sim.set_status(placed.tracking_key, "BEING_FULFILLED")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="https://up42.sim"
    ) as raw:
        token = (
            await raw.post(
                "/realms/public/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "username": sim.username,
                    "password": "sim-up42-password",
                    "client_id": "up42-sdk",
                },
            )
        ).json()["access_token"]
        answer = await raw.post(
            f"/v2/orders/{placed.tracking_key}/cancellation", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 409
    assert answer.json()["title"].startswith("Order cannot be canceled in status BEING_FULFILLED")


# ------------------------------------------------------------------------------ paid calls


async def test_lost_order_answer_is_reconciled_not_reposted(sim: Up42Simulator) -> None:
    provider = adapter(sim, timeout=0.3)
    request = request_for(sim, "lost-post-1", **AUTO)
    sim.inject(Fault("lost_response", path="/v2/orders", method="POST", delay=5.0))
    with pytest.raises(OutcomeUnknown):
        await provider.place_order(request, CTX)
    found = await provider.find_order(request)
    assert found is not None
    assert found.tracking_key in sim.orders
    assert len(sim.calls("POST", "/v2/orders")) == 1
    assert sim.paid_order_count(request.reference) == 1
    sim.advance(8 * HOUR + 1)
    quotation = (await provider.get_order(found)).quotation
    assert quotation is not None
    await provider.decide_quotation(found, quotation.id, accept=True)
    assert sim.accepted_quotations(request.reference) == 1


async def test_find_order_is_none_when_nothing_was_created(sim: Up42Simulator) -> None:
    provider = adapter(sim)
    request = request_for(sim, "never-sent")
    await provider.place_order(request_for(sim, "never-sent-but-longer"), CTX)
    assert await provider.find_order(request) is None


@pytest.mark.parametrize("kind", ["status", "lost_response"])
async def test_quotation_patch_without_answer_is_decided_once(sim: Up42Simulator, kind: str) -> None:
    provider = adapter(sim, timeout=0.3)
    request = request_for(sim, f"patch-{kind}", **AUTO)
    placed = await provider.place_order(request, CTX)
    sim.advance(8 * HOUR + 1)
    quotation = (await provider.get_order(placed)).quotation
    assert quotation is not None
    sim.inject(Fault(kind, path=r"/v2/tasking/quotation/.*", method="PATCH", status=503, delay=5.0))  # type: ignore[arg-type]
    with pytest.raises(OutcomeUnknown):
        await provider.decide_quotation(placed, quotation.id, accept=True)
    # Reconcile: read again, decide only if still undecided.
    await provider.decide_quotation(placed, quotation.id, accept=True)
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.ACTIVE
    assert sim.accepted_quotations(request.reference) == 1
    assert len(handled(sim, "PATCH", r"/v2/tasking/quotation/.*")) == 1


# ------------------------------------------------------------------------------ auth, validation


async def test_wrong_password_is_an_auth_error(sim: Up42Simulator) -> None:
    provider = adapter(sim, password="not-the-password")
    with pytest.raises(ProviderAuthError, match=r"Invalid user credentials") as info:
        await provider.place_order(request_for(sim, "bad-auth"), CTX)
    assert "not-the-password" not in str(info.value)
    assert sim.orders == {}


async def test_workspace_comes_from_userinfo(sim: Up42Simulator) -> None:
    provider = adapter(sim)
    assert await provider.workspace_id() == sim.workspace_id
    placed = await provider.place_order(request_for(sim, "ws-check"), CTX)
    (call,) = sim.calls("POST", "/v2/orders")
    assert f"workspaceId={sim.workspace_id}" in call["query"]
    assert placed.tracking_key in sim.orders


async def test_simulator_validates_params_server_side(sim: Up42Simulator) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="https://up42.sim"
    ) as raw:
        token = (
            await raw.post(
                "/realms/public/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "username": sim.username,
                    "password": "sim-up42-password",
                    "client_id": "up42-api",
                },
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [p.PANAMA_RING]}}
        point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-79.5, 9.0]}}
        params: dict[str, Any] = {
            "acquisitionStart": "2026-08-01T00:00:00Z",
            "acquisitionEnd": "2026-09-01T00:00:00Z",
            "acquisitionMode": "mono",
            "cloudCoverage": 10,
            "incidenceAngle": 10,
            "geometricProcessing": "ortho",
            "spectralProcessing": "bundle",
            "pixelCoding": "12bits",
            "radiometricProcessing": "reflectance",
            "deliveredAs": "geotiff",
        }
        body: dict[str, Any] = {
            "dataProduct": PLEIADES_TASKING_PRODUCT_ID,
            "displayName": "raw",
            "params": params,
            "featureCollection": {"type": "FeatureCollection", "features": [feature, point]},
        }
        ws = {"workspaceId": sim.workspace_id}
        partial = await raw.post("/v2/orders", params=ws, json=body, headers=auth)
        assert partial.status_code == 200
        assert [r["index"] for r in partial.json()["results"]] == [0]
        assert [e["index"] for e in partial.json()["errors"]] == [1]
        bad = {**body, "params": {**params, "cloudCoverage": 150}}
        refused = await raw.post("/v2/orders", params=ws, json=bad, headers=auth)
        assert refused.status_code == 400
        assert refused.json()["message"] == "Order parameters errors"
        empty_tags = await raw.post("/v2/orders", params=ws, json={**body, "tags": []}, headers=auth)
        assert empty_tags.status_code == 400
        sim.expire_tokens()
        expired = await raw.get("/v2/orders", headers=auth)
        assert expired.status_code == 401
        assert expired.json()["error"]["message"].startswith("ACCESS_TOKEN_EXPIRED")
        assert expired.json()["data"] is None
    assert len(sim.orders) == 1


# ------------------------------------------------------------------------------ load


async def test_poll_250_orders_is_bounded_by_pages(sim: Up42Simulator) -> None:
    provider = adapter(sim)
    placed = [await provider.place_order(request_for(sim, f"load-{i:03d}"), CTX) for i in range(250)]
    keys = [o.tracking_key for o in placed]
    for order_id in keys[:5]:
        sim.upload_study(order_id, manual=True, options=3)
    before = len(sim.core.calls)
    snapshots = await provider.poll(keys)
    calls = sim.core.calls[before:]
    assert set(snapshots) == set(keys)
    assert sum(1 for c in calls if c.path == "/v2/orders") == 3  # 250 orders, 100 per page
    assert sum(1 for c in calls if c.path == "/v2/tasking/feasibility-studies") == 5
    assert len(calls) == 8
    waiting = [snapshots[k].snapshot for k in keys[:5]]
    assert all(s.phase is RemotePhase.AWAITING_OPTION for s in waiting)
    assert all(s.study is not None and len(s.study.options) == 3 for s in waiting)
    assert all(snapshots[k].snapshot.phase is RemotePhase.FEASIBILITY_STUDY for k in keys[5:])
    assert all(
        p.snapshot.quotation is None or p.snapshot.quotation.decision is QuotationDecision.NOT_DECIDED
        for p in snapshots.values()
    )


# ------------------------------------------------------------------------------ operator console


async def test_operator_console_drives_a_manual_order(sim: Up42Simulator) -> None:
    sim.config.auto_operator = False  # nothing happens unless the operator acts
    provider = adapter(sim)
    request = request_for(sim, "console-1")
    placed = await provider.place_order(request, CTX)
    order_id = placed.tracking_key
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="https://up42.sim"
    ) as console:
        await console.post("/_sim/clock", json={"advance": 30 * DAY})
        assert await phase_of(provider, placed) is RemotePhase.FEASIBILITY_STUDY

        study = (
            await console.post(f"/_sim/orders/{order_id}/study", json={"type": "MANUAL", "options": 3})
        ).json()
        snapshot = await provider.get_order(placed)
        assert snapshot.phase is RemotePhase.AWAITING_OPTION
        assert snapshot.study is not None
        assert [o.id for o in snapshot.study.options] == [o["id"] for o in study["options"]]
        await provider.choose_option(placed, study["id"], study["options"][2]["id"])
        assert await phase_of(provider, placed) is RemotePhase.AWAITING_QUOTATION

        await console.post(f"/_sim/orders/{order_id}/quotation", json={"creditsPrice": 4321})
        quotation = (await provider.get_order(placed)).quotation
        assert quotation is not None
        assert quotation.amount == 4321

        await console.post("/_sim/role", json={"role": "MEMBER"})
        with pytest.raises(ProviderRejected, match="Viewer and Member"):
            await provider.decide_quotation(placed, quotation.id, accept=True)
        await console.post("/_sim/role", json={"role": "ADMIN"})
        credits = sim.credits
        await console.post(
            "/_sim/faults",
            json={"kind": "status", "path": "/v2/orders/.*", "method": "GET", "status": 503, "times": 2},
        )
        await provider.decide_quotation(placed, quotation.id, accept=True)
        assert sim.credits == credits - 4321

        await console.post(
            f"/_sim/orders/{order_id}/status", json={"status": "BEING_FULFILLED", "resume": True}
        )
        delivered = (
            await console.post(
                f"/_sim/orders/{order_id}/deliveries", json={"cloudCover": 3.5, "coveragePct": 60}
            )
        ).json()
        snapshot = await provider.get_order(placed)
        assert snapshot.phase is RemotePhase.ACQUIRING
        assert snapshot.coverage_pct == 60.0
        (acquisition,) = await provider.list_acquisitions(placed)
        assert acquisition.refs["assetId"] == delivered["id"], (
            "the acquisition is an item of the delivered asset"
        )
        assert acquisition.cloud_cover == 3.5
        await console.post(f"/_sim/orders/{order_id}/deliveries", json={"cloudCover": 1.0, "coveragePct": 40})
        assert await phase_of(provider, placed) is RemotePhase.COMPLETED

        paid = (await console.get("/_sim/paid", params={"reference": request.reference})).json()
        assert paid == {"reference": request.reference, "paidOrderCount": 1, "acceptedQuotations": 1}
        calls = (await console.get("/_sim/calls", params={"method": "PATCH"})).json()["calls"]
        assert [c["status"] for c in calls] == [200, 403, 200]
        assert sum(1 for c in sim.core.calls if c.fault == "status") == 2
        await console.post("/_sim/tokens/expire")
        assert await phase_of(provider, placed) is RemotePhase.COMPLETED  # re-authenticated


async def test_unknown_and_recoverable_statuses_from_the_simulator(sim: Up42Simulator) -> None:
    provider = adapter(sim)
    placed = await provider.place_order(request_for(sim, "odd-status", **AUTO), CTX)
    sim.set_status(placed.tracking_key, "DOWNLOAD_FAILED", "FEASIBILITY_WAITING_UPLOAD")
    assert await phase_of(provider, placed) is RemotePhase.ACQUIRING
    sim.set_status(placed.tracking_key, "BRAND_NEW_STATUS")
    snapshot = await provider.get_order(placed)
    assert snapshot.phase is RemotePhase.ACQUIRING  # the previous meaning is kept
    assert snapshot.provider_status == "BRAND_NEW_STATUS"
