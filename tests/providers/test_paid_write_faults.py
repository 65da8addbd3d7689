"""The paid-write fault switches of both simulators, driven through the real adapters: an answer
lost past the client's timeout and the re-send refused as a duplicate reference, a 2xx whose body
is an HTML maintenance page, and a listing that shows a new order only after a lag."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from providers.test_oneatlas_flows import order_request, prepare, provider_for
from providers.test_up42_flows import AUTO, CTX, adapter, request_for

from worker.errors import OutcomeUnknown, ProviderRejected
from worker.simulators.common import Fault
from worker.simulators.oneatlas import OneAtlasSimulator
from worker.simulators.up42.app import Up42SimConfig, Up42Simulator


async def test_oneatlas_lost_answer_then_the_re_send_is_refused_as_a_duplicate_reference() -> None:
    sim = OneAtlasSimulator(duplicate_reference_status=409, listing_lag=30.0)
    provider = provider_for(sim)
    req = order_request(sim, ref="dup-1")
    ctx = await prepare(provider, req)
    sim.inject(Fault("lost_response", path="/api/v1/orders", method="POST"))
    with pytest.raises(OutcomeUnknown):
        await provider.place_order(req, ctx)
    assert await provider.find_order(req) is None  # the listing lags behind
    with pytest.raises(ProviderRejected) as refused:
        await provider.place_order(req, ctx)
    assert refused.value.status_code == 409
    assert "already used" in refused.value.message
    assert sim.paid_order_count("dup-1") == 1


async def test_oneatlas_listing_shows_a_new_order_only_after_the_lag() -> None:
    sim = OneAtlasSimulator(listing_lag=0.3)
    provider = provider_for(sim)
    for mission, ref in (("PLEIADES", "lag-legacy"), ("PLEIADESNEO", "lag-neo")):
        req = order_request(sim, mission, ref=ref)
        placed = await provider.place_order(req, await prepare(provider, req))
        assert await provider.find_order(req) is None
        await asyncio.sleep(0.35)
        found = await provider.find_order(req)
        assert found is not None
        assert found.tracking_key == placed.tracking_key
        assert found.identity  # what the listing states about it, for the adoption check


async def test_oneatlas_html_on_a_2xx_placement_is_an_unknown_outcome_and_the_order_exists() -> None:
    sim = OneAtlasSimulator()
    provider = provider_for(sim)
    req = order_request(sim, ref="html-1")
    ctx = await prepare(provider, req)
    sim.inject(Fault("html_success", path="/api/v1/orders", method="POST"))
    with pytest.raises(OutcomeUnknown):
        await provider.place_order(req, ctx)
    assert sim.paid_order_count("html-1") == 1
    found = await provider.find_order(req)
    assert found is not None


async def test_up42_lost_answer_then_the_re_send_is_refused_as_a_duplicate() -> None:
    sim = Up42Simulator(config=Up42SimConfig())
    sim.duplicate_reference_status = 409
    sim.listing_lag = 30.0
    provider = adapter(sim, timeout=0.3)
    request = request_for(sim, "up-dup-1", **AUTO)
    sim.inject(Fault("lost_response", path="/v2/orders", method="POST", delay=5.0))
    with pytest.raises(OutcomeUnknown):
        await provider.place_order(request, CTX)
    assert await provider.find_order(request) is None  # not listed yet
    with pytest.raises(ProviderRejected) as refused:
        await provider.place_order(request, CTX)
    assert refused.value.status_code == 409
    assert sim.paid_order_count(request.reference) == 1


async def test_up42_listing_lag_and_html_success() -> None:
    sim = Up42Simulator(config=Up42SimConfig())
    sim.listing_lag = 0.3
    provider = adapter(sim)
    request = request_for(sim, "up-html-1", **AUTO)
    sim.inject(Fault("html_success", path="/v2/orders", method="POST"))
    with pytest.raises(OutcomeUnknown):
        await provider.place_order(request, CTX)
    assert sim.paid_order_count(request.reference) == 1
    assert await provider.find_order(request) is None
    await asyncio.sleep(0.35)
    found = await provider.find_order(request)
    assert found is not None
    assert found.tracking_key in sim.orders


async def test_both_simulators_set_the_switches_over_http_and_refuse_nonsense() -> None:
    for sim in (OneAtlasSimulator(), Up42Simulator(config=Up42SimConfig())):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
        ) as client:
            answer = await client.post(
                "/_sim/paid-write-faults", json={"listingLag": 2.5, "duplicateReferenceStatus": 409}
            )
            assert answer.status_code == 200
            assert answer.json() == {"listingLag": 2.5, "duplicateReferenceStatus": 409}
            assert (sim.listing_lag, sim.duplicate_reference_status) == (2.5, 409)
            bad = await client.post("/_sim/paid-write-faults", json={"duplicateReferenceStatus": 200})
            assert bad.status_code == 400
            assert sim.duplicate_reference_status == 409
