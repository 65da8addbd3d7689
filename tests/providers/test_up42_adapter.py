"""Up42Provider against ``httpx.MockTransport`` with reference-shaped payloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from providers import up42_payloads as p

from worker.domain.ports import (
    OrderContext,
    PlacedOrder,
    QuotationDecision,
    RemotePhase,
    StudyDecision,
    TaskingProvider,
)
from worker.errors import (
    InvalidOrderParams,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderNotConfigured,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from worker.events.models import AcquisitionStatus, Automation
from worker.providers.up42 import Up42Provider, reference_tags, translate_error
from worker.simulators.up42_schemas import (
    BLACKSKY_TASKING_PRODUCT_ID,
    MAXAR_TASKING_PRODUCT_ID,
    PLEIADES_TASKING_PRODUCT_ID,
    PRODUCT_SCHEMAS,
)

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception
PLACED = PlacedOrder(tracking_key=p.ORDER_ID, refs={"orderId": p.ORDER_ID})
CTX = OrderContext()


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class FakeUp42:
    """A scripted UP42: replies queued per ``(method, path)``; the last reply repeats."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.tokens = 0
        self.on("GET", "/realms/public/protocol/openid-connect/userinfo", reply(200, {"sub": p.WORKSPACE}))
        for product, schema in PRODUCT_SCHEMAS.items():
            self.on("GET", f"/orders/schema/{product}", reply(200, schema))

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, path)] = list(replies)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/token") and ("POST", request.url.path) not in self.routes:
            self.tokens += 1
            return reply(200, p.token(self.tokens))
        queue = self.routes.get((request.method, request.url.path))
        if not queue:
            return reply(404, {"code": 404, "message": f"no route {request.url.path}"})
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item(request) if callable(item) else item

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def token_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/token")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeUp42:
    return FakeUp42()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(
    fake: FakeUp42, sleeps: list[float] | None = None, clock: Clock | None = None, **overrides: Any
) -> Up42Provider:
    async def no_sleep(delay: float) -> None:
        if sleeps is not None:
            sleeps.append(delay)

    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    kwargs: dict[str, Any] = {"client": client, "sleep": no_sleep}
    if clock is not None:
        kwargs["clock"] = clock
    return Up42Provider(p.settings(**overrides), p.http_settings(), **kwargs)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


# ------------------------------------------------------------------------------ construction, auth


def test_implements_the_protocol(fake: FakeUp42) -> None:
    assert isinstance(make(fake), TaskingProvider)


def test_not_configured_without_credentials() -> None:
    with pytest.raises(ProviderNotConfigured):
        Up42Provider(p.settings(username=None), p.http_settings())
    with pytest.raises(ProviderNotConfigured):
        Up42Provider(p.settings(password=None), p.http_settings())


@pytest.mark.parametrize("client_id", ["up42-api", "up42-sdk"])
async def test_password_grant_form_and_bearer(fake: FakeUp42, client_id: str) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(status="PLACED")))
    provider = make(fake, client_id=client_id)
    await provider.get_order(PLACED)
    (token_request,) = fake.token_requests()
    assert str(token_request.url) == p.AUTH
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form_of(token_request) == {
        "grant_type": "password",
        "username": p.USERNAME,
        "password": p.PASSWORD,
        "client_id": client_id,
    }
    (api,) = fake.sent("GET", f"/v2/orders/{p.ORDER_ID}")
    assert api.headers["authorization"] == "Bearer eyJ.sim.token-1"
    assert "authorization" not in token_request.headers


async def test_token_renewed_30s_before_its_5_minutes(fake: FakeUp42) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(status="PLACED")))
    clock = Clock()
    provider = make(fake, clock=clock)
    await provider.get_order(PLACED)
    clock.now += 269  # 300 s lifetime - 30 s margin = 270 s
    await provider.get_order(PLACED)
    assert len(fake.token_requests()) == 1
    clock.now += 2
    await provider.get_order(PLACED)
    assert len(fake.token_requests()) == 2
    headers = [r.headers["authorization"] for r in fake.sent("GET", f"/v2/orders/{p.ORDER_ID}")]
    assert headers == ["Bearer eyJ.sim.token-1"] * 2 + ["Bearer eyJ.sim.token-2"]


async def test_one_renewal_on_401_then_success(fake: FakeUp42) -> None:
    fake.on(
        "GET", f"/v2/orders/{p.ORDER_ID}", reply(401, p.LEGACY_EXPIRED), reply(200, p.order(status="PLACED"))
    )
    snapshot = await make(fake).get_order(PLACED)
    assert snapshot.phase is RemotePhase.ACTIVE
    assert len(fake.token_requests()) == 2
    calls = fake.sent("GET", f"/v2/orders/{p.ORDER_ID}")
    assert [c.headers["authorization"] for c in calls] == ["Bearer eyJ.sim.token-1", "Bearer eyJ.sim.token-2"]


async def test_persistent_401_is_an_auth_error_after_one_renewal(fake: FakeUp42) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(401, p.LEGACY_EXPIRED))
    with pytest.raises(ProviderAuthError, match="ACCESS_TOKEN_EXPIRED") as info:
        await make(fake).get_order(PLACED)
    assert len(fake.sent("GET", f"/v2/orders/{p.ORDER_ID}")) == 2
    assert "eyJ.sim.token" not in str(info.value)


async def test_refused_credentials_never_leak(fake: FakeUp42) -> None:
    fake.on("POST", "/realms/public/protocol/openid-connect/token", reply(401, p.KEYCLOAK_401))
    with pytest.raises(ProviderAuthError) as info:
        await make(fake).get_order(PLACED)
    text = f"{info.value} {info.value.details} {info.value!r}"
    assert info.value.provider_code == "invalid_grant"
    assert p.PASSWORD not in text
    assert fake.sent("GET", f"/v2/orders/{p.ORDER_ID}") == []


async def test_workspace_from_userinfo_sub_is_cached(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", reply(200, p.CREATE_OK))
    provider = make(fake)
    await provider.place_order(p.order_request(), CTX)
    await provider.place_order(p.order_request(requestId="req-panama-002"), CTX)
    assert len(fake.sent("GET", "/realms/public/protocol/openid-connect/userinfo")) == 1
    posts = fake.sent("POST", "/v2/orders")
    assert [r.url.params["workspaceId"] for r in posts] == [p.WORKSPACE, p.WORKSPACE]


async def test_configured_workspace_skips_userinfo(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", reply(200, p.CREATE_OK))
    await make(fake, workspace_id="ws-configured").place_order(p.order_request(), CTX)
    assert fake.sent("GET", "/realms/public/protocol/openid-connect/userinfo") == []
    assert fake.sent("POST", "/v2/orders")[0].url.params["workspaceId"] == "ws-configured"


# ------------------------------------------------------------------------------ params


async def test_schema_fetched_once_per_product(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders/estimate", reply(200, p.ESTIMATE_OK))
    provider = make(fake)
    await provider.validate(p.order_request())
    await provider.validate(p.order_request(requestId="other"))
    await provider.price(p.order_request(), CTX)
    assert len(fake.sent("GET", f"/orders/schema/{PLEIADES_TASKING_PRODUCT_ID}")) == 1


async def test_order_body_params_geometry_display_name_tags(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", reply(200, p.CREATE_OK))
    placed = await make(fake).place_order(p.order_request(), CTX)
    assert placed == PlacedOrder(tracking_key=p.ORDER_ID, refs={"orderId": p.ORDER_ID})
    body = body_of(fake.sent("POST", "/v2/orders")[0])
    assert body["params"] == {
        "acquisitionStart": "2026-08-01T00:00:00.000Z",
        "acquisitionEnd": "2026-10-01T00:00:00.000Z",
        "acquisitionMode": "mono",
        "cloudCoverage": 10,
        "incidenceAngle": 10,
        "geometricProcessing": "ortho",
        "spectralProcessing": "bundle",
        "pixelCoding": "12bits",
        "radiometricProcessing": "reflectance",
        "deliveredAs": "geotiff",
        "projection": "4326",
        "extraDescription": "Capture high resolution images over my AOI",
    }
    assert isinstance(body["params"]["cloudCoverage"], int)
    assert body["dataProduct"] == PLEIADES_TASKING_PRODUCT_ID
    assert body["displayName"] == "req-panama-001"
    assert body["tags"] == ["req-panama-001"]
    (feature,) = body["featureCollection"]["features"]
    assert feature["geometry"] == {"type": "Polygon", "coordinates": [p.PANAMA_RING]}


async def test_required_single_values_filled_from_schema(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", reply(200, p.CREATE_OK))
    request = p.order_request(
        processing=None, comments=None, constraints={"maxCloudCover": 12.7, "maxIncidenceAngle": 30}
    )
    await make(fake).place_order(request, CTX)
    params = body_of(fake.sent("POST", "/v2/orders")[0])["params"]
    assert params["geometricProcessing"] == "ortho"
    assert params["spectralProcessing"] == "bundle"
    assert params["deliveredAs"] == "geotiff"
    assert params["cloudCoverage"] == 12  # a maximum rounds down: never above the customer's limit
    assert "extraDescription" not in params
    assert "projection" not in params  # optional: not filled


async def test_custom_display_name_and_unsafe_reference(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", reply(200, p.CREATE_OK))
    request = p.order_request(customerReference="ACME#42 (north)", displayName="Canal survey")
    await make(fake).place_order(request, CTX)
    body = body_of(fake.sent("POST", "/v2/orders")[0])
    assert body["displayName"] == "Canal survey"
    assert body["tags"][0] == "ACME_42 _north_"
    assert body["tags"][1].startswith("ref-sha256:")
    assert reference_tags("ACME#42 (north)") != reference_tags("ACME*42 (north)")
    assert "geometry" not in body["params"]
    assert "displayName" not in body["params"]


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (
            {"constraints": {"maxCloudCover": 50}},
            ["params.cloudCoverage", "constraints.maxCloudCover", "maximum"],
        ),
        ({"constraints": {"maxIncidenceAngle": 2}}, ["params.incidenceAngle", "minimum"]),
        (
            {"processing": {"processingLevel": "primary"}},
            ["params.geometricProcessing", "processing.processingLevel", "anyOf", "ortho"],
        ),
        (
            {"providerOptions": {"spectralProcessing": "pansharpened"}},
            ["params.spectralProcessing", "providerOptions.spectralProcessing"],
        ),
        ({"providerOptions": {"colour": "blue"}}, ["additionalProperties", "colour"]),
        (
            {"providerOptions": {"geometry": {"type": "Point", "coordinates": [0, 0]}}},
            ["providerOptions.geometry", "featureCollection"],
        ),
    ],
)
async def test_invalid_params_name_the_field_and_nothing_is_sent(
    fake: FakeUp42, overrides: dict[str, Any], fragments: list[str]
) -> None:
    provider = make(fake)
    with pytest.raises(InvalidOrderParams) as info:
        await provider.place_order(p.order_request(**overrides), CTX)
    for fragment in fragments:
        assert fragment in info.value.message
    assert info.value.reason_code == "INVALID_REQUEST"
    assert fake.sent("POST", "/v2/orders") == []


async def test_schema_drives_names_and_requirements_maxar(fake: FakeUp42) -> None:
    product = {"dataProductId": MAXAR_TASKING_PRODUCT_ID}
    provider = make(fake)
    with pytest.raises(InvalidOrderParams, match=r"params\.spectralBands.*required"):
        await provider.validate(p.order_request(product=product, processing=None))
    fake.on("POST", "/v2/orders", reply(200, p.CREATE_OK))
    request = p.order_request(
        product=product,
        processing=None,
        providerOptions={"spectralBands": "bundle_8_band"},
        constraints={"maxCloudCover": 25, "maxIncidenceAngle": 10},
    )
    await provider.place_order(request, CTX)
    params = body_of(fake.sent("POST", "/v2/orders")[0])["params"]
    assert params["maxCloudCover"] == 25
    assert params["maxIncidenceAngle"] == 10
    assert "cloudCoverage" not in params
    assert params["pixelCoding"] == "16bit"  # single allowed value
    assert params["priority"] == "standard"  # schema default
    assert params["radiometricProcessing"] == "toa"
    assert params["spectralBands"] == "bundle_8_band"


async def test_product_without_the_parameter_or_geometry_type(fake: FakeUp42) -> None:
    provider = make(fake)
    blacksky = {"dataProductId": BLACKSKY_TASKING_PRODUCT_ID}
    with pytest.raises(InvalidOrderParams, match=r"constraints\.maxIncidenceAngle.*no such parameter"):
        await provider.validate(p.order_request(product=blacksky, processing=None))
    with pytest.raises(InvalidOrderParams, match=r"params\.geometry\.type"):
        await provider.validate(
            p.order_request(
                product=blacksky,
                processing=None,
                comments=None,
                constraints={"maxCloudCover": 40, "maxIncidenceAngle": None},
            )
        )


# ------------------------------------------------------------------------------ estimate, create


async def test_estimate_is_an_indicative_credit_price(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders/estimate", reply(200, p.ESTIMATE_OK))
    quote = await make(fake).price(p.order_request(), CTX)
    assert (quote.amount, quote.currency, quote.area_km2, quote.indicative) == (10, "CREDITS", 50, True)
    (sent,) = fake.sent("POST", "/v2/orders/estimate")
    assert "workspaceId" not in sent.url.params
    assert body_of(sent)["params"]["cloudCoverage"] == 10


@pytest.mark.parametrize("path", ["/v2/orders/estimate", "/v2/orders"])
async def test_per_item_errors_at_http_200_are_refusals(fake: FakeUp42, path: str) -> None:
    fake.on("POST", path, reply(200, p.ITEM_ERROR))
    provider = make(fake)
    call = provider.price if path.endswith("estimate") else provider.place_order
    with pytest.raises(ProviderRejected, match="Invalid geometry") as info:
        await call(p.order_request(), CTX)
    assert info.value.status_code == 200
    assert not isinstance(info.value, InvalidOrderParams)


async def test_create_400_is_rejected(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", reply(400, p.BASIC_400))
    with pytest.raises(ProviderRejected, match="Order parameters errors") as info:
        await make(fake).place_order(p.order_request(), CTX)
    assert info.value.status_code == 400
    assert len(fake.sent("POST", "/v2/orders")) == 1


async def test_write_timeout_is_outcome_unknown_after_one_post(fake: FakeUp42) -> None:
    fake.on("POST", "/v2/orders", httpx.ReadTimeout("lost"))
    with pytest.raises(OutcomeUnknown):
        await make(fake).place_order(p.order_request(), CTX)
    assert len(fake.sent("POST", "/v2/orders")) == 1


@pytest.mark.parametrize("status", [500, 503, 524])
async def test_write_5xx_is_outcome_unknown_never_resent(fake: FakeUp42, status: int) -> None:
    fake.on("POST", "/v2/orders", reply(status, {"code": status, "message": "gateway"}))
    with pytest.raises(OutcomeUnknown):
        await make(fake).place_order(p.order_request(), CTX)
    assert len(fake.sent("POST", "/v2/orders")) == 1


# ------------------------------------------------------------------------------ find_order


async def test_find_order_walks_pages_and_matches_the_exact_tag(fake: FakeUp42) -> None:
    other = p.order("00000000-0000-4000-8000-00000000000a", tags=["req-panama-001-old"])
    match = p.order(tags=["req-panama-001", "team"])
    fake.on(
        "GET",
        "/v2/orders",
        reply(200, p.page([other], number=0, size=1, total=2)),
        reply(200, p.page([match], number=1, size=1, total=2)),
    )
    found = await make(fake).find_order(p.order_request())
    assert found is not None
    assert (found.tracking_key, found.refs) == (p.ORDER_ID, {"orderId": p.ORDER_ID})
    assert {"aoi", "window"} <= set(found.identity)  # what the listing states, for the check
    pages = fake.sent("GET", "/v2/orders")
    assert [r.url.params["page"] for r in pages] == ["0", "1"]
    assert all(r.url.params["tags"] == "req-panama-001" for r in pages)
    assert all(r.url.params["workspaceId"] == p.WORKSPACE for r in pages)


async def test_find_order_falls_back_to_display_name_then_none(fake: FakeUp42) -> None:
    untagged = p.order(tags=[], displayName="req-panama-001")
    near = p.order("00000000-0000-4000-8000-00000000000b", tags=[], displayName="req-panama-0012")

    def listing(request: httpx.Request) -> httpx.Response:
        if "displayName" in request.url.params:
            return reply(200, p.page([near, untagged]))
        return reply(200, p.page([]))

    fake.on("GET", "/v2/orders", listing)
    found = await make(fake).find_order(p.order_request())
    assert found is not None
    assert found.tracking_key == p.ORDER_ID
    fake.on("GET", "/v2/orders", reply(200, p.page([near])))
    assert await make(fake).find_order(p.order_request()) is None


# ------------------------------------------------------------------------------ get_order, mapping

STUDIES = "/v2/tasking/feasibility-studies"
QUOTES = "/v2/tasking/quotation"


@pytest.mark.parametrize(
    ("status", "sub", "phase"),
    [
        ("CREATED", "FEASIBILITY_WAITING_UPLOAD", RemotePhase.FEASIBILITY_STUDY),
        ("CREATED", None, RemotePhase.FEASIBILITY_STUDY),
        ("CREATED", "QUOTATION_ACCEPTED", RemotePhase.ACTIVE),
        ("BEING_PLACED", "QUOTATION_ACCEPTED", RemotePhase.ACTIVE),
        ("PLACED", "FEASIBILITY_WAITING_UPLOAD", RemotePhase.ACTIVE),  # recorded stale subStatus
        ("PLACEMENT_FAILED", "QUOTATION_ACCEPTED", RemotePhase.ACTIVE),
        ("FAILED_PERMANENTLY", "QUOTATION_ACCEPTED", RemotePhase.FAILED),
        ("FAILED", None, RemotePhase.FAILED),
        ("FAILED_PERMANENTLY", "QUOTATION_REJECTED", RemotePhase.REJECTED),
        ("CANCELED", "FEASIBILITY_WAITING_RESPONSE", RemotePhase.CANCELLED),
        ("SOMETHING_NEW", "FEASIBILITY_WAITING_RESPONSE", RemotePhase.ACTIVE),
    ],
)
async def test_status_mapping_without_extra_reads(
    fake: FakeUp42, status: str, sub: str | None, phase: RemotePhase
) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(status=status, sub_status=sub)))
    snapshot = await make(fake).get_order(PLACED)
    assert snapshot.phase is phase
    assert snapshot.study is None
    assert snapshot.quotation is None
    assert fake.sent("GET", STUDIES) == []
    assert fake.sent("GET", QUOTES) == []


@pytest.mark.parametrize(
    ("status", "sub"),
    [
        ("BEING_FULFILLED", "FEASIBILITY_WAITING_UPLOAD"),
        ("DOWNLOADED", None),
        ("DELIVERY_INITIALIZATION_FAILED", None),
        ("DOWNLOAD_FAILED", "QUOTATION_ACCEPTED"),
        ("FULFILLED", "QUOTATION_ACCEPTED"),
    ],
)
async def test_acquiring_and_completed_read_coverage(fake: FakeUp42, status: str, sub: str | None) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(status=status, sub_status=sub)))
    fake.on("GET", f"/v2/coverage/orders/{p.ORDER_ID}", reply(200, p.COVERAGE))
    snapshot = await make(fake).get_order(PLACED)
    expected = RemotePhase.COMPLETED if status == "FULFILLED" else RemotePhase.ACQUIRING
    assert snapshot.phase is expected
    assert snapshot.coverage_pct == 85.0
    assert snapshot.change_marker is not None
    assert fake.sent("GET", STUDIES) == []


async def test_manual_study_waiting_for_an_option(fake: FakeUp42) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(sub_status="FEASIBILITY_WAITING_RESPONSE")))
    fake.on("GET", STUDIES, reply(200, p.page([p.MANUAL_STUDY_OPEN])))
    snapshot = await make(fake).get_order(PLACED)
    assert snapshot.phase is RemotePhase.AWAITING_OPTION
    assert snapshot.study is not None
    assert snapshot.study.automation is Automation.MANUAL
    assert snapshot.study.decision is StudyDecision.NOT_DECIDED
    assert [o.id for o in snapshot.study.options] == [p.OPTION_A, p.OPTION_B]
    assert snapshot.refs == {"orderId": p.ORDER_ID, "feasibilityStudyId": p.STUDY_ID}
    assert fake.sent("GET", STUDIES)[0].url.params["orderId"] == p.ORDER_ID
    assert fake.sent("GET", QUOTES) == []


async def test_quotation_ready_with_auto_study(fake: FakeUp42) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(sub_status="QUOTATION_WAITING_RESPONSE")))
    fake.on("GET", STUDIES, reply(200, p.page([p.AUTO_STUDY])))
    fake.on("GET", QUOTES, reply(200, p.page([p.quotation()])))
    snapshot = await make(fake).get_order(PLACED)
    assert snapshot.phase is RemotePhase.QUOTATION_READY
    assert snapshot.study is not None
    assert snapshot.study.automation is Automation.AUTOMATIC
    assert snapshot.study.decision is StudyDecision.ACCEPTED
    assert snapshot.study.options == []
    assert snapshot.quotation is not None
    assert (snapshot.quotation.amount, snapshot.quotation.currency) == (300, "CREDITS")
    assert snapshot.quotation.decision is QuotationDecision.NOT_DECIDED
    assert snapshot.refs["quotationId"] == p.QUOTATION_ID
    assert snapshot.provider_status == "CREATED/QUOTATION_WAITING_RESPONSE"


async def test_lagging_sub_status_is_corrected_by_the_objects(fake: FakeUp42) -> None:
    fake.on(
        "GET",
        f"/v2/orders/{p.ORDER_ID}",
        reply(200, p.order(sub_status="FEASIBILITY_WAITING_RESPONSE")),
        reply(200, p.order(sub_status="QUOTATION_WAITING_RESPONSE")),
    )
    fake.on("GET", STUDIES, reply(200, p.page([p.manual_study_decided()])))
    fake.on("GET", QUOTES, reply(200, p.page([])))
    provider = make(fake)
    first = await provider.get_order(PLACED)
    assert first.phase is RemotePhase.AWAITING_QUOTATION
    assert first.study is not None
    assert first.study.chosen_option_id == p.OPTION_B
    second = await provider.get_order(PLACED)
    assert second.phase is RemotePhase.AWAITING_QUOTATION  # no quotation yet


async def test_unknown_status_keeps_the_previous_phase(fake: FakeUp42) -> None:
    fake.on(
        "GET",
        f"/v2/orders/{p.ORDER_ID}",
        reply(200, p.order(status="BEING_FULFILLED", sub_status=None)),
        reply(200, p.order(status="FUTURE_STATUS", sub_status=None)),
    )
    fake.on("GET", f"/v2/coverage/orders/{p.ORDER_ID}", reply(200, p.COVERAGE))
    provider = make(fake)
    assert (await provider.get_order(PLACED)).phase is RemotePhase.ACQUIRING
    snapshot = await provider.get_order(PLACED)
    assert snapshot.phase is RemotePhase.ACQUIRING
    assert snapshot.provider_status == "FUTURE_STATUS"


# ------------------------------------------------------------------------------ poll


def _fleet(n: int) -> list[dict[str, Any]]:
    orders = []
    for i in range(n):
        order_id = f"00000000-0000-4000-8000-{i:012d}"
        if i % 50 == 0:
            orders.append(p.order(order_id, sub_status="FEASIBILITY_WAITING_RESPONSE"))
        elif i % 3 == 0:
            orders.append(
                p.order(order_id, status="BEING_FULFILLED", sub_status="FEASIBILITY_WAITING_UPLOAD")
            )
        else:
            orders.append(p.order(order_id, status="PLACED", sub_status="QUOTATION_ACCEPTED"))
    return orders


def _paged(orders: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def listing(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["page"]), int(request.url.params["size"])
        chunk = orders[number * size : (number + 1) * size]
        return reply(200, p.page(chunk, number=number, size=size, total=len(orders)))

    return listing


async def test_poll_250_orders_costs_pages_not_orders(fake: FakeUp42) -> None:
    orders = _fleet(250)
    fake.on("GET", "/v2/orders", _paged(orders))
    fake.on("GET", STUDIES, reply(200, p.page([p.MANUAL_STUDY_OPEN])))
    for o in orders:
        if o["status"] == "BEING_FULFILLED":
            fake.on("GET", f"/v2/coverage/orders/{o['id']}", reply(200, p.COVERAGE))
    provider = make(fake)
    keys = [o["id"] for o in orders]
    snapshots = await provider.poll(keys)
    assert set(snapshots) == set(keys)
    lists = fake.sent("GET", "/v2/orders")
    assert len(lists) == 3  # 250 orders / 100 per page
    assert all(r.url.params["type"] == "TASKING" for r in lists)
    assert len(fake.sent("GET", STUDIES)) == 5  # only the orders waiting on a study
    assert snapshots[keys[0]].snapshot.phase is RemotePhase.AWAITING_OPTION
    assert snapshots[keys[3]].snapshot.phase is RemotePhase.ACQUIRING
    assert snapshots[keys[1]].snapshot.phase is RemotePhase.ACTIVE
    acquiring = sum(1 for o in orders if o["status"] == "BEING_FULFILLED")
    coverage_calls = sum(1 for r in fake.requests if r.url.path.startswith("/v2/coverage/"))
    assert coverage_calls == acquiring
    fake.requests.clear()
    await provider.poll(keys)  # nothing changed: coverage is not read again
    assert sum(1 for r in fake.requests if r.url.path.startswith("/v2/coverage/")) == 0
    assert len(fake.sent("GET", "/v2/orders")) == 3


async def test_poll_stops_once_every_key_was_seen(fake: FakeUp42) -> None:
    orders = _fleet(250)
    fake.on("GET", "/v2/orders", _paged(orders))
    snapshots = await make(fake).poll([orders[1]["id"], "not-there-" + orders[2]["id"][:8]])
    assert list(snapshots) == [orders[1]["id"]]
    assert len(fake.sent("GET", "/v2/orders")) == 3
    fake.requests.clear()
    await make(fake).poll([orders[1]["id"]])
    assert len(fake.sent("GET", "/v2/orders")) == 1


# ------------------------------------------------------------------------------ acquisitions


async def test_deliveries_from_stac_search_with_paging(fake: FakeUp42) -> None:
    first = {
        "type": "FeatureCollection",
        "features": [p.stac_item("item-1", 4.5)],
        "links": [
            {
                "rel": "next",
                "href": f"{p.BASE}/v2/assets/stac/search",
                "method": "POST",
                "body": {"token": "page-2"},
                "merge": True,
            }
        ],
    }
    second = {"type": "FeatureCollection", "features": [p.stac_item("item-2", 12.0)], "links": []}
    fake.on("POST", "/v2/assets/stac/search", reply(200, first), reply(200, second))
    acquisitions = await make(fake).list_acquisitions(PLACED)
    assert [a.id for a in acquisitions] == ["item-1", "item-2"]
    assert [a.cloud_cover for a in acquisitions] == [4.5, 12.0]
    assert all(a.status is AcquisitionStatus.DELIVERED for a in acquisitions)
    assert acquisitions[0].acquired_at is not None
    assert acquisitions[0].acquired_at.month == 8
    assert acquisitions[0].incidence_angle == 7.5
    assert acquisitions[0].refs == {"orderId": p.ORDER_ID, "assetId": "asset-item-1"}
    assert acquisitions[0].footprint is not None
    assert acquisitions[0].footprint["type"] == "Polygon"
    bodies = [body_of(r) for r in fake.sent("POST", "/v2/assets/stac/search")]
    assert bodies[0]["filter"] == {"op": "=", "args": [{"property": "up42-order:id"}, p.ORDER_ID]}
    assert bodies[1]["token"] == "page-2"
    assert bodies[1]["filter"] == bodies[0]["filter"]


async def test_no_per_acquisition_decision_nor_sync_feasibility(fake: FakeUp42) -> None:
    provider = make(fake)
    with pytest.raises(ProviderRejected, match="no per-acquisition decision"):
        await provider.decide_acquisition(PLACED, "item-1", True)
    with pytest.raises(ProviderRejected, match="no synchronous feasibility"):
        await provider.check_feasibility(p.order_request())
    with pytest.raises(ProviderRejected, match="no acquisition attempts"):
        await provider.find_attempts(p.order_request())
    assert fake.requests == []


# ------------------------------------------------------------------------------ study option


async def test_choose_option_reads_then_patches(fake: FakeUp42) -> None:
    fake.on("GET", STUDIES, reply(200, p.page([p.MANUAL_STUDY_OPEN])))
    fake.on("PATCH", f"{STUDIES}/{p.STUDY_ID}", reply(200, p.manual_study_decided()))
    await make(fake).choose_option(PLACED, p.STUDY_ID, p.OPTION_B)
    (get,) = fake.sent("GET", STUDIES)
    assert get.url.params["id"] == p.STUDY_ID
    (patch,) = fake.sent("PATCH", f"{STUDIES}/{p.STUDY_ID}")
    assert body_of(patch) == {"acceptedOptionId": p.OPTION_B}


async def test_choose_option_already_decided(fake: FakeUp42) -> None:
    fake.on("GET", STUDIES, reply(200, p.page([p.manual_study_decided(p.OPTION_B)])))
    provider = make(fake)
    await provider.choose_option(PLACED, p.STUDY_ID, p.OPTION_B)  # same option: success
    with pytest.raises(ProviderRejected, match="already decided"):
        await provider.choose_option(PLACED, p.STUDY_ID, p.OPTION_A)
    fake.on("GET", STUDIES, reply(200, p.page([p.MANUAL_STUDY_OPEN])))
    with pytest.raises(ProviderRejected, match="no option"):
        await provider.choose_option(PLACED, p.STUDY_ID, "unknown-option")
    assert fake.sent("PATCH", f"{STUDIES}/{p.STUDY_ID}") == []


async def test_choose_option_405_and_timeout(fake: FakeUp42) -> None:
    fake.on("GET", STUDIES, reply(200, p.page([p.MANUAL_STUDY_OPEN])))
    fake.on("PATCH", f"{STUDIES}/{p.STUDY_ID}", reply(405, p.STUDY_405))
    provider = make(fake)
    with pytest.raises(ProviderRejected, match="write-protected") as info:
        await provider.choose_option(PLACED, p.STUDY_ID, p.OPTION_A)
    assert info.value.status_code == 405
    fake.on("PATCH", f"{STUDIES}/{p.STUDY_ID}", httpx.ReadTimeout("lost"))
    with pytest.raises(OutcomeUnknown):
        await provider.choose_option(PLACED, p.STUDY_ID, p.OPTION_A)
    assert len(fake.sent("PATCH", f"{STUDIES}/{p.STUDY_ID}")) == 2


async def test_unknown_study_is_rejected(fake: FakeUp42) -> None:
    fake.on("GET", STUDIES, reply(200, p.page([])))
    with pytest.raises(ProviderRejected, match="has no"):
        await make(fake).choose_option(PLACED, p.STUDY_ID, p.OPTION_A)


# ------------------------------------------------------------------------------ quotation


@pytest.mark.parametrize("accept", [True, False])
async def test_decide_quotation_only_while_not_decided(fake: FakeUp42, accept: bool) -> None:
    fake.on("GET", QUOTES, reply(200, p.page([p.quotation()])))
    fake.on("PATCH", f"{QUOTES}/{p.QUOTATION_ID}", reply(200, p.quotation("ACCEPTED")))
    await make(fake).decide_quotation(PLACED, p.QUOTATION_ID, accept)
    (patch,) = fake.sent("PATCH", f"{QUOTES}/{p.QUOTATION_ID}")
    assert body_of(patch) == {"decision": "ACCEPTED" if accept else "REJECTED"}
    assert fake.sent("GET", QUOTES)[0].url.params["orderId"] == p.ORDER_ID


async def test_already_accepted_quotation_sends_no_patch(fake: FakeUp42) -> None:
    fake.on("GET", QUOTES, reply(200, p.page([p.quotation("ACCEPTED")])))
    provider = make(fake)
    await provider.decide_quotation(PLACED, p.QUOTATION_ID, True)
    with pytest.raises(ProviderRejected, match="already ACCEPTED"):
        await provider.decide_quotation(PLACED, p.QUOTATION_ID, False)
    assert fake.sent("PATCH", f"{QUOTES}/{p.QUOTATION_ID}") == []


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (405, p.QUOTATION_405, "write-protected"),
        (403, {"status": 403, "title": "Forbidden", "detail": {}}, "Viewer and Member"),
    ],
)
async def test_quotation_patch_refusals(fake: FakeUp42, status: int, body: Any, fragment: str) -> None:
    fake.on("GET", QUOTES, reply(200, p.page([p.quotation()])))
    fake.on("PATCH", f"{QUOTES}/{p.QUOTATION_ID}", reply(status, body))
    with pytest.raises(ProviderRejected, match=fragment) as info:
        await make(fake).decide_quotation(PLACED, p.QUOTATION_ID, True)
    assert info.value.status_code == status
    assert len(fake.sent("PATCH", f"{QUOTES}/{p.QUOTATION_ID}")) == 1


async def test_quotation_patch_5xx_is_outcome_unknown(fake: FakeUp42) -> None:
    fake.on("GET", QUOTES, reply(200, p.page([p.quotation()])))
    fake.on("PATCH", f"{QUOTES}/{p.QUOTATION_ID}", reply(502, None))
    with pytest.raises(OutcomeUnknown):
        await make(fake).decide_quotation(PLACED, p.QUOTATION_ID, True)
    assert len(fake.sent("PATCH", f"{QUOTES}/{p.QUOTATION_ID}")) == 1


# ------------------------------------------------------------------------------ cancel


@pytest.mark.parametrize("status", ["CREATED", "PLACEMENT_FAILED"])
async def test_cancel_allowed(fake: FakeUp42, status: str) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(200, p.order(status=status)))
    fake.on(
        "POST",
        f"/v2/orders/{p.ORDER_ID}/cancellation",
        reply(200, {"orderId": p.ORDER_ID, "status": "CANCELED"}),
    )
    await make(fake).cancel(PLACED)
    (post,) = fake.sent("POST", f"/v2/orders/{p.ORDER_ID}/cancellation")
    assert post.content == b""


async def test_cancel_refused_and_idempotent(fake: FakeUp42) -> None:
    fake.on(
        "GET",
        f"/v2/orders/{p.ORDER_ID}",
        reply(200, p.order(status="BEING_FULFILLED")),
        reply(200, p.order(status="CANCELED")),
    )
    provider = make(fake)
    with pytest.raises(ProviderRejected) as info:
        await provider.cancel(PLACED)
    assert info.value.message == (
        "UP42 allows cancellation only while CREATED or PLACEMENT_FAILED; order is BEING_FULFILLED"
    )
    await provider.cancel(PLACED)  # already CANCELED
    assert fake.sent("POST", f"/v2/orders/{p.ORDER_ID}/cancellation") == []


# ------------------------------------------------------------------------------ errors, retries


@pytest.mark.parametrize(
    ("status", "body", "operation", "kind", "fragment", "code"),
    [
        (404, p.TASKING_404, "get_study", ProviderRejected, "FeasibilityStudy) not found", None),
        (405, p.QUOTATION_405, "decide_quotation", ProviderRejected, "write-protected", "WRITE_PROTECTED"),
        (400, p.BASIC_400, "place_order", ProviderRejected, "Order parameters errors", "400"),
        (422, p.LEGACY_422, "search", ProviderRejected, "Invalid search", "VALIDATION_ERROR"),
        (401, p.LEGACY_EXPIRED, "get_order", ProviderAuthError, "ACCESS_TOKEN_EXPIRED", "UNAUTHORIZED"),
        (401, p.KEYCLOAK_401, "token", ProviderAuthError, "Invalid user credentials", "invalid_grant"),
        (
            400,
            {"error": "invalid_request", "error_description": "Missing grant"},
            "token",
            ProviderAuthError,
            "Missing grant",
            "invalid_request",
        ),
        (
            403,
            {"code": 403, "message": "Plan does not include tasking"},
            "place_order",
            ProviderRejected,
            "Plan does not include tasking",
            "403",
        ),
        (409, "plain text conflict", "cancel", ProviderRejected, "plain text conflict", None),
    ],
)
def test_translate_every_envelope(
    status: int, body: Any, operation: str, kind: type[Exception], fragment: str, code: str | None
) -> None:
    response = (
        httpx.Response(status, text=body) if isinstance(body, str) else httpx.Response(status, json=body)
    )
    error = translate_error(response, operation)
    assert type(error) is kind
    assert fragment in error.message
    assert error.provider_code == code


@pytest.mark.parametrize("status", [429, 500, 502, 503, 524])
def test_translate_leaves_5xx_and_429_to_the_shared_layer(status: int) -> None:
    assert translate_error(httpx.Response(status, json={"code": status}), "get_order") is None


async def test_reads_retry_5xx_and_524(fake: FakeUp42) -> None:
    fake.on(
        "GET",
        f"/v2/orders/{p.ORDER_ID}",
        reply(524, None),
        reply(502, {"code": 502}),
        reply(200, p.order(status="PLACED")),
    )
    snapshot = await make(fake).get_order(PLACED)
    assert snapshot.phase is RemotePhase.ACTIVE
    assert len(fake.sent("GET", f"/v2/orders/{p.ORDER_ID}")) == 3


async def test_reads_give_up_after_max_retries(fake: FakeUp42) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(503, None))
    with pytest.raises(ProviderUnavailable):
        await make(fake).get_order(PLACED)
    assert len(fake.sent("GET", f"/v2/orders/{p.ORDER_ID}")) == 4  # 1 + max_retries (3)


async def test_429_retry_after_is_honoured(fake: FakeUp42, sleeps: list[float]) -> None:
    fake.on(
        "GET",
        f"/v2/orders/{p.ORDER_ID}",
        reply(429, None, {"Retry-After": "7"}),
        reply(200, p.order(status="PLACED")),
    )
    await make(fake, sleeps).get_order(PLACED)
    assert sleeps
    assert sleeps[0] >= 7
    fake.on("POST", "/v2/orders", reply(429, None, {"Retry-After": "3"}), reply(200, p.CREATE_OK))
    placed = await make(fake, sleeps).place_order(p.order_request(), CTX)
    assert placed.tracking_key == p.ORDER_ID
    assert len(fake.sent("POST", "/v2/orders")) == 2  # a 429 was refused: safe to resend
    assert sleeps[-1] >= 3


async def test_rate_limited_when_429_persists(fake: FakeUp42) -> None:
    fake.on("GET", f"/v2/orders/{p.ORDER_ID}", reply(429, None))
    with pytest.raises(RateLimited):
        await make(fake).get_order(PLACED)
