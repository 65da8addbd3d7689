"""Delivery harvest cost: provider calls and CPU per cycle with 10,000 orders waiting for delivery.

The worker's :class:`~worker.runtime.deliveries.DeliveryHarvester` cycle, built as ``worker.app``
builds it (``waiting`` = store index entries of orders waiting for delivery), runs against the
real UP42 adapter whose HTTP client is answered in-process (``httpx.MockTransport``) with
reference-shaped pages serialised once: ``GET /v2/assets`` pages of the assets created since the
cursor, ``POST /v2/assets/stac/search`` answers with the items of the searched assets, and the
collections' original archives. Each product is handed to a counting ``deliver`` (applying it to
an order is one state step, measured by the latency section). Two cycles are measured:

* quiet: nothing new since the cursor (the steady state of 10,000 waiting orders);
* busy: ``new`` assets arrived since the cursor, one item each, for orders among the waiting ones.

The figure is the worker's CPU per cycle including the adapter's (HTTP client, JSON, mapping); the
provider's own serving time is not in it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import HttpUrl, SecretStr

from worker.config import HttpClientSettings, Up42Settings
from worker.domain.model import Phase
from worker.events.models import Provider
from worker.events.status import OrderStatus
from worker.kafka.statecodec import OrderIndex
from worker.providers.base import DeliveredProduct, TaskingProvider
from worker.providers.up42 import Up42Provider
from worker.runtime.deliveries import DeliveryHarvester

API = "https://api.up42.bench"
AUTH = "https://auth.up42.bench/realms/public/protocol/openid-connect/token"
WORKSPACE = "7f3c2b1a-9d8e-4c6f-a5b4-3e2d1c0b9a87"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = {"access_token": "bench-token", "expires_in": 3600, "token_type": "Bearer"}


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


async def _cycle(waiting: int, new: int, cursor_before_all: bool) -> CycleResult:
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
    indexes = [
        OrderIndex(
            f"req-{i}",
            None,
            Provider.UP42,
            OrderStatus.IN_PROGRESS,
            Phase.AWAITING_DELIVERY,
            T0,
            _order(i),
            False,
            {"orderId": _order(i)},
        )
        for i in range(waiting)
    ]
    delivered: list[DeliveredProduct] = []

    async def deliver(request_id: str, product: DeliveredProduct, at: datetime) -> None:
        delivered.append(product)

    class Quiet:
        def scheduler_job(self, job: str, ok: bool) -> None:
            return None

        def delivery_error(self, provider: str) -> None:
            return None

    providers: dict[Provider, TaskingProvider] = {Provider.UP42: adapter}
    harvester = DeliveryHarvester(
        AsyncIOScheduler(timezone=UTC),
        providers,
        lambda name: indexes,
        deliver,
        Quiet(),
        300.0,
        lambda: T0 + timedelta(days=1),
    )
    # The cursor of the previous cycle: before every new asset (busy) or after all (quiet).
    mark = T0 - timedelta(seconds=1) if cursor_before_all else T0 + timedelta(seconds=new + 1)
    harvester._cursors[Provider.UP42] = json.dumps(
        {"after": mark.isoformat().replace("+00:00", "Z"), "seen": [], "pending": {}}
    )
    harvester._seen_partitions[Provider.UP42] = frozenset()
    storage.calls.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    fed = await harvester.run_cycle(Provider.UP42)
    result = CycleResult(
        waiting, new, time.process_time() - cpu, time.perf_counter() - wall, dict(storage.calls), fed
    )
    await adapter.aclose()
    return result


def measure(waiting: int = 10_000, new: int = 100) -> tuple[CycleResult, CycleResult]:
    """A quiet cycle and a busy cycle (``new`` products) over ``waiting`` orders."""
    quiet = asyncio.run(_cycle(waiting, new, cursor_before_all=False))
    busy = asyncio.run(_cycle(waiting, new, cursor_before_all=True))
    return quiet, busy
