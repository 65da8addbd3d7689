"""Credentials scoped to their origin, and resumes that never stitch two versions of a file.

A second server on a real socket records the headers it receives: a STAC ``next`` link or a
download href naming it gets no token (refused with a clear error naming its origin); a provider
redirect to it is followed without the ``Authorization`` header;
a provider host over plain ``http`` gets no token; a provider URL configured over plain ``http``
to a non-loopback host stops the start. Resumed downloads send ``If-Range`` with the ETag of the
first response and start over when the file changed at the provider (UP42 storage simulator).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from providers import oneatlas_payloads as oa
from providers import up42_payloads as p
from providers.test_up42_adapter import FakeUp42, reply
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from worker.config import settings_from
from worker.delivery.command import DownloadOptions, run
from worker.domain.ports import PlacedOrder
from worker.errors import ConfigError, ProviderProtocolError
from worker.events.delivery import DeliveryEvent
from worker.events.models import Provider
from worker.events.products import DeliveredProduct, ProductAsset
from worker.httpserver import ServerHandle, serve
from worker.providers.scope import CredentialScope, origin
from worker.providers.up42 import Up42Provider
from worker.simulators.up42 import Up42Simulator
from worker.simulators.up42.storage import content_of

BODY = bytes(range(256)) * 400


@dataclass
class Recorder:
    """A second server: every request's method, path and headers; serves ``BODY``; ``/hop``
    redirects to ``target``."""

    server: ServerHandle | None = None
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    target: str = ""

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.seen.append((request.method, request.url.path, dict(request.headers)))
            if request.url.path == "/hop":
                return RedirectResponse(self.target, status_code=302)
            if request.url.path.endswith("/download-url"):
                return Response(status_code=404)  # no signed URLs here: the href itself is fetched
            if request.url.path.endswith("/token"):
                return JSONResponse(p.token(1))
            return Response(BODY, media_type="application/octet-stream")

        return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST", "HEAD"])])

    def authorizations(self) -> list[str]:
        return [h["authorization"] for _, _, h in self.seen if "authorization" in h]


@pytest.fixture
async def recorders() -> AsyncIterator[tuple[Recorder, Recorder]]:
    first, second = Recorder(), Recorder()
    first.server = await serve(first.app(), "127.0.0.1", 0)
    second.server = await serve(second.app(), "127.0.0.1", 0)
    try:
        yield first, second
    finally:
        await first.server.stop()
        await second.server.stop()


# ----------------------------------------------------------------------------- the rule


def test_a_token_goes_only_to_configured_origins_over_https_or_to_configured_loopback() -> None:
    scope = CredentialScope.of(
        "up42", ["https://api.up42.com", "http://127.0.0.1:8081/token"], domain=".up42.com"
    )
    assert scope.allows("https://api.up42.com/v2/assets/stac/search")
    assert scope.allows("https://auth.up42.com/realms/x"), "the provider's own domain, over https"
    assert scope.allows("http://127.0.0.1:8081/v2/assets/1"), "the simulator: a configured loopback origin"
    assert not scope.allows("http://api.up42.com/v2/assets/1"), "never over plain http"
    assert not scope.allows("https://api.up42.com.evil.example/v2"), "a look-alike host"
    assert not scope.allows("https://evil.example/?host=api.up42.com")
    assert not scope.allows("http://127.0.0.1:9999/v2/assets/1"), "another port is another origin"
    assert not scope.allows("ftp://api.up42.com/file")
    assert origin("HTTPS://API.up42.com/x") == "https://api.up42.com:443"
    assert "https://evil.example:443" in scope.refusal("https://evil.example/a?token=x")
    assert "token=x" not in scope.refusal("https://evil.example/a?token=x")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TASKING_UP42__BASE_URL", "http://api.up42.com"), ("TASKING_ONEATLAS__DATA_URL", "http://10.1.2.3:80")],
)
def test_a_provider_url_over_plain_http_to_a_remote_host_stops_the_start(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({variable: value})
    assert str(caught.value).startswith(variable + ":")
    assert "https" in str(caught.value)


def test_plain_http_to_a_loopback_host_is_allowed_in_configuration() -> None:
    settings = settings_from({"TASKING_UP42__BASE_URL": "http://127.0.0.1:8081"})
    assert str(settings.up42.base_url) == "http://127.0.0.1:8081/"


# ----------------------------------------------------------------------------- the worker's calls


async def test_a_stac_next_link_to_another_origin_is_refused_and_gets_no_token(
    recorders: tuple[Recorder, Recorder],
) -> None:
    _, other = recorders
    fake = FakeUp42()
    fake.on(
        "GET",
        "/v2/assets",
        reply(200, p.assets_page([p.storage_asset(p.CNAM_ASSET, "2026-01-09T10:00:00Z")])),
    )
    foreign = {"rel": "next", "href": f"{other.url}/v2/assets/stac/search", "method": "POST", "body": {}}
    fake.on(
        "POST",
        "/v2/assets/stac/search",
        reply(200, {"type": "FeatureCollection", "features": [p.cnam_item()], "links": [foreign]}),
    )
    scripted = httpx.MockTransport(fake.handler)
    mounts = {
        "https://api.up42.com": scripted,
        "https://auth.up42.test": scripted,
        "all://": httpx.AsyncHTTPTransport(),
    }
    async with httpx.AsyncClient(mounts=mounts) as client:
        provider = Up42Provider(p.settings(base_url=p.API), p.http_settings(), client=client)
        with pytest.raises(ProviderProtocolError) as caught:
            await provider.find_deliveries([PlacedOrder(tracking_key=p.ORDER_ID, refs={})], None)
    assert f"{origin(other.url)} is not a configured up42 origin" in caught.value.message
    assert other.seen == [], "nothing at all is sent to the other origin"
    tokens = [r.headers["authorization"] for r in fake.requests if "authorization" in r.headers]
    assert tokens, "the provider's own calls carry the token"
    assert all(t not in caught.value.message for t in tokens)


# ----------------------------------------------------------------------------- downloads


def consoles() -> tuple[Console, Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Console(file=out, width=200), Console(file=err, width=200), out, err


def item_with(href: str, *, needs_auth: bool, size: int | None = None) -> dict[str, Any]:
    product = DeliveredProduct(
        item_id="item-scope",
        tracking_key=p.ORDER_ID,
        geometry=oa.TOULOUSE,
        bbox=[1.3, 43.5, 1.5, 43.7],
        datetime=datetime(2026, 1, 9, tzinfo=UTC),
        assets=[ProductAsset(key="data", href=href, roles=["data"], needs_auth=needs_auth, size=size)],
    )
    event = DeliveryEvent(
        request_id="req-scope", provider=Provider.UP42, product=product, occurred_at=datetime.now(UTC)
    )
    return event.stac_item()


async def download(
    env: dict[str, str], item: dict[str, Any], tmp_path: Path, client: httpx.AsyncClient | None = None
) -> tuple[int, str]:
    (tmp_path / "item.json").write_text(json.dumps(item))
    console, errors, _out, err = consoles()
    options = DownloadOptions(target=str(tmp_path / "item.json"), dest=tmp_path / "out", bars=False)
    code = await run(settings_from(env), options, console, errors, client=client)
    return code, err.getvalue()


def up42_env(base: str) -> dict[str, str]:
    return {
        "TASKING_UP42__USERNAME": p.USERNAME,
        "TASKING_UP42__PASSWORD": p.PASSWORD,
        "TASKING_UP42__AUTH_URL": base + "/realms/public/protocol/openid-connect/token",
        "TASKING_UP42__BASE_URL": base,
    }


async def test_a_download_href_on_another_origin_gets_no_token(
    recorders: tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    provider_host, other = recorders
    env = up42_env(provider_host.url)
    code, err = await download(env, item_with(f"{other.url}/v2/assets/x", needs_auth=True), tmp_path)
    assert code == 1
    assert "UNTRUSTED_HOST" in err
    assert f"{origin(other.url)} is not a configured up42 origin" in err
    assert other.seen == []


async def test_a_redirect_to_another_origin_drops_the_token(
    recorders: tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    provider_host, other = recorders
    provider_host.target = f"{other.url}/moved/file.bin"
    async with httpx.AsyncClient(follow_redirects=True) as client:
        code, err = await download(
            up42_env(provider_host.url),
            item_with(f"{provider_host.url}/hop", needs_auth=True, size=len(BODY)),
            tmp_path,
            client,
        )
    assert code == 0, err
    assert provider_host.authorizations(), "the provider's own origin gets the token"
    assert [(m, path) for m, path, _ in other.seen] == [("GET", "/moved/file.bin")]
    assert other.authorizations() == [], "the redirect target gets no credentials"


async def test_a_provider_host_over_plain_http_gets_no_token(tmp_path: Path) -> None:
    fake = FakeUp42()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
        code, err = await download(
            up42_env("https://api.up42.com"),
            item_with("http://api.up42.com/v2/assets/x", needs_auth=True),
            tmp_path,
            client,
        )
    assert code == 1
    assert "UNTRUSTED_HOST" in err
    assert not any(r.url.scheme == "http" for r in fake.requests), "nothing goes out over http"


# ----------------------------------------------------------------------------- If-Range


class Cutting(httpx.AsyncBaseTransport):
    """The simulator, with the first file transfer cut after ``after`` bytes; ``change`` runs at
    the cut (the file changes at the provider in between). Records each file GET's headers."""

    def __init__(self, sim: Up42Simulator, after: int, change: Any = None) -> None:
        self._inner = httpx.ASGITransport(app=sim.app)
        self._after = after
        self._change = change
        self.gets: list[httpx.Headers] = []
        self.etags: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method != "GET" or "/_storage/" not in request.url.path:
            return response
        self.gets.append(request.headers)
        self.etags.append(response.headers.get("etag", ""))
        if len(self.gets) > 1:
            return response
        body = await response.aread()
        if self._change is not None:
            self._change()
        return httpx.Response(
            response.status_code, headers=response.headers, stream=_Cut(body[: self._after])
        )


class _Cut(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data
        raise httpx.ReadError("connection reset")


def stored(sim: Up42Simulator) -> str:
    asset = sim.storage.store(
        order_id=p.ORDER_ID,
        workspace_id=sim.workspace_id,
        product_id="phr",
        geometry=oa.TOULOUSE,
        at=sim.core.clock.now(),
        scenes=[{"eo:cloud_cover": 3.0}],
    )
    return asset.id


def sim_env(sim: Up42Simulator) -> dict[str, str]:
    return {
        "TASKING_UP42__USERNAME": sim.username,
        "TASKING_UP42__PASSWORD": sim.password,
        "TASKING_UP42__WORKSPACE_ID": sim.workspace_id,
        "TASKING_UP42__BASE_URL": "https://api.up42.com",
        "TASKING_UP42__AUTH_URL": "https://auth.up42.com/realms/public/protocol/openid-connect/token",
    }


@pytest.mark.parametrize("changed", [False, True], ids=["same-file", "changed-at-the-provider"])
async def test_a_resume_sends_if_range_and_starts_over_when_the_file_changed(
    tmp_path: Path, changed: bool
) -> None:
    sim = Up42Simulator()
    asset_id = stored(sim)
    size = sim.storage.files[asset_id][0]
    transport = Cutting(sim, size // 3, (lambda: sim.storage.revise(asset_id)) if changed else None)
    item = item_with(f"https://api.up42.com/v2/assets/{asset_id}", needs_auth=True, size=size)
    async with httpx.AsyncClient(transport=transport) as client:
        code, err = await download(sim_env(sim), item, tmp_path, client)
        assert code == 0, err
    (target,) = [f for f in (tmp_path / "out" / "item-scope").iterdir() if not f.name.endswith(".json")]
    first, resumed = transport.gets
    assert "if-range" not in first
    assert resumed["range"] == f"bytes={size // 3}-"
    assert resumed["if-range"] == transport.etags[0], "the ETag of the first response"
    expected = content_of(f"{asset_id}:1", size) if changed else sim.storage.content(asset_id, size)
    assert target.read_bytes() == expected, "never stitched from two versions"
    assert not list(target.parent.glob("*.validator")), "nothing is left beside a finished file"
