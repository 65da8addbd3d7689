"""``tasking-worker download``: resumable, verified downloads of delivered products.

OneAtlas through its simulator served over a real socket (uvicorn): the items are the STAC Items
the worker publishes (``DeliveryEvent.stac_item``) for products the adapter harvested. UP42 through
its simulator's storage (a stored delivery found by the adapter, fetched through a signed URL) and
through ``httpx.MockTransport`` shaped like the documented answers (``POST
/v2/assets/{id}/download-url`` → ``{"url": <signed URL>}``) for a resumed partial file.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from providers import oneatlas_payloads as oa
from providers import up42_payloads as up
from providers.test_oneatlas_flows import DAY, drive, order_request
from rich.console import Console

from worker.config import Settings, settings_from
from worker.delivery.command import DownloadOptions, run
from worker.domain.ports import PlacedOrder
from worker.events.delivery import DeliveryEvent
from worker.events.models import Provider
from worker.events.stac_validation import validate_item
from worker.httpserver import ServerHandle, serve
from worker.providers.oneatlas import OneAtlasProvider
from worker.providers.up42 import Up42Provider
from worker.simulators.oneatlas import AUTH_PATH, OneAtlasSimulator
from worker.simulators.server import SIMULATED_END_USERS
from worker.simulators.up42 import Up42Simulator

SIZE = 700_000
DOWNLOAD = r"/api/v1/items/[^/]+/download"


@dataclass
class Stack:
    sim: OneAtlasSimulator
    server: ServerHandle
    env: dict[str, str]
    item: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def settings(self, **overrides: str) -> Settings:
        return settings_from({**self.env, **overrides})

    def content(self) -> bytes:
        return self.sim.products[self.item["id"]].content()

    def downloads(self) -> list[tuple[str, int]]:
        """``(method, status)`` of every download request the simulator answered."""
        return [(c.method, c.status) for c in self.sim.core.calls if re.fullmatch(DOWNLOAD, c.path)]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    sim = OneAtlasSimulator(raise_on_lost_response=False, delivery_delay=0.0, product_size=SIZE)
    server = await serve(sim.app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    env = {
        "TASKING_ONEATLAS__API_KEY": sim.api_key,
        "TASKING_ONEATLAS__END_USERS": SIMULATED_END_USERS,
        "TASKING_ONEATLAS__CONTRACT_ID": sim.legacy_contract_id,
        "TASKING_ONEATLAS__NEO_CONTRACT_ID": sim.neo_contract_id,
        "TASKING_ONEATLAS__WORKSPACE_ID": sim.workspace_id,
        "TASKING_ONEATLAS__BASE_URL": url,
        "TASKING_ONEATLAS__AUTH_URL": url + AUTH_PATH,
        "TASKING_ONEATLAS__SEARCH_URL": url,
        "TASKING_ONEATLAS__DATA_URL": url,
        "TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "10",
    }
    settings = settings_from(env)
    # The order is driven in process (fast); its links name the server's URL all the same.
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app))
    provider = OneAtlasProvider(settings.oneatlas, settings.http_client, client=client)
    try:
        flow = await drive(
            sim, provider, order_request(sim, "PLEIADES", "ONEPLAN", ref="ref-dl"), step=7 * DAY
        )
        product = (await provider.find_deliveries([flow.placed], None)).products[0]
    finally:
        await client.aclose()
    event = DeliveryEvent(
        request_id="req-dl", provider=Provider.ONEATLAS, product=product, occurred_at=datetime.now(UTC)
    )
    try:
        yield Stack(sim, server, env, event.stac_item())
    finally:
        await server.stop()


def consoles() -> tuple[Console, Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return (
        Console(file=out, width=200, soft_wrap=True),
        Console(file=err, width=200, soft_wrap=True),
        out,
        err,
    )


async def download(
    settings: Settings, item: dict[str, Any], tmp_path: Path, **options: Any
) -> tuple[int, str, str]:
    item_file = tmp_path / "item.json"
    item_file.write_text(json.dumps(item))
    console, errors, out, err = consoles()
    opts = DownloadOptions(target=str(item_file), dest=tmp_path / "out", bars=False, **options)
    code = await run(settings, opts, console, errors)
    return code, out.getvalue(), err.getvalue()


def data_file(stack: Stack, tmp_path: Path) -> Path:
    return tmp_path / "out" / stack.item["id"] / stack.item["assets"]["data"]["title"]


# ============================================================================= OneAtlas


async def test_download_verifies_the_md5_and_a_second_run_transfers_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    code, out, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    target = data_file(stack, tmp_path)
    assert target.read_bytes() == stack.content()
    assert not target.with_name(target.name + ".part").exists()
    assert stack.downloads() == [("HEAD", 200), ("GET", 200)]
    local = json.loads((target.parent / f"{stack.item['id']}.json").read_text())
    assert local["assets"]["data"]["href"] == f"./{target.name}"
    assert local["assets"]["data"]["file:size"] == SIZE
    assert local["assets"]["data"]["file:checksum"] == "d50110" + hashlib.md5(stack.content()).hexdigest()
    assert "auth:refs" not in local["assets"]["data"]
    assert local["assets"]["overview"]["href"].startswith(stack.url), "assets not downloaded stay remote"
    validate_item(local)
    assert "1 downloaded, 0 already complete, 0 failed" in out

    code, out, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    assert stack.downloads() == [("HEAD", 200), ("GET", 200)], "nothing is asked the second time"
    assert "0 downloaded, 1 already complete, 0 failed; 0 B transferred" in out


async def test_a_cut_transfer_is_resumed_with_a_range(stack: Stack, tmp_path: Path) -> None:
    stack.sim.inject_download_fault({"kind": "cut", "afterBytes": 250_000})
    code, out, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    assert data_file(stack, tmp_path).read_bytes() == stack.content()
    assert stack.downloads() == [("HEAD", 200), ("GET", 200), ("GET", 206)]
    assert "resuming at byte" in out


async def test_a_partial_file_on_disk_is_resumed(stack: Stack, tmp_path: Path) -> None:
    target = data_file(stack, tmp_path)
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(stack.content()[:300_000])
    code, out, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    assert target.read_bytes() == stack.content()
    assert stack.downloads() == [("HEAD", 200), ("GET", 206)]
    assert f"{(SIZE - 300_000) / 1000:.1f} kB transferred" in out


def _checksum(form: str, content: bytes) -> str:
    return {
        "legacy-md5": "d510" + hashlib.md5(content).hexdigest(),  # events published before multihashes
        "md5": "d50110" + hashlib.md5(content).hexdigest(),
        "sha1": "1114" + hashlib.sha1(content).hexdigest(),
        "sha2-256": "1220" + hashlib.sha256(content).hexdigest(),
        "sha2-512": "1340" + hashlib.sha512(content).hexdigest(),
        "sha3-256": "1620" + hashlib.sha3_256(content).hexdigest(),
    }[form]


@pytest.mark.parametrize("form", ["legacy-md5", "md5", "sha1", "sha2-256", "sha2-512", "sha3-256"])
async def test_every_checksum_form_is_verified(stack: Stack, tmp_path: Path, form: str) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good = json.loads(json.dumps(stack.item))
    good["assets"]["data"]["file:checksum"] = _checksum(form, stack.content())
    code, _, err = await download(stack.settings(), good, tmp_path / "good")
    assert code == 0, err
    bad = json.loads(json.dumps(stack.item))
    bad["assets"]["data"]["file:checksum"] = _checksum(form, stack.content() + b"x")
    code, _, err = await download(stack.settings(), bad, tmp_path / "bad")
    assert code == 1
    assert "CHECKSUM_MISMATCH" in err


async def test_an_unreadable_checksum_is_reported_not_silently_skipped(stack: Stack, tmp_path: Path) -> None:
    item = json.loads(json.dumps(stack.item))
    item["assets"]["data"]["file:checksum"] = "ffff01"
    code, out, err = await download(stack.settings(), item, tmp_path)
    assert code == 0, err
    assert "is not a multihash" in out + err
    assert "checked by size only" in out + err


async def test_a_corrupted_transfer_fails_on_the_checksum(stack: Stack, tmp_path: Path) -> None:
    stack.sim.inject_download_fault({"kind": "corrupt"})
    code, _, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 1
    assert "CHECKSUM_MISMATCH" in err
    target = data_file(stack, tmp_path)
    assert not target.exists()
    assert not target.with_name(target.name + ".part").exists(), "a corrupted part is not kept"
    code, _, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    assert target.read_bytes() == stack.content()


async def test_a_corrupted_partial_file_is_downloaded_again_from_the_start(
    stack: Stack, tmp_path: Path
) -> None:
    target = data_file(stack, tmp_path)
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(b"\0" * 300_000)
    code, out, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    assert target.read_bytes() == stack.content()
    assert stack.downloads() == [("HEAD", 200), ("GET", 206), ("GET", 200)]
    assert "downloading it again from the start" in out


async def test_an_expired_product_is_not_requested(stack: Stack, tmp_path: Path) -> None:
    item = json.loads(json.dumps(stack.item))
    item["properties"]["expires"] = "2020-01-01T00:00:00.000Z"
    code, _, err = await download(stack.settings(), item, tmp_path)
    assert code == 1
    assert "EXPIRED" in err
    assert "2020-01-01" in err
    assert stack.downloads() == []


async def test_a_removed_product_is_reported_as_not_found(stack: Stack, tmp_path: Path) -> None:
    stack.sim.expire_product(stack.item["id"])
    code, _, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 1
    assert "NOT_FOUND" in err
    assert "expired or was removed" in err


async def test_bad_credentials_are_reported_without_the_key(stack: Stack, tmp_path: Path) -> None:
    code, out, err = await download(
        stack.settings(TASKING_ONEATLAS__API_KEY="wrong-key-SECRET-42"), stack.item, tmp_path
    )
    assert code == 1
    assert "BAD_CREDENTIALS" in err
    assert "wrong-key-SECRET-42" not in out + err
    assert stack.downloads() == []


async def test_missing_credentials_exit_2(stack: Stack, tmp_path: Path) -> None:
    env = {k: v for k, v in stack.env.items() if k != "TASKING_ONEATLAS__API_KEY"}
    code, _, err = await download(settings_from(env), stack.item, tmp_path)
    assert code == 2
    assert "NOT_CONFIGURED" in err


async def test_the_token_is_not_sent_to_a_foreign_host(stack: Stack, tmp_path: Path) -> None:
    item = json.loads(json.dumps(stack.item))
    item["assets"]["data"]["href"] = "https://elsewhere.example.org/steal"
    code, _, err = await download(stack.settings(), item, tmp_path)
    assert code == 1
    assert "UNTRUSTED_HOST" in err


async def test_a_bad_item_file_exits_2(stack: Stack, tmp_path: Path) -> None:
    code, _, err = await download(stack.settings(), {"type": "Feature"}, tmp_path)
    assert code == 2
    assert "not a STAC Item" in err


# ============================================================================= UP42 (mock)


class FakeUp42:
    """UP42's token endpoint, ``download-url`` minting and a signed storage URL honouring ranges."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json=up.TOKEN)
        if request.url.path.endswith("/download-url"):
            assert request.headers["authorization"] == f"Bearer {up.TOKEN['access_token']}"
            asset = request.url.path.split("/")[3]
            signed = f"https://storage.googleapis.com/user-storage/assets/{asset}?GoogleAccessId=x&Expires=1&Signature=s"
            return httpx.Response(200, json={"url": signed})
        if request.url.host == "storage.googleapis.com":
            match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("range", ""))
            start = int(match.group(1)) if match else 0
            headers = {"accept-ranges": "bytes"}
            if start:
                headers["content-range"] = f"bytes {start}-{len(self.body) - 1}/{len(self.body)}"
            return httpx.Response(206 if start else 200, content=self.body[start:], headers=headers)
        return httpx.Response(404)


def up42_item(asset_id: str, size: int) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "363e7831-48ff-4311-83c1-a37d3ef54b66",
        "geometry": None,
        "properties": {"datetime": "2020-09-30T10:39:26.600Z", "tasking:provider": "up42"},
        "assets": {
            "mgag5ui3_img_phr1a_ms_202009301038498_sen.tiff": {
                "href": f"https://api.up42.com/v2/assets/{asset_id}",
                "title": "Multispectral data",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data", "multispectral"],
                "file:size": size,
                "auth:refs": ["up42"],
            }
        },
        "links": [],
    }


async def test_up42_downloads_through_a_minted_url_and_resumes(tmp_path: Path) -> None:
    body = bytes(range(256)) * 2000
    fake = FakeUp42(body)
    settings = settings_from(
        {
            "TASKING_UP42__USERNAME": up.USERNAME,
            "TASKING_UP42__PASSWORD": up.PASSWORD,
            "TASKING_UP42__AUTH_URL": up.AUTH,
            "TASKING_UP42__BASE_URL": "https://api.up42.com",
        }
    )
    asset_id = "e4a15000-890b-445c-82bb-e4364baac40b"
    item = up42_item(asset_id, len(body))
    target = tmp_path / "out" / item["id"] / "mgag5ui3_img_phr1a_ms_202009301038498_sen.tiff"
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(body[:100_000])
    (tmp_path / "item.json").write_text(json.dumps(item))
    console, errors, _out, err = consoles()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
        options = DownloadOptions(target=str(tmp_path / "item.json"), dest=tmp_path / "out", bars=False)
        code = await run(settings, options, console, errors, client=client)
    assert code == 0, err.getvalue()
    assert target.read_bytes() == body
    storage = [r for r in fake.requests if r.url.host == "storage.googleapis.com"]
    assert len(storage) == 1
    assert storage[0].headers["range"] == "bytes=100000-"
    assert "authorization" not in storage[0].headers, "the signed URL is fetched without the token"
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/download-url")] == [
        f"/v2/assets/{asset_id}/download-url"
    ]


# ============================================================================= UP42 (simulator)


async def test_up42_simulator_product_downloads_through_a_signed_url(tmp_path: Path) -> None:
    sim = Up42Simulator()
    order_id = "1a3d1fa7-bc89-40a9-a3b8-c1e9392456de"
    sim.storage.store(
        order_id=order_id,
        workspace_id=sim.workspace_id,
        product_id="phr",
        geometry=oa.TOULOUSE,
        at=sim.core.clock.now(),
        scenes=[{"eo:cloud_cover": 3.0}],
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
        placed = PlacedOrder(tracking_key=order_id, refs={"orderId": order_id})
        products = (await provider.find_deliveries([placed], None)).products
        assert products, "the stored delivery is found"
        event = DeliveryEvent(
            request_id="req-up42", provider=Provider.UP42, product=products[0], occurred_at=datetime.now(UTC)
        )
        (tmp_path / "item.json").write_text(json.dumps(event.stac_item()))
        console, errors, out, err = consoles()
        options = DownloadOptions(target=str(tmp_path / "item.json"), dest=tmp_path / "out", bars=False)
        code = await run(settings, options, console, errors, client=client)
        assert code == 0, err.getvalue()
        again = await run(settings, options, console, errors, client=client)
        assert again == 0
    folder = tmp_path / "out" / products[0].item_id
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".json")]
    assert files
    data_assets = [a for a in products[0].assets if "data" in a.roles]
    assert len(files) == len(data_assets)
    for asset in data_assets:
        assert asset.checksum is not None, "the simulator announces file:checksum"
    assert "0 downloaded" in out.getvalue().splitlines()[-1], "the second run transfers nothing"
    local = json.loads((folder / f"{products[0].item_id}.json").read_text())
    assert {"multispectral", "archive", "panchromatic", "multispectral-2"} <= set(local["assets"]), (
        "the original delivery is unpacked and its rasters are assets beside UP42's own GeoTIFF"
    )
    assert local["assets"]["panchromatic"]["href"].startswith("./archive/")


async def test_progress_bars_on_a_terminal(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "item.json").write_text(json.dumps(stack.item))
    out, err = io.StringIO(), io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    options = DownloadOptions(target=str(tmp_path / "item.json"), dest=tmp_path / "out", bars=True)
    code = await run(stack.settings(), options, console, Console(file=err))
    assert code == 0, err.getvalue()
    assert stack.item["assets"]["data"]["title"] in out.getvalue()
    assert "700.0/700.0 kB" in out.getvalue(), "the bar shows bytes done and total"


async def test_all_assets_fetches_quicklook_and_image_metadata_too(stack: Stack, tmp_path: Path) -> None:
    code, out, err = await download(stack.settings(), stack.item, tmp_path, all_assets=True)
    assert code == 0, err
    folder = data_file(stack, tmp_path).parent
    names = sorted(p.name for p in folder.iterdir())
    assert "overview.jpg" in names
    assert "thumbnail.jpg" in names
    assert "metadata-panchromatic.geojson" in names
    assert "metadata-multispectral.geojson" in names
    geojson = json.loads((folder / "metadata-panchromatic.geojson").read_text())
    assert geojson["type"] == "Feature"
    local = json.loads((folder / f"{stack.item['id']}.json").read_text())
    assert all(asset["href"].startswith("./") for asset in local["assets"].values())
    validate_item(local)
    assert "5 downloaded" in out


async def test_a_refused_token_is_renewed_once(stack: Stack, tmp_path: Path) -> None:
    stack.sim.inject({"kind": "status", "path": DOWNLOAD, "method": "GET", "status": 401, "times": 1})
    tokens = stack.sim.core.count("POST", AUTH_PATH)
    code, _, err = await download(stack.settings(), stack.item, tmp_path)
    assert code == 0, err
    assert data_file(stack, tmp_path).read_bytes() == stack.content()
    assert stack.sim.core.count("POST", AUTH_PATH) == tokens + 2, "a new token after the 401"
    assert stack.downloads() == [("HEAD", 200), ("GET", 401), ("GET", 200)]
