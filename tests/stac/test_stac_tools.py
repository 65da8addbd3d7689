"""Delivered items as downstream users take them, through the real tools.

Items are built by the worker's own code from the simulators' deliveries (OneAtlas: a driven
order's products in the delivery workspace; UP42: deliveries in the simulated storage) and then:

* loaded together in odc-stac, without ``crs`` or ``resolution``: the remote UP42 items of two
  deliveries (metadata: the grid from the items' projection fields, the bands from their
  ``bands``), and the local items that ``tasking-worker download`` wrote for an OneAtlas and two
  UP42 products (pixels read from the simulators' GeoTIFFs);
* round-tripped through pystac, stored with stac-geoparquet and searched by constellation;
* linted by stac-check (no bbox mismatch).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import odc.stac
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pystac
import pytest
import stac_geoparquet.arrow
from providers import oneatlas_payloads as oa
from providers.test_download import Stack, consoles, download, stack  # noqa: F401 - the fixture
from stac_check.lint import Linter

from worker.config import settings_from
from worker.delivery.command import DownloadOptions, run
from worker.domain.ports import PlacedOrder
from worker.events.delivery import DeliveryEvent
from worker.events.models import Provider
from worker.events.stac_validation import validate_item
from worker.providers.up42 import Up42Provider
from worker.simulators.up42 import Up42Simulator

RGBN = ["red", "green", "blue", "nir"]
# odc-stac 0.5.3 names the bands of a STAC 1.1 ``bands`` list ``{asset}.{n}`` (it takes common-name
# aliases from ``eo:bands`` only); the common names are checked on the items themselves.
MS = [f"multispectral.{n}" for n in range(1, 5)]
ORDER = "1a3d1fa7-bc89-40a9-a3b8-c1e9392456de"


async def up42_items(tmp_path: Path, deliveries: int = 2) -> tuple[list[dict[str, Any]], list[Path]]:
    """The published items of ``deliveries`` UP42 deliveries, and their local downloaded items."""
    os.makedirs(tmp_path, exist_ok=True)
    sim = Up42Simulator()
    for n in range(deliveries):
        sim.storage.store(
            order_id=ORDER,
            workspace_id=sim.workspace_id,
            product_id="phr",
            geometry=oa.TOULOUSE,
            at=sim.core.clock.now(),
            scenes=[{"eo:cloud_cover": 3.0 + n}],
        )
    env = {
        "TASKING_UP42__USERNAME": sim.username,
        "TASKING_UP42__PASSWORD": sim.password,
        "TASKING_UP42__WORKSPACE_ID": sim.workspace_id,
        "TASKING_UP42__BASE_URL": "https://api.up42.com",
        "TASKING_UP42__AUTH_URL": "https://auth.up42.com/realms/public/protocol/openid-connect/token",
    }
    settings = settings_from(env)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app)) as client:
        provider = Up42Provider(settings.up42, settings.http_client, client=client)
        placed = PlacedOrder(tracking_key=ORDER, refs={"orderId": ORDER})
        products = (await provider.find_deliveries([placed], None)).products
        assert len(products) == deliveries
        items = [
            DeliveryEvent(
                request_id="req-up42", provider=Provider.UP42, product=p, occurred_at=datetime.now(UTC)
            ).stac_item()
            for p in products
        ]
        local = []
        for item in items:
            source = tmp_path / f"{item['id']}.json"
            source.write_text(json.dumps(item))
            console, errors, _, err = consoles()
            options = DownloadOptions(target=str(source), dest=tmp_path / "out", bars=False)
            code = await run(settings, options, console, errors, client=client)
            assert code == 0, err.getvalue()
            local.append(tmp_path / "out" / item["id"] / f"{item['id']}.json")
    return items, local


async def test_remote_up42_items_of_two_deliveries_load_together_without_crs_or_resolution(
    tmp_path: Path,
) -> None:
    items, _ = await up42_items(tmp_path)
    for item in items:
        validate_item(item)
    assert {tuple(sorted(i["assets"])) for i in items} == {
        ("archive", "metadata", "multispectral", "thumbnail")
    }
    stac_items = [pystac.Item.from_dict(i) for i in items]
    data = odc.stac.load(stac_items, chunks={})  # lazy: metadata only
    assert sorted(data.data_vars) == MS, "one variable per band of the 4-band image, same keys"
    assert data.odc.geobox.crs.epsg == 32631
    assert data.sizes["time"] == 2


async def test_downloaded_oneatlas_and_up42_products_load_from_their_local_items(
    stack: Stack,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    code, _, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    oneatlas_local = tmp_path / "out" / stack.item["id"] / f"{stack.item['id']}.json"
    local = json.loads(oneatlas_local.read_text())
    validate_item(local)
    assert {"multispectral", "panchromatic", "data", "metadata-dimap"} <= set(local["assets"])
    ms = local["assets"]["multispectral"]
    assert ms["proj:code"].startswith("EPSG:326")
    assert len(ms["proj:shape"]) == 2
    assert [b["eo:common_name"] for b in ms["bands"]] == RGBN
    assert local["assets"]["data"]["href"].endswith(".zip"), "the zip stays an asset"
    collection = (oneatlas_local.parent / local["links"][0]["href"]).resolve()
    assert json.loads(collection.read_text())["id"] == local["collection"]

    _, up42_local = await up42_items(tmp_path / "up42")
    for path in up42_local:
        validate_item(json.loads(path.read_text()))
    opened = [pystac.Item.from_file(str(p)) for p in [oneatlas_local, *up42_local]]
    for item in opened:
        pan = item.assets.get("panchromatic")
        if pan is not None:  # finer grid: loaded on its own
            del item.assets["panchromatic"]
    data = odc.stac.load(opened, bands=MS, groupby="id")
    assert sorted(data.data_vars) == MS
    assert data.sizes["time"] == 3
    for band in MS:
        values = data[band].values
        assert np.count_nonzero(values) > 0, f"{band}: pixels were read from the GeoTIFFs"
    pan_only = odc.stac.load([pystac.Item.from_file(str(oneatlas_local))], bands=["panchromatic.1"])
    assert pan_only["panchromatic.1"].shape[-1] > data["multispectral.1"].shape[-1], "pan: the finer grid"


async def test_items_of_both_providers_are_stored_in_geoparquet_and_found_by_constellation(
    stack: Stack,  # noqa: F811
    tmp_path: Path,
) -> None:
    up42, _ = await up42_items(tmp_path)
    items = [stack.item, *up42]
    for item in items:
        again = pystac.Item.from_dict(json.loads(json.dumps(item))).to_dict(transform_hrefs=False)
        assert again["properties"] == item["properties"]
        assert again["assets"] == item["assets"]
    table = stac_geoparquet.arrow.parse_stac_items_to_arrow(items).read_all()
    path = tmp_path / "items.parquet"
    stac_geoparquet.arrow.to_parquet(table, path)
    stored = pq.read_table(path)
    found = stored.filter(pc.equal(stored["constellation"], "pleiades"))
    assert sorted(set(found["tasking:provider"].to_pylist())) == ["oneatlas", "up42"]
    assert found.num_rows == len(items)


@pytest.mark.parametrize("provider", ["oneatlas", "up42"])
async def test_stac_check_finds_no_bbox_mismatch(
    stack: Stack,  # noqa: F811
    tmp_path: Path,
    provider: str,
) -> None:
    items = [stack.item] if provider == "oneatlas" else (await up42_items(tmp_path))[0]
    for item in items:
        linter = Linter(json.loads(json.dumps(item)))
        assert linter.check_bbox_matches_geometry() is True
        assert linter.check_geometry_coordinates_order() is True
        assert linter.check_thumbnail() is True
