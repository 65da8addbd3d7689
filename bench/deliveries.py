"""Delivery harvest cost: provider calls and CPU per cycle with 10,000 orders waiting for delivery.

The worker's :class:`~worker.runtime.deliveries.DeliveryHarvester` cycle, built as ``worker.app``
builds it (``waiting`` = store index entries of orders waiting for delivery), runs against a real
adapter whose HTTP client is answered in-process (``httpx.MockTransport``) with reference-shaped
pages. Each product is handed to a counting ``deliver`` (applying it to an order is one state
step, measured by the latency section). Two cycles are measured per provider:

* quiet: nothing new since the cursor (the steady state of 10,000 waiting orders);
* busy: ``new`` products arrived since the cursor, for orders among the waiting ones.

UP42: ``GET /v2/assets`` pages of the assets created since the cursor, ``POST
/v2/assets/stac/search`` answers with the items of the searched assets, and the collections'
original archives; one item per new asset.

OneAtlas: 10,000 orders, half SPOT/Pléiades (``legacy``, keyed by sales order id) and half
Pléiades Neo (keyed by quotation id; a quarter of them before their sales order id is known, so
their items match by customer reference). The workspaces come from ``GET /api/v1/me`` (legacy) and
``GET /api/v1/contracts`` (neo), resolved once per adapter in a cycle run before the measured one;
``POST /api/v2/opensearch`` answers each workspace's items updated in the requested
``lastUpdateDate`` range, oldest first, 500 a page. Busy: the new products plus one item in ten of
orders that are not waiting (other orders of the workspace), so the harvest keeps only the owned
orders' items.

The figure is the worker's CPU per cycle including the adapter's (HTTP client, JSON, mapping); the
provider's serving is in-process, kept small (bodies assembled from items serialised once).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import HttpUrl, SecretStr

from worker.config import HttpClientSettings, OneAtlasSettings, Up42Settings
from worker.domain.model import Phase
from worker.domain.ports import TaskingProvider
from worker.events.models import Provider
from worker.events.products import DeliveredProduct
from worker.events.status import OrderStatus
from worker.kafka.statecodec import OrderIndex
from worker.providers.oneatlas import OneAtlasProvider
from worker.providers.up42 import Up42Provider
from worker.runtime.deliveries import DeliveryHarvester

API = "https://api.up42.bench"
AUTH = "https://auth.up42.bench/realms/public/protocol/openid-connect/token"
WORKSPACE = "7f3c2b1a-9d8e-4c6f-a5b4-3e2d1c0b9a87"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = {"access_token": "bench-token", "expires_in": 3600, "token_type": "Bearer"}


@dataclass
class CycleResult:
    waiting: int
    new: int
    cpu: float
    wall: float
    calls: dict[str, int]
    products: int

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass
class Bench:
    """One provider's side of a measured cycle: the adapter over an in-process provider whose
    ``calls`` count the requests, the waiting orders' index entries and the previous cycle's
    cursor. ``warm_cursor``, when set, is the cursor of a cycle run before the measured one
    (what an adapter learns once per process, e.g. the delivery workspaces)."""

    provider: Provider
    adapter: TaskingProvider
    close: Callable[[], Awaitable[None]]
    calls: Counter[str]
    indexes: list[OrderIndex]
    cursor: str | None
    new: int
    warm_cursor: str | None = None


def _index(provider: Provider, i: int, key: str, refs: dict[str, str]) -> OrderIndex:
    return OrderIndex(
        f"req-{i}", None, provider, OrderStatus.IN_PROGRESS, Phase.AWAITING_DELIVERY, T0, key, False, refs
    )


async def _measure(bench: Bench) -> CycleResult:
    """One ``DeliveryHarvester.run_cycle`` from ``bench.cursor``: its CPU, wall time, the provider
    calls it made and the products it fed to their orders."""
    delivered: list[DeliveredProduct] = []

    async def deliver(request_id: str, product: DeliveredProduct, at: datetime) -> None:
        delivered.append(product)

    class Quiet:
        def scheduler_job(self, job: str, ok: bool) -> None:
            return None

        def delivery_error(self, provider: str) -> None:
            return None

    harvester = DeliveryHarvester(
        AsyncIOScheduler(timezone=UTC),
        {bench.provider: bench.adapter},
        lambda name: bench.indexes,
        deliver,
        Quiet(),
        300.0,
        lambda: T0 + timedelta(days=1),
    )
    harvester._seen_partitions[bench.provider] = frozenset()
    if bench.warm_cursor is not None:
        harvester._cursors[bench.provider] = bench.warm_cursor
        await harvester.run_cycle(bench.provider)
        delivered.clear()
    harvester._cursors[bench.provider] = bench.cursor
    bench.calls.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    fed = await harvester.run_cycle(bench.provider)
    result = CycleResult(
        len(bench.indexes),
        bench.new,
        time.process_time() - cpu,
        time.perf_counter() - wall,
        dict(bench.calls),
        fed,
    )
    await bench.close()
    return result


async def _both(setup: Callable[[bool], Awaitable[Bench]]) -> tuple[CycleResult, CycleResult]:
    """A quiet cycle (cursor after every new product) and a busy one (cursor before them all)."""
    quiet = await _measure(await setup(False))
    busy = await _measure(await setup(True))
    return quiet, busy


# ----------------------------------------------------------------------------- UP42


def _order(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def _asset(n: int, order: str) -> dict[str, Any]:
    created = (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    return {
        "id": f"asset-{n:08d}",
        "workspaceId": WORKSPACE,
        "createdAt": created,
        "orderId": order,
        "geospatialMetadataExtractionStatus": "SUCCESSFUL",
        "name": f"asset-{n:08d}.zip",
    }


def _item(n: int, order: str) -> dict[str, Any]:
    ring = [[-79.64, 9.07], [-79.43, 9.07], [-79.43, 8.87], [-79.64, 8.87], [-79.64, 9.07]]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"item-{n:08d}",
        "collection": f"coll-{n:08d}",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "datetime": "2026-01-01T10:00:00Z",
            "eo:cloud_cover": 3.0,
            "view:incidence_angle": 12.0,
            "gsd": 0.5,
            "proj:epsg": 32617,
            "up42-order:id": order,
            "up42-system:asset_id": f"asset-{n:08d}",
        },
        "assets": {
            f"p{n}_img.tiff": {
                "href": f"{API}/v2/assets/file-{n:08d}",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data", "multispectral"],
            }
        },
        "links": [],
    }


class Storage:
    """UP42 storage answered in-process; counts the calls by (method, path kind)."""

    def __init__(self, new: int, waiting: int) -> None:
        orders = [_order(i * max(1, waiting // max(1, new))) for i in range(new)]
        self.assets = [_asset(n, orders[n]) for n in range(new)]
        self.items = {a["id"]: _item(n, orders[n]) for n, a in enumerate(self.assets)}
        self.calls: Counter[str] = Counter()

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.url.host == "auth.up42.bench":
            return httpx.Response(200, json=TOKEN)
        if path == "/v2/assets":
            self.calls["GET /v2/assets"] += 1
            after = request.url.params.get("createdAfter")
            chosen = [a for a in self.assets if after is None or a["createdAt"] >= after]
            page, size = int(request.url.params["page"]), int(request.url.params["size"])
            body = {"content": chosen[page * size : (page + 1) * size], "totalPages": -(-len(chosen) // size)}
            return httpx.Response(200, content=orjson.dumps(body))
        if path == "/v2/assets/stac/search":
            self.calls["POST /v2/assets/stac/search"] += 1
            cql2 = json.loads(request.content)["filter"]
            terms = cql2["args"] if cql2["op"] == "or" else [cql2]
            features = [self.items[t["args"][1]] for t in terms if t["args"][1] in self.items]
            return httpx.Response(
                200, content=orjson.dumps({"type": "FeatureCollection", "features": features})
            )
        if path.startswith("/v2/assets/stac/collections/"):
            self.calls["GET /v2/assets/stac/collections/{id}"] += 1
            return httpx.Response(200, content=orjson.dumps({"id": path.rsplit("/", 1)[1], "assets": {}}))
        return httpx.Response(404, json={"code": 404})


async def _up42(waiting: int, new: int, busy: bool) -> Bench:
    storage = Storage(new, waiting)
    settings = Up42Settings(
        username="bench",
        password=SecretStr("bench"),
        auth_url=HttpUrl(AUTH),
        base_url=HttpUrl(API),
        workspace_id=WORKSPACE,
        rate_limit_per_second=1_000_000,
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(storage.handler))
    adapter = Up42Provider(settings, HttpClientSettings(), client=client)
    await adapter.refresh_token()
    indexes = [_index(Provider.UP42, i, _order(i), {"orderId": _order(i)}) for i in range(waiting)]
    # The cursor of the previous cycle: before every new asset (busy) or after all (quiet).
    mark = T0 - timedelta(seconds=1) if busy else T0 + timedelta(seconds=new + 1)
    cursor = json.dumps({"after": mark.isoformat().replace("+00:00", "Z"), "seen": [], "pending": {}})
    return Bench(Provider.UP42, adapter, adapter.aclose, storage.calls, indexes, cursor, new)


async def measure(waiting: int = 10_000, new: int = 100) -> tuple[CycleResult, CycleResult]:
    """UP42: a quiet cycle and a busy cycle (``new`` products) over ``waiting`` orders."""
    return await _both(lambda busy: _up42(waiting, new, busy))


# ----------------------------------------------------------------------------- OneAtlas

OA_AUTH = "https://authenticate.oneatlas.bench/auth/realms/IDP/protocol/openid-connect/token"
OA_BASE = "https://order.api.oneatlas.bench"
OA_DATA = "https://data.oneatlas.bench"
OA_SEARCH = "https://search.oneatlas.bench"
OA_ACCESS = "https://access.foundation.api.oneatlas.airbus.com/api/v1/items"
LEGACY_CONTRACT = "CTR21000411"
NEO_CONTRACT = "CTR21000999"
LEGACY_WS = "9e95d539-3dcd-4d26-985c-c4b573e5d21e"
NEO_WS = "bbdaf4c9-37da-4480-9c52-c75cbfa17a22"
RING = [[1.38, 43.55], [1.5, 43.55], [1.5, 43.65], [1.38, 43.65], [1.38, 43.55]]


def _oa_order(i: int, waiting: int) -> tuple[str, dict[str, str]]:
    """Order ``i``'s tracking key and refs: legacy below ``waiting // 2``, Pléiades Neo above
    (one in four without a sales order id yet: matched by customer reference)."""
    sales = f"SAL{21_000_000 + i}"
    if i < waiting // 2:
        return sales, {"salesOrderId": sales, "customerReference": f"ref-{i}"}
    quote = f"QUO{21_000_000 + i}"
    refs = {"quotationId": quote, "customerReference": f"ref-{i}"}
    if i % 4 != 3:
        refs["salesOrderId"] = sales
    return quote, refs


def _oa_item(n: int, i: int, neo: bool, updated: datetime) -> dict[str, Any]:
    """An opensearch feature shaped like the recorded ones: legacy (``download`` an object,
    ``DS_…`` datastrip) or Pléiades Neo (``download`` an array with an ftpes entry, the
    ``ACQ_…`` id in the zip name, ``imagesMetadata`` an array)."""
    item_id = f"00000000-0000-4000-9000-{n:012d}"
    when = updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ds = f"DS_PHR1B_2026010110{n % 10_000:04d}000_FR1_PX_E001N43_0101_00001"
    zip_name = f"WO_{n:09d}_1_SAL{21_000_000 + i}-1_ACQ_PNEO3_{n:014d}.zip" if neo else f"PHR1B_{n}.zip"
    https = {
        "href": f"{OA_ACCESS}/{item_id}/download",
        "name": "Download",
        "type": "HTTP",
        "resourceId": zip_name,
    }
    ftpes = {**https, "href": f"ftpes://ftp.oneatlas.bench/{zip_name}", "type": "FTPES"}
    links: dict[str, Any] = {
        "download": [ftpes, https] if neo else https,
        "quicklook": {"href": f"{OA_ACCESS}/{item_id}/quicklook", "name": "QuickLook", "type": "HTTP"},
        "self": {"href": f"{OA_SEARCH}/api/v1/opensearch?id={item_id}", "method": "GET", "name": "self"},
    }
    if neo:
        links["imagesMetadata"] = [
            {
                "href": f"{OA_ACCESS}/{item_id}/images/{band}/metadata",
                "name": band,
                "type": "application/geo+json",
            }
            for band in ("panchromatic", "multispectral")
        ]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [RING]},
        "properties": {
            "id": item_id,
            "acquisitionDate": "2026-01-01T10:46:53.800Z",
            "constellation": "PNEO" if neo else "PHR",
            "platform": "PNEO3" if neo else "PHR1B",
            "processingLevel": "ORTHO",
            "productType": "bundle",
            "cloudCover": 3.5,
            "incidenceAngle": 12.4,
            "resolution": 0.3 if neo else 0.5,
            "productionStatus": "IN_CLOUD",
            "customerReference": f"ref-{i}",
            "internalReference": f"SAL{21_000_000 + i}",
            "internalLine": "1",
            "commercialReference": f"WO_{n:09d}_1",
            "contractId": NEO_CONTRACT if neo else LEGACY_CONTRACT,
            "acquisitionIdentifier": None if neo else ds,
            "sourceIdentifier": None if neo else ds,
            "publicationDate": when,
            "lastUpdateDate": when,
            "expirationDate": "2027-01-01T00:00:00.000Z",
            "workspaceId": NEO_WS if neo else LEGACY_WS,
        },
        "_links": links,
        "rights": {"browse": {}, "download": {}},
    }


def _contracts() -> dict[str, Any]:
    def contract(contract_id: str, backend: str, delivery: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "contractId": contract_id,
            "customerId": "CUS-1",
            "name": backend,
            "contractType": "PPO",
            "delivery": delivery,
            "backendSource": backend,
        }

    neo = [{"deliveryPlatformId": "PublicMOC", "deliveryWorkspace": NEO_WS}]
    return {"contracts": [contract(LEGACY_CONTRACT, "legacy", []), contract(NEO_CONTRACT, "neo", neo)]}


class Catalogue:
    """OneAtlas workspaces answered in-process: ``/api/v1/me``, ``/api/v1/contracts`` and the
    opensearch (``workspace``, ``lastUpdateDate`` range ``[T,]``, sorted by ``lastUpdateDate``,
    ``itemsPerPage``/``startPage`` from 1). Items are serialised once; a page's body is joined
    from them. Counts the calls by (method, path)."""

    def __init__(self, new: int, foreign: int, waiting: int) -> None:
        step = max(1, waiting // max(1, new))
        # Spread over the waiting orders, both backends, with and without a sales order id.
        mine = [(n * step + n % 4) % waiting for n in range(new)]
        owners = [(i, i >= waiting // 2) for i in mine]
        # Other orders of the workspaces (not waiting here): same shapes, nothing to feed.
        owners += [(waiting + n, n % 2 == 1) for n in range(foreign)]
        self.items: dict[str, list[tuple[datetime, bytes]]] = {LEGACY_WS: [], NEO_WS: []}
        for n, (i, neo) in enumerate(owners):
            at = T0 + timedelta(seconds=n)
            item = _oa_item(n, i, neo, at)
            self.items[item["properties"]["workspaceId"]].append((at, orjson.dumps(item)))
        self.calls: Counter[str] = Counter()

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/openid-connect/token"):
            return httpx.Response(200, json=TOKEN)
        self.calls[f"{request.method} {path}"] += 1
        if path == "/api/v1/me":
            return httpx.Response(200, json={"id": "me", "contract": {"id": "c", "workspaceId": LEGACY_WS}})
        if path == "/api/v1/contracts":
            return httpx.Response(200, json=_contracts())
        if path == "/api/v2/opensearch":
            return self._search(json.loads(request.content))
        return httpx.Response(404, json={"code": 404})

    def _search(self, criteria: dict[str, Any]) -> httpx.Response:
        ranged = str(criteria.get("lastUpdateDate") or "[,]").strip("[]").split(",")[0]
        since = datetime.fromisoformat(ranged) if ranged else None
        chosen = [
            body for at, body in self.items.get(criteria["workspace"], []) if since is None or at >= since
        ]
        size, page = int(criteria["itemsPerPage"]), int(criteria["startPage"])
        start = (page - 1) * size
        head = orjson.dumps(
            {"error": False, "itemsPerPage": size, "startIndex": start, "totalResults": len(chosen)}
        )
        features = b",".join(chosen[start : start + size])
        body = head[:-1] + b',"type":"FeatureCollection","features":[' + features + b"]}"
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})


async def _oneatlas(waiting: int, new: int, busy: bool) -> Bench:
    catalogue = Catalogue(new, new // 10, waiting)
    settings = OneAtlasSettings(
        api_key=SecretStr("bench-key"),
        contract_id=LEGACY_CONTRACT,
        neo_contract_id=NEO_CONTRACT,
        auth_url=HttpUrl(OA_AUTH),
        base_url=HttpUrl(OA_BASE),
        data_url=HttpUrl(OA_DATA),
        search_url=HttpUrl(OA_SEARCH),
        rate_limit_per_second=1_000_000,
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(catalogue.handler))
    adapter = OneAtlasProvider(settings, HttpClientSettings(), client=client)
    await adapter.refresh_token()
    indexes = [_index(Provider.ONEATLAS, i, *_oa_order(i, waiting)) for i in range(waiting)]
    # The previous cycle's marks: before every item (busy) or an hour after the last (quiet,
    # past the cursor's overlap).
    mark = T0 - timedelta(seconds=1) if busy else T0 + timedelta(seconds=new + new // 10 + 3600)
    when = mark.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    cursor = json.dumps({LEGACY_WS: when, NEO_WS: when})
    quiet = json.dumps(dict.fromkeys((LEGACY_WS, NEO_WS), "2030-01-01T00:00:00.000Z"))
    return Bench(
        Provider.ONEATLAS, adapter, adapter.aclose, catalogue.calls, indexes, cursor, new, warm_cursor=quiet
    )


async def measure_oneatlas(waiting: int = 10_000, new: int = 1000) -> tuple[CycleResult, CycleResult]:
    """OneAtlas: a quiet cycle and a busy cycle (``new`` products) over ``waiting`` orders."""
    return await _both(lambda busy: _oneatlas(waiting, new, busy))
