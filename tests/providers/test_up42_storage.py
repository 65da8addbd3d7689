"""UP42 storage in the simulator, and the adapter's delivery discovery against it: the STAC API
(catalog, search by every filter key, paging), the asset listing, downloads with Range, signed
URLs that expire, extraction lag and delivery faults."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from providers.test_up42_flows import adapter, request_for

from worker.domain.ports import OrderContext, PlacedOrder
from worker.events.delivery import DeliveryEvent
from worker.events.models import Provider
from worker.events.stac_validation import validate_item
from worker.simulators.up42 import Up42SimConfig, Up42Simulator
from worker.simulators.up42.storage import md5_multihash

AUTO = {"constraints": {"maxCloudCover": 15}}
BASE = "https://up42.sim"


@pytest.fixture
def sim() -> Up42Simulator:
    return Up42Simulator(config=Up42SimConfig(scenes_per_delivery=2, extraction_delay=600.0))


async def client_for(sim: Up42Simulator) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE)
    form = {
        "grant_type": "password",
        "username": sim.username,
        "password": sim.password,
        "client_id": "up42-api",
    }
    token = (await client.post("/realms/public/protocol/openid-connect/token", data=form)).json()[
        "access_token"
    ]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def placed_order(sim: Up42Simulator, reference: str) -> PlacedOrder:
    provider = adapter(sim)
    request = request_for(sim, reference, **AUTO)
    placed = await provider.place_order(request, OrderContext())
    await provider.aclose()
    return placed


def search(order_key: str, order_id: str) -> dict[str, Any]:
    return {"filter": {"op": "=", "args": [{"property": order_key}, order_id]}, "limit": 1}


async def test_items_appear_after_extraction_and_every_filter_key_is_served(sim: Up42Simulator) -> None:
    placed = await placed_order(sim, "storage-keys")
    asset = sim.deliver(placed.tracking_key, cloud_cover=2.0)
    client = await client_for(sim)
    listed = (await client.get("/v2/assets", params={"search": placed.tracking_key})).json()["content"]
    assert [a["geospatialMetadataExtractionStatus"] for a in listed] == ["IN_PROGRESS"]
    empty = (
        await client.post("/v2/assets/stac/search", json=search("up42-order:id", placed.tracking_key))
    ).json()
    assert empty["features"] == [], "no item before the extraction is done"
    sim.advance(601)
    by_id = (
        await client.post("/v2/assets/stac/search", json=search("up42-order:id", placed.tracking_key))
    ).json()
    by_alias = (
        await client.post("/v2/assets/stac/search", json=search("order_id", placed.tracking_key))
    ).json()
    by_old = (
        await client.post("/v2/assets/stac/search", json=search("up42-order:order_id", placed.tracking_key))
    ).json()
    assert len(by_id["features"]) == 1
    assert by_id["context"]["matched"] == 2
    assert by_id["features"] == by_alias["features"]
    assert by_old["features"] == [], "the old SDK key matches nothing"
    (next_link,) = by_id["links"]
    page_2 = await client.post(
        "/v2/assets/stac/search", json={**search("up42-order:id", placed.tracking_key), **next_link["body"]}
    )
    assert len(page_2.json()["features"]) == 1
    assert page_2.json()["features"][0]["id"] != by_id["features"][0]["id"]
    item = by_id["features"][0]
    assert item["properties"]["up42-system:asset_id"] == asset["id"]
    assert all(a["href"].startswith(f"{BASE}/v2/assets/") for a in item["assets"].values())
    catalog = (await client.get("/v2/assets/stac/")).json()
    assert "https://api.stacspec.org/v1.0.0/item-search" in catalog["conformsTo"]
    assert {link["rel"] for link in catalog["links"]} >= {"self", "root", "search"}
    collection = (await client.get(f"/v2/assets/stac/collections/{item['collection']}")).json()
    (original,) = collection["assets"].values()
    assert original["roles"] == ["data", "original"]
    await client.aclose()


async def test_downloads_answer_ranges_and_signed_urls_expire(sim: Up42Simulator) -> None:
    placed = await placed_order(sim, "storage-download")
    asset = sim.deliver(placed.tracking_key, cloud_cover=2.0)
    client = await client_for(sim)
    whole = await client.get(f"/v2/assets/{asset['id']}")
    assert whole.status_code == 200
    assert whole.content == sim.storage.content(asset["id"], len(whole.content))
    assert whole.content.startswith(b"PK"), "the original delivery is a zip (DIMAP bundle)"
    part = await client.get(f"/v2/assets/{asset['id']}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"
    assert part.content == whole.content[10:20]
    tail = await client.get(f"/v2/assets/{asset['id']}", headers={"Range": "bytes=-5"})
    assert tail.content == whole.content[-5:]
    beyond = await client.get(f"/v2/assets/{asset['id']}", headers={"Range": f"bytes={len(whole.content)}-"})
    assert beyond.status_code == 416
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE)
    assert (await anonymous.get(f"/v2/assets/{asset['id']}")).status_code == 401
    url = (await client.post(f"/v2/assets/{asset['id']}/download-url")).json()["url"]
    assert "Signature=" in url
    assert (await anonymous.get(url)).content == whole.content, "a signed URL needs no token"
    sim.advance(31)
    assert (await anonymous.get(url)).status_code == 400, "a signed URL lives only seconds"
    await anonymous.aclose()
    await client.aclose()


async def test_discovery_finds_every_item_once_and_faults_hold_items_back(sim: Up42Simulator) -> None:
    good = await placed_order(sim, "storage-good")
    held = await placed_order(sim, "storage-held")
    sim.fault_deliveries("storage-held", "missing")
    first = sim.deliver(good.tracking_key, cloud_cover=1.0)
    sim.deliver(held.tracking_key, cloud_cover=1.0)
    provider = adapter(sim)
    waiting = [good, held]
    harvest = await provider.find_deliveries(waiting, None)
    assert harvest.products == [], "still extracting"
    sim.advance(601)
    harvest = await provider.find_deliveries(waiting, harvest.cursor)
    assert sorted(p.tracking_key for p in harvest.products) == [good.tracking_key] * 2
    for product in harvest.products:
        assert product.refs["assetId"] == first["id"]
        keys = {a.key: a for a in product.assets}
        original = next(a for a in keys.values() if "original" in a.roles)
        assert original.checksum == md5_multihash(sim.storage.content(first["id"], original.size or 0))
        event = DeliveryEvent(
            request_id="r", provider=Provider.UP42, product=product, occurred_at=sim.core.clock.now()
        )
        validate_item(event.stac_item())
    again = await provider.find_deliveries(waiting, harvest.cursor)
    assert again.products == [], "nothing new since the cursor"
    assert sim.release_deliveries("storage-held") == 1
    released = await provider.find_deliveries(waiting, again.cursor)
    assert sorted(p.tracking_key for p in released.products) == [held.tracking_key] * 2
    from_scratch = await provider.find_deliveries(waiting, None)
    assert len(from_scratch.products) == 4, "a harvest without a cursor looks back over everything"
    await provider.aclose()
