"""OneAtlas delivered products: workspaces, the opensearch harvest and the item mapping.

Against ``httpx.MockTransport`` with the recorded answer shapes (``oneatlas_delivery_payloads``),
then against the simulator (orders placed, acquired and delivered on its clock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from providers import oneatlas_delivery_payloads as dp
from providers import oneatlas_payloads as oa
from providers.test_oneatlas_adapter import FakeApi, make
from providers.test_oneatlas_flows import DAY, HOST, drive, order_request, provider_for

from worker.domain.ports import PlacedOrder
from worker.errors import ProviderProtocolError
from worker.events.delivery import DeliveryEvent
from worker.events.models import AcquisitionStatus, Provider
from worker.events.stac_validation import validate_item
from worker.providers.oneatlas import OneAtlasProvider
from worker.providers.oneatlas.delivery import (
    CURSOR_OVERLAP_SECONDS,
    decode_cursor,
    encode_cursor,
    product_from,
)
from worker.simulators.oneatlas import DEFAULT_CONTRACTS, OneAtlasSimulator, SimContract

SEARCH_PATH = "/api/v2/opensearch"
LEGACY_ORDER = PlacedOrder(
    tracking_key="SAL21400001", refs={"salesOrderId": "SAL21400001", "customerReference": "ref-legacy-1"}
)
NEO_ORDER = PlacedOrder(
    tracking_key="QUO21000077",
    refs={
        "quotationId": "QUO21000077",
        "salesOrderId": "SAL22005365",
        "customerReference": "EXT_Key_West_QC",
    },
)


def delivery_provider(fake: FakeApi, **settings: Any) -> Any:
    values = {"search_url": dp.SEARCH_URL, "data_url": dp.DATA_URL, **settings}
    return make(fake, **values)


def searches(fake: FakeApi) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in fake.api("POST", SEARCH_PATH)]


# ============================================================================= item mapping


def test_recorded_pneo_item_becomes_a_product() -> None:
    product = product_from(dp.PNEO_ITEM, "QUO21000077")
    assert product.item_id == dp.PNEO_ID
    assert product.tracking_key == "QUO21000077"
    assert product.source_ids == ["ACQ_PNEO4_00936001144780"]
    assert product.refs["salesOrderId"] == "SAL22005365"
    assert product.refs["commercialReference"] == "WO_000007286_1"
    assert product.refs["customerReference"] == "EXT_Key_West_QC"
    assert product.properties["expires"] == "2023-01-24T14:13:43.343Z"
    assert product.properties["eo:cloud_cover"] == 0.0
    assert product.properties["view:incidence_angle"] == 8.09
    assert product.properties["gsd"] == 0.3
    assert product.properties["platform"] == "pleiades-neo-4"
    assert product.properties["constellation"] == "pleiades-neo"
    assert product.properties["instruments"] == ["pneo-imager"]
    assert product.properties["oneatlas:platform"] == "PNEO4"
    assert product.properties["processing:level"] == "ORTHO"
    assert product.datetime is not None
    assert product.datetime.isoformat().startswith("2021-12-29T16:14:49")
    assert product.bbox == pytest.approx([-81.8389, 24.5249, -81.7639, 24.6058])
    data = next(a for a in product.assets if "data" in a.roles)
    assert data.href == f"{dp.ACCESS}/{dp.PNEO_ID}/download"
    assert data.title == "WO_000007286_1_SAL22005365-1_ACQ_PNEO4_00936001144780.zip"
    assert data.media_type == "application/zip"
    assert data.needs_auth
    assert {a.key for a in product.assets} == {"data", "overview", "metadata"}
    assert product.via == f"{dp.SEARCH}/api/v1/opensearch?id={dp.PNEO_ID}"


def test_download_array_takes_the_https_entry_and_image_arrays_give_one_asset_each() -> None:
    product = product_from(dp.pneo_item_array(), "QUO1")
    data = next(a for a in product.assets if a.key == "data")
    assert data.href.startswith("https://access.foundation.api.oneatlas.airbus.com/")
    assert product.source_ids == ["ACQ_PNEO3_00937001200111"]
    metadata = sorted(a.key for a in product.assets if "metadata" in a.roles)
    assert metadata == ["metadata-multispectral", "metadata-panchromatic"]


def test_legacy_item_joins_by_its_datastrip() -> None:
    product = product_from(dp.legacy_item(), "SAL21400001")
    assert product.source_ids == ["DS_PHR1B_202110061046538_FR1_PX_W106N39_1124_00592"]
    assert product.assets[0].title == "PHR1B_acq20211006_del7c1e7711.zip"


@pytest.mark.parametrize(
    "feature", [dp.PNEO_ITEM, dp.pneo_item_array(), dp.legacy_item()], ids=["pneo", "pneo-arrays", "legacy"]
)
def test_products_publish_as_valid_stac_items(feature: dict[str, Any]) -> None:
    product = product_from(feature, "K")
    event = DeliveryEvent(
        request_id="req-1", provider=Provider.ONEATLAS, product=product, occurred_at=datetime.now(UTC)
    )
    item = event.stac_item()
    validate_item(item)
    assert item["properties"]["expires"] == product.properties["expires"]
    assert item["assets"]["data"]["auth:refs"] == ["oneatlas"]


def test_an_item_with_only_an_ftpes_link_is_refused() -> None:
    item = dp.pneo_item_array()
    item["_links"]["download"] = item["_links"]["download"][:1]
    with pytest.raises(ProviderProtocolError, match="no https download link"):
        product_from(item, "QUO1")


# ============================================================================= harvest (mock)


async def test_legacy_workspace_comes_from_me_and_the_harvest_ranges_from_the_cursor() -> None:
    fake = FakeApi()
    fake.on("GET", "/api/v1/me", (200, dp.ME))
    first = [dp.legacy_item(), dp.legacy_item("other-1", sales_order="SAL99999999", reference="someone-else")]
    fake.on(
        "POST",
        SEARCH_PATH,
        (200, dp.search_answer(first, 0, 500, 2)),
        (200, dp.search_answer([], 0, 500, 0)),
    )
    provider = delivery_provider(fake, workspace_id=None)
    harvest = await provider.find_deliveries([LEGACY_ORDER], None)
    assert [p.item_id for p in harvest.products] == ["0c4b1f3e-2222-4333-8444-555566667777"]
    assert harvest.products[0].tracking_key == "SAL21400001"
    me = fake.api("GET", "/api/v1/me")
    assert len(me) == 1
    assert me[0].url.host == "data.oneatlas.test"
    assert me[0].headers["authorization"].startswith("Bearer ")
    body = searches(fake)[0]
    assert fake.api("POST", SEARCH_PATH)[0].url.host == "search.oneatlas.test"
    assert body == {
        "workspace": dp.LEGACY_WORKSPACE,
        "sortBy": "lastUpdateDate",
        "itemsPerPage": 500,
        "startPage": 1,
    }
    assert decode_cursor(harvest.cursor)[dp.LEGACY_WORKSPACE].isoformat().startswith("2026-03-02T10:00:00")

    again = await provider.find_deliveries([LEGACY_ORDER], harvest.cursor)
    assert again.products == []
    second = searches(fake)[1]
    mark = decode_cursor(harvest.cursor)[dp.LEGACY_WORKSPACE] - timedelta(seconds=CURSOR_OVERLAP_SECONDS)
    assert second["lastUpdateDate"] == f"[{mark.isoformat(timespec='milliseconds').replace('+00:00', 'Z')},]"
    assert len(fake.api("GET", "/api/v1/me")) == 1, "the workspace is resolved once"


async def test_configured_workspace_is_used_without_asking_me() -> None:
    fake = FakeApi()
    fake.on("POST", SEARCH_PATH, (200, dp.search_answer([], 0, 500, 0)))
    provider = delivery_provider(fake)
    await provider.find_deliveries([LEGACY_ORDER], None)
    assert fake.api("GET", "/api/v1/me") == []
    assert searches(fake)[0]["workspace"] == oa.WORKSPACE


@pytest.mark.parametrize("workspace", [dp.NEO_WORKSPACE_NAME, dp.NEO_WORKSPACE_ID])
async def test_neo_workspace_comes_from_the_contract_by_name_or_id(workspace: str) -> None:
    fake = FakeApi()
    fake.on("GET", "/api/v1/contracts", (200, dp.contracts(oa.NEO_CONTRACT, workspace)))
    fake.on("POST", SEARCH_PATH, (200, dp.search_answer([dp.PNEO_ITEM], 0, 500, 1)))
    provider = delivery_provider(fake)
    harvest = await provider.find_deliveries([NEO_ORDER], None)
    assert searches(fake)[0]["workspace"] == workspace
    assert fake.api("GET", "/api/v1/contracts")[0].url.host == "order.api.oneatlas.test"
    assert [(p.item_id, p.tracking_key) for p in harvest.products] == [(dp.PNEO_ID, "QUO21000077")]


async def test_neo_order_without_a_sales_order_yet_matches_by_customer_reference() -> None:
    fake = FakeApi()
    fake.on("GET", "/api/v1/contracts", (200, dp.contracts(oa.NEO_CONTRACT, dp.NEO_WORKSPACE_ID)))
    fake.on("POST", SEARCH_PATH, (200, dp.search_answer([dp.PNEO_ITEM], 0, 500, 1)))
    order = PlacedOrder(tracking_key="QUO21000078", refs={"customerReference": "EXT_Key_West_QC"})
    harvest = await delivery_provider(fake).find_deliveries([order], None)
    assert [p.tracking_key for p in harvest.products] == ["QUO21000078"]


async def test_contract_without_a_delivery_workspace_is_a_protocol_error() -> None:
    fake = FakeApi()
    answer = dp.contracts(oa.NEO_CONTRACT, dp.NEO_WORKSPACE_ID)
    answer["contracts"][1]["delivery"] = []
    fake.on("GET", "/api/v1/contracts", (200, answer))
    with pytest.raises(ProviderProtocolError, match="deliveryWorkspace"):
        await delivery_provider(fake).find_deliveries([NEO_ORDER], None)


def ranged_search(items: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """The opensearch over ``items`` (sorted by ``lastUpdateDate``), honouring a ``[T,]`` range
    and ``startPage``; ``items`` may change between calls (a deletion)."""

    def page(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        wanted = body.get("lastUpdateDate")
        since = wanted[1:-2] if isinstance(wanted, str) else None
        matching = [i for i in items if since is None or i["properties"]["lastUpdateDate"] >= since]
        start = (body["startPage"] - 1) * body["itemsPerPage"]
        chunk = matching[start : start + body["itemsPerPage"]]
        return httpx.Response(200, json=dp.search_answer(chunk, start, body["itemsPerPage"], len(matching)))

    return page


def paged_provider(fake: FakeApi) -> OneAtlasProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    return OneAtlasProvider(
        oa.settings(search_url=dp.SEARCH_URL, data_url=dp.DATA_URL),
        oa.http_settings(),
        client=client,
        delivery_page_size=2,
    )


async def test_harvest_pages_through_every_result() -> None:
    items = [dp.legacy_item(f"item-{i}", updated=f"2026-03-02T10:00:0{i}.000Z") for i in range(5)]
    fake = FakeApi()
    fake.on("POST", SEARCH_PATH, ranged_search(items))
    harvest = await paged_provider(fake).find_deliveries([LEGACY_ORDER], None)
    assert sorted(p.item_id for p in harvest.products) == [f"item-{i}" for i in range(5)]
    bodies = searches(fake)
    assert all(b["itemsPerPage"] == 2 for b in bodies)
    assert "lastUpdateDate" not in bodies[0]
    assert [b.get("lastUpdateDate") for b in bodies[1:]] == [
        f"[2026-03-02T10:00:0{i}.000Z,]" for i in (1, 2, 3, 4)
    ], "each page ranges again from the last date seen"
    assert all(b["startPage"] == 1 for b in bodies)


async def test_a_deletion_during_a_full_harvest_does_not_skip_an_item() -> None:
    """A new owner's full harvest after a rebalance pages through the whole workspace; a product
    removed meanwhile must not shift an unseen one onto a page already read."""
    items = [dp.legacy_item(f"item-{i}", updated=f"2026-03-02T10:00:0{i}.000Z") for i in range(5)]
    search = ranged_search(items)

    def deleting(request: httpx.Request) -> httpx.Response:
        answer = search(request)
        if len(fake.api("POST", SEARCH_PATH)) == 1:
            del items[0]  # removed (expired) right after the first page was read
        return answer

    fake = FakeApi()
    fake.on("POST", SEARCH_PATH, deleting)
    harvest = await paged_provider(fake).find_deliveries([LEGACY_ORDER], None)
    assert sorted(p.item_id for p in harvest.products) == [f"item-{i}" for i in range(5)]


async def test_a_malformed_item_is_skipped_not_fatal() -> None:
    broken = dp.legacy_item("broken")
    broken["_links"].pop("download")
    fake = FakeApi()
    fake.on("POST", SEARCH_PATH, (200, dp.search_answer([broken, dp.legacy_item()], 0, 500, 2)))
    harvest = await delivery_provider(fake).find_deliveries([LEGACY_ORDER], None)
    assert [p.item_id for p in harvest.products] == ["0c4b1f3e-2222-4333-8444-555566667777"]


async def test_no_orders_means_no_calls() -> None:
    fake = FakeApi()
    harvest = await delivery_provider(fake).find_deliveries([], "keep")
    assert harvest.cursor == "keep"
    assert fake.requests == []


async def test_order_products_search_by_sales_order_id() -> None:
    fake = FakeApi()
    fake.on("POST", SEARCH_PATH, (200, dp.search_answer([dp.legacy_item()], 0, 500, 1)))
    products = await delivery_provider(fake).order_products(LEGACY_ORDER)
    assert [p.item_id for p in products] == ["0c4b1f3e-2222-4333-8444-555566667777"]
    assert searches(fake)[0]["internalReference"] == "SAL21400001"
    assert searches(fake)[0]["workspace"] == oa.WORKSPACE


# ============================================================================= simulator


async def test_legacy_deliveries_follow_validated_segments_after_the_delay() -> None:
    sim = OneAtlasSimulator(delivery_delay=2 * DAY, product_size=4096)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-d1"))
    validated = [a for a in flow.acquisitions if a.status is AcquisitionStatus.VALIDATED]
    assert validated
    sim.advance(2 * DAY)
    harvest = await provider.find_deliveries([flow.placed], None)
    assert len(harvest.products) == len(validated)
    joins = {a.refs["catalogId"] for a in validated}
    assert {p.source_ids[0] for p in harvest.products} == joins
    assert all(p.tracking_key == flow.placed.tracking_key for p in harvest.products)
    assert all(p.assets[0].href.endswith("/download") for p in harvest.products)

    searched = sim.core.count("POST", SEARCH_PATH)
    again = await provider.find_deliveries([flow.placed], harvest.cursor)
    # Only what lies within the overlap before the mark comes back (the caller dedupes it).
    mark = max(decode_cursor(harvest.cursor).values())
    overlap = mark - timedelta(seconds=CURSOR_OVERLAP_SECONDS)
    assert {p.item_id for p in again.products} <= {p.item_id for p in harvest.products}
    assert all(p.updated_at is not None and p.updated_at >= overlap for p in again.products)
    assert len(again.products) < len(harvest.products)
    assert sim.core.count("POST", SEARCH_PATH) == searched + 1


async def test_neo_deliveries_join_coverage_items_and_the_workspace_can_be_a_name() -> None:
    legacy, neo = DEFAULT_CONTRACTS
    named = SimContract(
        neo.contract_id, "neo", neo.workspace, workspace_name="sim-neo", workspace_listed_by_name=True
    )
    sim = OneAtlasSimulator(
        contracts=[legacy, named], neo_auto_accept=True, delivery_delay=DAY, product_size=4096
    )
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADESNEO", "ONEPLAN", ref="ref-d2"))
    sim.advance(DAY)
    harvest = await provider.find_deliveries([flow.placed], None)
    archive_ids = {a.refs["archiveId"] for a in flow.acquisitions if a.status is AcquisitionStatus.VALIDATED}
    assert archive_ids
    assert {p.source_ids[0] for p in harvest.products} == archive_ids
    assert {p.tracking_key for p in harvest.products} == {flow.placed.tracking_key}
    assert sim.core.calls[-1].body["workspace"] == "sim-neo"


async def test_withheld_acquisitions_make_a_partial_delivery_until_released() -> None:
    sim = OneAtlasSimulator(delivery_delay=DAY, product_size=4096)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-d3"))
    validated = [a.id for a in flow.acquisitions if a.status is AcquisitionStatus.VALIDATED]
    sim.plan_delivery("ref-d3", withhold=validated[:1])
    sim.advance(DAY)
    partial = await provider.find_deliveries([flow.placed], None)
    assert len(partial.products) == len(validated) - 1
    sim.plan_delivery("ref-d3", release=True)
    complete = await provider.find_deliveries([flow.placed], partial.cursor)
    seen = {p.item_id for p in partial.products}
    released = [p for p in complete.products if p.item_id not in seen]
    assert len(released) == 1, "the released product is new since the cursor"
    assert released[0].source_ids == [
        next(a.refs["catalogId"] for a in flow.acquisitions if a.id == validated[0])
    ]


async def test_a_product_released_late_enters_the_catalogue_when_released() -> None:
    """Not back-dated to its due time: a harvest whose cursor moved past that time (other
    orders' products) still finds it."""
    sim = OneAtlasSimulator(delivery_delay=30 * DAY, product_size=4096)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-d5"))
    sim.plan_delivery("ref-d5", withhold_all=True)
    sim.advance(40 * DAY)  # long past the products' due time
    assert (await provider.find_deliveries([flow.placed], None)).products == []
    released_at = sim.core.clock.now()
    cursor = encode_cursor({DEFAULT_CONTRACTS[0].workspace: released_at})
    sim.plan_delivery("ref-d5", release=True)
    delivered = sim.delivered("ref-d5")
    assert delivered
    since = released_at - timedelta(seconds=1)  # the times are given to the second
    assert all(datetime.fromisoformat(p["publishedAt"]) >= since for p in delivered)
    harvest = await provider.find_deliveries([flow.placed], cursor)
    assert {p.item_id for p in harvest.products} == {p["id"] for p in delivered}


async def test_simulator_download_head_checksum_and_ranges() -> None:
    sim = OneAtlasSimulator(delivery_delay=0.0, product_size=10_000)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-d4"))
    product = (await provider.find_deliveries([flow.placed], None)).products[0]
    token = await provider.tokens.get()
    auth = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HOST) as client:
        head = await client.head(product.assets[0].href, headers=auth)
        full = await client.get(product.assets[0].href, headers=auth)
        part = await client.get(product.assets[0].href, headers={**auth, "range": "bytes=9000-"})
        unauthorised = await client.get(product.assets[0].href)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-ads-checksum-method"] == "md5"
    assert head.headers["x-ads-checksum-value"] == hashlib.md5(full.content).hexdigest()
    assert int(head.headers["content-length"]) == len(full.content) == 10_000
    assert part.status_code == 206
    assert part.content == full.content[9000:]
    assert part.headers["content-range"] == "bytes 9000-9999/10000"
    assert unauthorised.status_code == 401


async def test_operator_controls_delay_or_withhold_an_orders_deliveries() -> None:
    sim = OneAtlasSimulator(delivery_delay=DAY, product_size=4096)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-d5"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HOST) as client:
        answer = await client.post("/_sim/orders/ref-d5/delivery", json={"withholdAll": True})
        assert answer.status_code == 200
        sim.advance(5 * DAY)
        assert (await provider.find_deliveries([flow.placed], None)).products == [], "a missing delivery"
        await client.post(
            "/_sim/orders/ref-d5/delivery", json={"withholdAll": False, "delaySeconds": 30 * DAY}
        )
        assert (await provider.find_deliveries([flow.placed], None)).products == [], "a late delivery"
        sim.advance(30 * DAY)
        assert (await provider.find_deliveries([flow.placed], None)).products
        listed = (await client.get("/_sim/deliveries")).json()["products"]
    assert {p["acquisitionId"] for p in listed} == {
        a.id for a in flow.acquisitions if a.status is AcquisitionStatus.VALIDATED
    }


async def test_simulator_search_by_get_on_both_paths_and_by_sales_order() -> None:
    sim = OneAtlasSimulator(delivery_delay=0.0, product_size=4096)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "SPOT", "ONEPLAN", ref="ref-d6"))
    token = await provider.tokens.get()
    auth = {"authorization": f"Bearer {token}"}
    sales_order = flow.placed.tracking_key
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HOST) as client:
        v1 = await client.get(
            "/api/v1/opensearch",
            params={
                "workspace": LEGACY_WS,
                "itemsPerPage": "1",
                "startPage": "1",
                "sortBy": "-publicationDate",
            },
            headers=auth,
        )
        v2 = await client.get("/api/v2/opensearch", params={"internalReference": sales_order}, headers=auth)
        other = await client.post("/api/v2/opensearch", json={"internalReference": "SAL0"}, headers=auth)
        too_big = await client.post("/api/v2/opensearch", json={"itemsPerPage": 501}, headers=auth)
    page = v1.json()
    assert page["error"] is False
    assert page["type"] == "FeatureCollection"
    assert page["startIndex"] == 0
    assert len(page["features"]) == 1
    assert page["totalResults"] == len(v2.json()["features"]) >= 1
    assert all(f["properties"]["internalReference"] == sales_order for f in v2.json()["features"])
    dates = [f["properties"]["publicationDate"] for f in v2.json()["features"]]
    assert page["features"][0]["properties"]["publicationDate"] == max(dates)
    assert isinstance(page["features"][0]["_links"]["download"], dict), "legacy items: an object"
    assert other.json()["totalResults"] == 0
    assert too_big.status_code == 400
    products = await provider.order_products(flow.placed)
    assert {p.item_id for p in products} == {f["properties"]["id"] for f in v2.json()["features"]}


LEGACY_WS = DEFAULT_CONTRACTS[0].workspace


async def test_a_cycle_costs_pages_of_new_items_not_calls_per_order() -> None:
    orders = [
        PlacedOrder(tracking_key=f"SAL2140{i:04d}", refs={"salesOrderId": f"SAL2140{i:04d}"})
        for i in range(5000)
    ]
    items = [dp.legacy_item(f"item-{i}", sales_order=f"SAL2140{i:04d}") for i in (7, 4242, 4999)]
    fake = FakeApi()
    fake.on("POST", SEARCH_PATH, (200, dp.search_answer(items, 0, 500, 3)))
    harvest = await delivery_provider(fake).find_deliveries(orders, None)
    assert sorted(p.tracking_key for p in harvest.products) == ["SAL21400007", "SAL21404242", "SAL21404999"]
    assert len(fake.api()) == 1, "one search for the page of new items, whatever the number of orders"


async def test_a_failing_search_is_retried_by_the_harvest() -> None:
    sim = OneAtlasSimulator(delivery_delay=0.0, product_size=4096)
    provider = provider_for(sim)
    flow = await drive(sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-d7"))
    sim.inject({"kind": "status", "path": SEARCH_PATH, "status": 503, "times": 2})
    harvest = await provider.find_deliveries([flow.placed], None)
    assert harvest.products
    assert sim.core.count("POST", SEARCH_PATH, status_ok=False) == sim.core.count("POST", SEARCH_PATH) + 2


async def test_an_account_without_a_workspace_is_a_protocol_error() -> None:
    fake = FakeApi()
    fake.on("GET", "/api/v1/me", (200, {**dp.ME, "contract": {"id": "x"}}))
    with pytest.raises(ProviderProtocolError, match="workspaceId"):
        await delivery_provider(fake, workspace_id=None).find_deliveries([LEGACY_ORDER], None)
    assert fake.api("POST", SEARCH_PATH) == []
