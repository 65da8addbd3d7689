"""UP42 delivery discovery against ``httpx.MockTransport`` with reference-shaped payloads: new
storage assets since the cursor, their STAC items (CNAM and older), original archives, the
extraction lag, stable hrefs only, and calls that do not grow with waiting orders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from providers import up42_payloads as p
from providers.test_up42_adapter import FakeUp42, reply

from worker.domain.ports import PlacedOrder
from worker.events.delivery import DeliveryEvent
from worker.events.models import Provider
from worker.events.stac_validation import validate_item
from worker.providers.up42 import Up42Provider

NOW = datetime(2026, 1, 10, tzinfo=UTC)
ORDERS = [PlacedOrder(tracking_key=p.ORDER_ID, refs={}), PlacedOrder(tracking_key=p.ORDER_2, refs={})]


def make(fake: FakeUp42) -> Up42Provider:
    async def no_sleep(delay: float) -> None:
        return None

    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    return Up42Provider(
        p.settings(base_url=p.API), p.http_settings(), client=client, sleep=no_sleep, wall_clock=lambda: NOW
    )


def search_of(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


def fc(*items: dict[str, Any], links: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(items), "links": links or []}


async def test_a_cnam_item_becomes_a_product_with_stable_hrefs_and_its_original_archive() -> None:
    fake = FakeUp42()
    fake.on(
        "GET",
        "/v2/assets",
        reply(200, p.assets_page([p.storage_asset(p.CNAM_ASSET, "2026-01-09T10:00:00Z")])),
    )
    fake.on("POST", "/v2/assets/stac/search", reply(200, fc(p.cnam_item())))
    fake.on("GET", f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}", reply(200, p.cnam_collection()))
    harvest = await make(fake).find_deliveries(ORDERS, None)
    (product,) = harvest.products
    assert product.item_id == p.CNAM_ITEM
    assert product.tracking_key == p.ORDER_ID
    assert product.properties["proj:code"] == "EPSG:32633"
    assert product.properties["eo:cloud_cover"] == 0.0
    assert product.properties["view:incidence_angle"] == 25.94
    assert product.refs == {"orderId": p.ORDER_ID, "collectionId": p.CNAM_COLLECTION, "assetId": p.CNAM_ASSET}
    assert product.source_ids == [p.CNAM_ITEM, "DS_PHR1A_202009301038498_FR1_PX_E013N52_0513_00365_R1C1"]
    keys = {a.key: a for a in product.assets}
    assert set(keys) == {"multispectral", "metadata", "archive"}, (
        "keys name what the asset is (not UP42's per-delivery file names); the signed URL is left "
        "out; the collection's original archive is added"
    )
    assert all(a.href.startswith(f"{p.API}/v2/assets/") for a in product.assets)
    assert keys["archive"].roles == ["data", "original"]
    assert keys["archive"].title == "Original Delivery"
    assert product.properties["platform"] == "pleiades-1a"
    assert product.properties["constellation"] == "pleiades"
    assert product.properties["up42:platform"] == "PHR-1A"
    assert product.properties["up42:constellation"] == "PHR"
    assert product.via == f"{p.API}/v2/assets/stac/collections/{p.CNAM_COLLECTION}/items/{p.CNAM_ITEM}"
    (asset_filter,) = [search_of(r)["filter"] for r in fake.sent("POST", "/v2/assets/stac/search")]
    assert asset_filter == {"op": "=", "args": [{"property": "asset_id"}, p.CNAM_ASSET]}
    item = DeliveryEvent(
        request_id="r-1", provider=Provider.UP42, product=product, occurred_at=NOW
    ).stac_item()
    validate_item(item)


async def test_an_older_item_keeps_its_single_data_asset_and_gets_a_bbox() -> None:
    fake = FakeUp42()
    fake.on(
        "GET",
        "/v2/assets",
        reply(200, p.assets_page([p.storage_asset(p.OLD_ASSET, "2026-01-09T10:00:00Z", order_id=None)])),
    )
    fake.on("POST", "/v2/assets/stac/search", reply(200, fc(p.old_item())))
    fake.on("GET", f"/v2/assets/stac/collections/{p.OLD_COLLECTION}", reply(200, {"id": p.OLD_COLLECTION}))
    (product,) = (await make(fake).find_deliveries(ORDERS, None)).products
    assert product.tracking_key == p.ORDER_2
    assert [(a.key, a.roles, a.media_type) for a in product.assets] == [("data", ["data"], "application/zip")]
    assert product.bbox is not None
    assert len(product.bbox) == 4
    validate_item(
        DeliveryEvent(request_id="r-2", provider=Provider.UP42, product=product, occurred_at=NOW).stac_item()
    )


async def test_items_of_orders_not_waiting_are_dropped_and_foreign_assets_are_not_searched() -> None:
    fake = FakeUp42()
    entries = [
        p.storage_asset(p.CNAM_ASSET, "2026-01-09T10:00:00Z", order_id=None),  # no orderId: searched
        p.storage_asset("foreign-asset", "2026-01-09T11:00:00Z", order_id="someone-elses-order"),
    ]
    fake.on("GET", "/v2/assets", reply(200, p.assets_page(entries)))
    fake.on("POST", "/v2/assets/stac/search", reply(200, fc(p.cnam_item())))
    fake.on("GET", f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}", reply(200, p.cnam_collection()))
    only_other = [PlacedOrder(tracking_key=p.ORDER_2, refs={})]
    harvest = await make(fake).find_deliveries(only_other, None)
    assert harvest.products == []
    (search,) = fake.sent("POST", "/v2/assets/stac/search")
    assert "foreign-asset" not in json.dumps(search_of(search))
    assert fake.sent("GET", f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}") == []


async def test_an_asset_still_extracting_stays_pending_and_is_found_next_cycle() -> None:
    fake = FakeUp42()
    asset = p.storage_asset(p.CNAM_ASSET, "2026-01-09T10:00:00Z", status="IN_PROGRESS")
    fake.on("GET", "/v2/assets", reply(200, p.assets_page([asset])), reply(200, p.assets_page([asset])))
    fake.on("POST", "/v2/assets/stac/search", reply(200, fc()), reply(200, fc(p.cnam_item())))
    fake.on("GET", f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}", reply(200, p.cnam_collection()))
    provider = make(fake)
    first = await provider.find_deliveries(ORDERS, None)
    assert first.products == []
    assert first.cursor is not None
    assert json.loads(first.cursor)["pending"] == {p.CNAM_ASSET: "2026-01-09T10:00:00Z"}
    second = await provider.find_deliveries(ORDERS, first.cursor)
    assert [x.item_id for x in second.products] == [p.CNAM_ITEM]
    assert second.cursor is not None
    assert json.loads(second.cursor)["pending"] == {}
    listing = fake.sent("GET", "/v2/assets")[1]
    assert listing.url.params["createdAfter"] == "2026-01-09T09:00:00.000Z", "an hour behind the mark"
    assert listing.url.params["sort"] == "createdAt,asc"


async def test_a_failed_extraction_is_delivered_as_its_archive_and_the_cursor_moves_on() -> None:
    fake = FakeUp42()
    asset = p.storage_asset(p.CNAM_ASSET, "2026-01-09T10:00:00Z", status="FAILED")
    fake.on("GET", "/v2/assets", reply(200, p.assets_page([asset])))
    harvest = await make(fake).find_deliveries(ORDERS, None)
    (product,) = harvest.products
    assert (product.item_id, product.tracking_key) == (p.CNAM_ASSET, p.ORDER_ID)
    (data,) = product.assets
    assert data.href == f"{p.API}/v2/assets/{p.CNAM_ASSET}"
    assert data.roles == ["data", "original"]
    assert data.size == 8123456
    assert "FAILED" in product.properties["tasking:note"]
    assert fake.sent("POST", "/v2/assets/stac/search") == [], "no items to look for"
    validate_item(
        DeliveryEvent(request_id="r-1", provider=Provider.UP42, product=product, occurred_at=NOW).stac_item()
    )
    assert harvest.cursor is not None
    assert json.loads(harvest.cursor) == {
        "after": "2026-01-09T10:00:00Z",
        "seen": {p.CNAM_ASSET: "2026-01-09T10:00:00Z"},
        "pending": {},
    }


async def test_an_asset_listed_late_with_an_older_creation_time_is_delivered_once() -> None:
    fake = FakeUp42()
    newer = p.storage_asset(p.OLD_ASSET, "2026-01-09T10:00:00Z", order_id="another-workspace-order")
    late = p.storage_asset(p.CNAM_ASSET, "2026-01-09T09:40:00Z")  # indexed after ``newer``
    fake.on(
        "GET",
        "/v2/assets",
        reply(200, p.assets_page([newer])),
        reply(200, p.assets_page([late, newer])),
        reply(200, p.assets_page([late, newer])),
    )
    fake.on("POST", "/v2/assets/stac/search", reply(200, fc(p.cnam_item())))
    fake.on("GET", f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}", reply(200, p.cnam_collection()))
    provider = make(fake)
    first = await provider.find_deliveries(ORDERS, None)
    assert first.products == []
    second = await provider.find_deliveries(ORDERS, first.cursor)
    assert [x.item_id for x in second.products] == [p.CNAM_ITEM], "the window behind the mark re-lists it"
    (search,) = [search_of(r)["filter"] for r in fake.sent("POST", "/v2/assets/stac/search")]
    assert search == {"op": "=", "args": [{"property": "asset_id"}, p.CNAM_ASSET]}
    third = await provider.find_deliveries(ORDERS, second.cursor)
    assert third.products == []
    assert len(fake.sent("POST", "/v2/assets/stac/search")) == 1, "both ids are in the cursor: not again"
    assert json.loads(third.cursor or "{}")["seen"] == {
        p.CNAM_ASSET: "2026-01-09T09:40:00Z",
        p.OLD_ASSET: "2026-01-09T10:00:00Z",
    }


async def test_a_collection_that_answers_404_affects_only_its_product_and_is_read_again() -> None:
    fake = FakeUp42()
    first_asset = p.storage_asset(p.CNAM_ASSET, "2026-01-09T10:00:00Z")
    other = p.storage_asset(p.OLD_ASSET, "2026-01-09T10:05:00Z", order_id=p.ORDER_2)
    fake.on("GET", "/v2/assets", reply(200, p.assets_page([first_asset, other])))
    other_item = {**p.cnam_item(), "id": "other-item", "collection": p.OLD_COLLECTION}
    other_item["properties"] = {
        **other_item["properties"],
        "up42-order:id": p.ORDER_2,
        "up42-system:asset_id": p.OLD_ASSET,
    }
    fake.on(
        "POST",
        "/v2/assets/stac/search",
        reply(200, fc(p.cnam_item(), other_item)),
        reply(200, fc(p.cnam_item())),
    )
    fake.on(
        "GET",
        f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}",
        reply(404, {"code": 404, "message": "not found"}),
        reply(200, p.cnam_collection()),
    )
    fake.on("GET", f"/v2/assets/stac/collections/{p.OLD_COLLECTION}", reply(200, p.cnam_collection()))
    provider = make(fake)
    first = await provider.find_deliveries(ORDERS, None)
    by_id = {x.item_id: x for x in first.products}
    assert set(by_id) == {p.CNAM_ITEM, "other-item"}, "the harvest goes on past the failed read"
    assert by_id[p.CNAM_ITEM].partial, "published without its original archive"
    assert not any("original" in a.roles for a in by_id[p.CNAM_ITEM].assets)
    assert not by_id["other-item"].partial
    assert any("original" in a.roles for a in by_id["other-item"].assets)
    assert json.loads(first.cursor or "{}")["pending"] == {p.CNAM_ASSET: "2026-01-09T10:00:00Z"}
    assert first.skipped == 1, "counted as a delivery error"
    second = await provider.find_deliveries(ORDERS, first.cursor)
    assert second.skipped == 0
    (whole,) = second.products
    assert whole.item_id == p.CNAM_ITEM
    assert not whole.partial
    assert any("original" in a.roles for a in whole.assets), "completed with the archive"
    assert json.loads(second.cursor or "{}")["pending"] == {}


async def test_a_finished_order_is_looked_up_directly_and_settled_once_every_asset_is_delivered() -> None:
    fake = FakeUp42()
    extracting = p.storage_asset(p.CNAM_ASSET, "2026-01-01T10:00:00Z", status="IN_PROGRESS")
    extracted = p.storage_asset(p.CNAM_ASSET, "2026-01-01T10:00:00Z")
    failed = p.storage_asset(p.OLD_ASSET, "2026-01-01T10:01:00Z", status="NOT_PROCESSED")

    def assets(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("search") != p.ORDER_ID:
            return reply(200, p.assets_page([]))  # the listing since the mark has nothing new
        listed = [extracting, failed] if len(fake.sent("GET", "/v2/assets")) <= 2 else [extracted, failed]
        return reply(200, p.assets_page(listed))

    fake.on("GET", "/v2/assets", assets)
    fake.on("POST", "/v2/assets/stac/search", reply(200, fc()), reply(200, fc(p.cnam_item())))
    fake.on("GET", f"/v2/assets/stac/collections/{p.CNAM_COLLECTION}", reply(200, p.cnam_collection()))
    finished = [PlacedOrder(tracking_key=p.ORDER_ID, refs={}, finished=True)]
    provider = make(fake)
    mark = '{"after": "2026-01-09T10:00:00Z", "seen": {}, "pending": {}}'
    first = await provider.find_deliveries(finished, mark)
    assert [x.item_id for x in first.products] == [p.OLD_ASSET], "the archive of the unprocessed asset"
    assert first.settled == {}, "one asset is still being extracted"
    second = await provider.find_deliveries(finished, first.cursor)
    assert {x.item_id for x in second.products} == {p.OLD_ASSET, p.CNAM_ITEM}
    assert second.settled == {p.ORDER_ID: [p.CNAM_ITEM, p.OLD_ASSET]}
    searched = [r.url.params.get("search") for r in fake.sent("GET", "/v2/assets")]
    assert searched.count(p.ORDER_ID) == 2, "looked up directly in both cycles"


async def test_a_finished_order_without_listed_assets_is_looked_up_with_backoff() -> None:
    fake = FakeUp42()
    fake.on("GET", "/v2/assets", reply(200, p.assets_page([])))
    clock = [NOW]

    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    provider = Up42Provider(
        p.settings(base_url=p.API), p.http_settings(), client=client, wall_clock=lambda: clock[0]
    )
    finished = [PlacedOrder(tracking_key=p.ORDER_ID, refs={}, finished=True)]
    cursor = None
    for seconds in (0, 10, 29, 30, 60, 89, 90):
        clock[0] = NOW + timedelta(seconds=seconds)
        cursor = (await provider.find_deliveries(finished, cursor)).cursor
    lookups = [r for r in fake.sent("GET", "/v2/assets") if r.url.params.get("search") == p.ORDER_ID]
    assert len(lookups) == 3, "at 0 s, then 30 s and 60 s later (the wait doubles)"


async def test_a_cycle_costs_pages_of_new_assets_not_calls_per_waiting_order() -> None:
    fake = FakeUp42()
    fake.on("GET", "/v2/assets", reply(200, p.assets_page([])))
    many = [PlacedOrder(tracking_key=f"order-{n}", refs={}) for n in range(10_000)]
    harvest = await make(fake).find_deliveries(
        many, '{"after": "2026-01-09T10:00:00Z", "seen": [], "pending": {}}'
    )
    assert harvest.products == []
    api_calls = [r for r in fake.requests if not r.url.path.endswith(("/token", "/userinfo"))]
    assert [(r.method, r.url.path) for r in api_calls] == [("GET", "/v2/assets")]


async def test_search_follows_next_links_and_batches_assets() -> None:
    fake = FakeUp42()
    entries = [p.storage_asset(f"asset-{n:03d}", f"2026-01-09T10:{n % 60:02d}:00Z") for n in range(60)]
    fake.on("GET", "/v2/assets", reply(200, p.assets_page(entries)))
    page_2 = {
        "rel": "next",
        "href": f"{p.API}/v2/assets/stac/search",
        "method": "POST",
        "body": {"token": "t2"},
    }
    fake.on(
        "POST", "/v2/assets/stac/search", reply(200, fc(links=[page_2])), reply(200, fc()), reply(200, fc())
    )
    await make(fake).find_deliveries(ORDERS, None)
    bodies = [search_of(r) for r in fake.sent("POST", "/v2/assets/stac/search")]
    assert len(bodies) == 3, "two batches of assets (50 + 10), the first with a second page"
    assert bodies[1]["token"] == "t2"
    assert bodies[1]["filter"] == bodies[0]["filter"]
    assert len(bodies[0]["filter"]["args"]) == 50
    assert bodies[0]["filter"]["op"] == "or"
