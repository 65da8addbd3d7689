"""OneAtlas adapter against ``httpx.MockTransport`` replaying reference-shaped payloads."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from providers import oneatlas_payloads as oa
from structlog.testing import capture_logs

from worker.domain.ports import (
    Attempt,
    FeasibilityResult,
    OrderContext,
    PlacedOrder,
    QuotationDecision,
    RemotePhase,
    TaskingProvider,
)
from worker.errors import (
    InvalidOrderParams,
    NotFeasible,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from worker.events.models import AcquisitionStatus, Automation, Classification
from worker.providers.oneatlas import OneAtlasProvider

Answer = (
    tuple[int, Any] | tuple[int, Any, dict[str, str]] | Exception | Callable[[httpx.Request], httpx.Response]
)


class FakeApi:
    """A scripted OneAtlas: (method, path) → queued answers (the last one repeats)."""

    def __init__(self, token_type: str = "Bearer") -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.token_type = token_type
        self._tokens = (f"tok-{i}" for i in itertools.count(1))
        self.auth_answer: tuple[int, Any] | None = None

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == oa.AUTH_PATH:
            if self.auth_answer is not None:
                return httpx.Response(self.auth_answer[0], json=self.auth_answer[1])
            return httpx.Response(
                200, json={**oa.TOKEN, "access_token": next(self._tokens), "token_type": self.token_type}
            )
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, json={"errorCode": "E404", "message": "no route"})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        headers = answer[2] if len(answer) == 3 else {}
        return httpx.Response(answer[0], json=answer[1], headers=headers)

    def api(self, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.url.path != oa.AUTH_PATH
            and (method is None or r.method == method)
            and (path is None or r.url.path == path)
        ]

    def auth(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == oa.AUTH_PATH]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make(
    fake: FakeApi,
    *,
    clock: FakeClock | None = None,
    sleeps: Sleeps | None = None,
    page_size: int = 100,
    **settings: Any,
) -> OneAtlasProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    return OneAtlasProvider(
        oa.settings(**settings),
        oa.http_settings(),
        client=client,
        sleep=sleeps or Sleeps(),
        clock=clock or FakeClock(),
        page_size=page_size,
    )


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


LEGACY_PLACED = PlacedOrder(
    tracking_key="SAL21400001",
    refs={"salesOrderId": "SAL21400001", "taskingId": "ICR_FC_000001", "contractId": oa.LEGACY_CONTRACT},
)
NEO_PLACED = PlacedOrder(
    tracking_key="QUO22054973", refs={"quotationId": "QUO22054973", "contractId": oa.NEO_CONTRACT}
)
TASKINGS = f"/api/v1/contracts/{oa.LEGACY_CONTRACT}/taskings"
ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ============================================================================= protocol, config


def test_implements_the_protocol() -> None:
    provider = make(FakeApi())
    assert isinstance(provider, TaskingProvider)
    assert provider.name.value == "oneatlas"


async def test_not_configured_without_api_key_or_contract() -> None:
    fake = FakeApi()
    with pytest.raises(ProviderNotConfigured):
        await make(fake, api_key=None).check_feasibility(oa.request())
    with pytest.raises(ProviderNotConfigured):
        await make(fake, contract_id=None).validate(oa.request())
    # PNEO falls back to contract_id when no neo contract is set.
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_NEO))
    await make(fake, neo_contract_id=None).check_feasibility(oa.request("PLEIADESNEO"))
    assert body_of(fake.api("POST")[-1])["contractId"] == oa.LEGACY_CONTRACT
    assert fake.requests == fake.auth() + fake.api()[-1:]  # nothing sent when not configured


# ============================================================================= auth


async def test_auth_form_fields_and_token_reuse() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_LEGACY))
    provider = make(fake)
    await provider.check_feasibility(oa.request())
    await provider.check_feasibility(oa.request())
    [auth] = fake.auth()
    assert str(auth.url) == oa.AUTH_URL
    assert auth.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(auth.content.decode()) == {
        "apikey": [oa.API_KEY],
        "grant_type": ["api_key"],
        "client_id": ["IDP"],
    }
    calls = fake.api()
    assert [str(c.url) for c in calls] == [f"{oa.BASE}/api/v1/feasibility"] * 2
    assert {c.headers["authorization"] for c in calls} == {"Bearer tok-1"}


async def test_lowercase_token_type_is_accepted() -> None:
    fake = FakeApi(token_type="bearer")
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_LEGACY))
    await make(fake).check_feasibility(oa.request())
    assert fake.api()[0].headers["authorization"] == "Bearer tok-1"


async def test_token_renewed_60s_before_expiry() -> None:
    fake, clock = FakeApi(), FakeClock()
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_LEGACY))
    provider = make(fake, clock=clock)
    await provider.check_feasibility(oa.request())
    clock.now += 3600 - 61
    await provider.check_feasibility(oa.request())
    assert len(fake.auth()) == 1
    clock.now += 2  # now within the last 60 s of the hour
    await provider.check_feasibility(oa.request())
    assert len(fake.auth()) == 2
    assert fake.api()[-1].headers["authorization"] == "Bearer tok-2"


async def test_one_reauth_on_401_then_success() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (401, oa.TOKEN_EXPIRED), (200, oa.FEASIBILITY_LEGACY))
    result = await make(fake).check_feasibility(oa.request())
    assert result.automation is Automation.AUTOMATIC
    assert [r.headers["authorization"] for r in fake.api()] == ["Bearer tok-1", "Bearer tok-2"]
    assert len(fake.auth()) == 2


async def test_persistent_401_is_an_auth_error_after_one_renewal() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (401, oa.TOKEN_EXPIRED))
    with pytest.raises(ProviderAuthError) as info:
        await make(fake).check_feasibility(oa.request())
    assert len(fake.api()) == 2
    assert "Token expired" in info.value.message


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_refused_api_key_is_auth_error_without_the_key(status: int) -> None:
    fake = FakeApi()
    fake.auth_answer = (status, {**oa.API_ERROR, "message": f"Invalid apikey {oa.API_KEY}"})
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_LEGACY))
    with capture_logs() as logs, pytest.raises(ProviderAuthError) as info:
        await make(fake).check_feasibility(oa.request())
    assert oa.API_KEY not in str(info.value)
    assert "[REDACTED]" in str(info.value)
    assert info.value.provider_code == "ORD-4001"
    assert oa.API_KEY not in repr(logs)
    assert fake.api() == []  # nothing was sent to order.api without a token


async def test_neither_token_nor_key_in_errors_or_logs() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (503, oa.UNEXPECTED))
    with capture_logs() as logs, pytest.raises(ProviderUnavailable) as info:
        await make(fake).check_feasibility(oa.request())
    text = repr(logs) + str(info.value) + repr(info.value.details)
    assert "tok-1" not in text
    assert oa.API_KEY not in text
    assert any(entry["event"] == "provider_retry" for entry in logs)


# ============================================================================= feasibility


async def test_feasibility_legacy_request_and_answer() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_LEGACY))
    req = oa.request(constraints={"maxCloudCover": 15, "maxIncidenceAngle": 25})
    result = await make(fake).check_feasibility(req)
    assert result == FeasibilityResult(
        programming_type="ONEPLAN",
        automation=Automation.AUTOMATIC,
        classification=Classification.CHALLENGING,
        automation_name="AutomaticTasking30",
    )
    sent = body_of(fake.api()[0])
    assert sent == {
        "progTypeNames": ["ONEPLAN"],
        "mission": "PLEIADES",
        "contractId": oa.LEGACY_CONTRACT,
        "acquisitionDate": {"startDate": "2021-06-18T09:04:16.284Z", "endDate": "2021-09-18T23:59:59.999Z"},
        "optical": {"acquisitionMode": "MONO", "maxCloudCover": 15.0, "maxIncidenceAngle": 25.0},
        "aoi": {"type": "Polygon", "coordinates": oa.TOULOUSE["coordinates"]},
    }
    assert all(ISO_MILLIS.match(v) for v in sent["acquisitionDate"].values())


async def test_feasibility_neo_expiration_date_and_neo_contract() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_NEO))
    result = await make(fake).check_feasibility(oa.request("PLEIADESNEO"))
    assert result.expires_at == datetime(2021, 5, 12, 8, 3, 19, 52000, tzinfo=UTC)
    assert result.automation_name is None
    sent = body_of(fake.api()[0])
    assert sent["contractId"] == oa.NEO_CONTRACT
    assert sent["mission"] == "PLEIADESNEO"


async def test_feasibility_maual_typo_is_manual() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (200, oa.FEASIBILITY_MAUAL))
    result = await make(fake).check_feasibility(oa.request())
    assert result.automation is Automation.MANUAL
    assert result.classification is Classification.EASY


async def test_feasibility_not_available_is_not_feasible() -> None:
    fake = FakeApi()
    body = json.loads(json.dumps(oa.FEASIBILITY_LEGACY))
    body["progCapacities"][0]["progTypes"][0]["available"] = False
    fake.on("POST", "/api/v1/feasibility", (200, body))
    with pytest.raises(NotFeasible):
        await make(fake).check_feasibility(oa.request())


async def test_per_prog_type_aoi_error_is_rejected_with_code() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/attempts", (200, oa.ATTEMPTS_MIN_AOI))
    with pytest.raises(ProviderRejected) as info:
        await make(fake).find_attempts(oa.request(programming_type="ONEDAY"))
    assert not isinstance(info.value, NotFeasible)
    assert info.value.provider_code == "ERR_MIN_AOI_AREA"
    assert "24.5" in info.value.message


async def test_per_prog_type_capacity_error_is_not_feasible() -> None:
    fake = FakeApi()
    body = json.loads(json.dumps(oa.FEASIBILITY_NEO))
    body["progCapacities"][0]["progTypes"][0]["errors"] = [
        {"code": "ERR_OTHER", "locator": "UNKNOWN", "message": "7.0"}
    ]
    fake.on("POST", "/api/v1/feasibility", (200, body))
    with pytest.raises(NotFeasible) as info:
        await make(fake).check_feasibility(oa.request("PLEIADESNEO"))
    assert info.value.provider_code == "ERR_OTHER"


async def test_feasibility_without_entry_is_protocol_error() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/feasibility", (200, {"progCapacities": []}))
    with pytest.raises(ProviderProtocolError):
        await make(fake).check_feasibility(oa.request())


# ============================================================================= attempts


@pytest.mark.parametrize("shape", ["object", "array", "missions"])
async def test_attempts_shapes_wkt_and_order(shape: str) -> None:
    fake = FakeApi()
    segments = (oa.later_segment(3), oa.SEED_SEGMENT)  # answered out of order
    body = {
        "object": oa.attempts_object(*segments),
        "array": oa.attempts_array(*segments),
        "missions": oa.attempts_object(*segments, mission_key="missions"),
    }[shape]
    fake.on("POST", "/api/v1/attempts", (200, body))
    attempts = await make(fake).find_attempts(oa.request(programming_type="ONEDAY"))
    assert [a.id for a in attempts] == ["PHR1", "PHR4"]
    first = attempts[0]
    assert first.segment_key == oa.SEED_SEGMENT_KEY
    assert first.order_deadline == datetime(2021, 5, 31, 2, 55, 0, 99000, tzinfo=UTC)
    assert first.incidence_angle == 26.3
    assert first.footprint is not None
    assert first.footprint["type"] == "Polygon"
    assert first.footprint["coordinates"][0][0] == [1.298502, 43.665978]
    assert body_of(fake.api()[0])["progTypeNames"] == ["ONEDAY"]


async def test_attempts_no_sensor_is_not_feasible_and_not_retried() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/attempts", (500, oa.NO_SENSOR))
    with pytest.raises(NotFeasible) as info:
        await make(fake).find_attempts(oa.request(programming_type="ONEDAY"))
    assert info.value.provider_code == "ERR_NO_SENSOR_AVAILABLE"
    assert len(fake.api()) == 1


async def test_attempts_only_for_attempt_types() -> None:
    with pytest.raises(InvalidOrderParams):
        await make(FakeApi()).find_attempts(oa.request(programming_type="ONEPLAN"))


# ============================================================================= price and order body


def _attempt() -> Attempt:
    return Attempt(id="PHR1", segment_key=oa.SEED_SEGMENT_KEY)


async def test_price_201() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/prices", (201, oa.PRICE))
    quote = await make(fake).price(oa.request(programming_type="ONEDAY"), OrderContext(attempt=_attempt()))
    assert (quote.amount, quote.currency, quote.area_km2) == (7392, "EUR", 132)


async def test_legacy_oneday_order_body_is_exact() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/orders", (201, oa.ORDER_LEGACY))
    req = oa.request(
        programming_type="ONEDAY",
        customerReference="my-ref-001",
        comments="hi",
        constraints={"maxCloudCover": 10, "maxIncidenceAngle": 50},
        processing={"processingLevel": "ortho"},
    )
    placed = await make(fake).place_order(req, OrderContext(attempt=_attempt()))
    sent = body_of(fake.api("POST", "/api/v1/orders")[0])
    assert sent == {
        "aoi": [
            {
                "id": 1,
                "name": "AOI my-ref-001",
                "geometry": {"type": "Polygon", "coordinates": oa.TOULOUSE["coordinates"]},
            }
        ],
        "contractId": oa.LEGACY_CONTRACT,
        "customerReference": "my-ref-001",
        "primaryMarket": "AGRI",
        "endUsers": [{"endUserName": "Jack", "country": "FR"}],
        "items": [
            {
                "productTypeId": "PleiadesTaskingOneDay",
                "aoiId": 1,
                "comments": "hi",
                "dataSourceIds": [],
                "segmentKey": oa.SEED_SEGMENT_KEY,
                "properties": [
                    {"key": "acquisitionMode", "value": "MONO"},
                    {"key": "maxCloudCover", "value": 10.0},
                    {"key": "notificationThreshold", "value": 10.0},
                    {"key": "maxIncidenceAngle", "value": 50.0},
                    {"key": "acqPeriod", "value": "2021-06-18T09:04:16.284Z 2021-09-18T23:59:59.999Z"},
                    {"key": "feasibilityAutomation", "value": "AUTOMATIC"},
                ],
            }
        ],
        "optionsPerProductType": [
            {
                "productTypeId": "PleiadesTaskingOneDay",
                "options": [
                    {"key": "processing_level", "value": "ortho"},
                    {"key": "spectral_processing", "value": "bundle"},
                    {"key": "radiometric_processing", "value": "basic"},
                    {"key": "pixel_coding", "value": "12bits"},
                    {"key": "image_format", "value": "dimap_jpeg2000_regular"},
                    {"key": "priority", "value": "standard"},
                    {"key": "licence", "value": "standard"},
                    {"key": "delivery_method", "value": "on_the_flow"},
                    {"key": "projection_1", "value": "32631"},
                    {"key": "dem_1", "value": "best_available"},
                ],
            }
        ],
        "delivery": {"type": "network", "workspace": oa.WORKSPACE},
        "notificationEmails": ["ops@example.org"],
    }
    assert placed.tracking_key == "SAL21416909"
    assert placed.refs == {
        "salesOrderId": "SAL21416909",
        "contractId": oa.LEGACY_CONTRACT,
        "customerReference": "my-ref-001",
    }
    assert (placed.amount, placed.currency) == (7600, "EUR")


async def test_stereo_oneplan_is_manual_with_bh_and_feasibility_copied() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/orders", (201, oa.ORDER_LEGACY))
    feasibility = FeasibilityResult(
        programming_type="ONEPLAN",
        automation=Automation.AUTOMATIC,
        classification=Classification.EASY,
        automation_name="AutomaticTasking30",
    )
    req = oa.request("SPOT", constraints={"acquisitionMode": "STEREO", "minBH": 0.3})
    await make(fake).place_order(req, OrderContext(feasibility=feasibility))
    sent = body_of(fake.api("POST")[0])
    props = {p["key"]: p["value"] for p in sent["items"][0]["properties"]}
    assert props["feasibilityAutomation"] == "MANUAL"
    assert props["classification"] == "EASY"
    assert props["feasibilityAutomationName"] == "AutomaticTasking30"
    assert (props["acquisitionModeMinBH"], props["acquisitionModeMaxBH"]) == (0.3, 0.8)
    assert props["acquisitionMode"] == "STEREO"
    assert sent["items"][0]["productTypeId"] == "SpotTaskingOnePlan"
    assert "segmentKey" not in sent["items"][0]


async def test_manual_feasibility_is_copied_for_mono() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/prices", (201, oa.PRICE))
    feasibility = FeasibilityResult(programming_type="ONEPLAN", automation=Automation.MANUAL)
    await make(fake).price(oa.request(), OrderContext(feasibility=feasibility))
    props = {p["key"]: p["value"] for p in body_of(fake.api()[0])["items"][0]["properties"]}
    assert props["feasibilityAutomation"] == "MANUAL"
    assert "classification" not in props


async def test_neo_order_body_and_quotation_id() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/orders", (201, oa.ORDER_NEO))
    req = oa.request(
        "PLEIADESNEO",
        programming_type="ONENOWATTEMPTS",
        processing={"processingLevel": "projected", "projection": "2154", "pixelCoding": "8bits"},
        providerOptions={
            "licence": "background_layer",
            "productTypeId": "PleiadesNeoOneNowAttemptsVrs",
            "extendedAngle": True,
        },
    )
    placed = await make(fake).place_order(req, OrderContext(attempt=_attempt()))
    sent = body_of(fake.api("POST")[0])
    assert sent["contractId"] == oa.NEO_CONTRACT
    assert sent["delivery"] == {"type": "network"}
    assert "notificationEmails" not in sent
    assert sent["notifications"] == [
        {
            "channels": [{"type": "email", "addressee": {"to": ["ops@example.org"], "cc": []}}],
            "filter": {"events": ["SALES_ORDER", "DELIVERY"]},
        }
    ]
    [group] = sent["optionsPerProductType"]
    assert group["productTypeId"] == sent["items"][0]["productTypeId"] == "PleiadesNeoOneNowAttemptsVrs"
    options = {o["key"]: o["value"] for o in group["options"]}
    assert options["spectral_processing"] == "full_bundle"
    assert options["projection_1"] == "2154"
    assert "dem_1" not in options
    assert (options["pixel_coding"], options["radiometric_processing"]) == ("8bits", "display")
    assert options["licence"] == "background_layer"
    props = {p["key"]: p["value"] for p in sent["items"][0]["properties"]}
    assert props["extendedAngle"] is True
    assert sent["items"][0]["segmentKey"] == oa.SEED_SEGMENT_KEY
    assert placed.tracking_key == "QUO21000243"
    assert placed.refs["quotationId"] == "QUO21000243"
    assert "salesOrderId" not in placed.refs


@pytest.mark.parametrize(
    ("mission", "ptype", "expected"),
    [
        ("PLEIADES", "ONEPLAN", "PleiadesTaskingOnePlan"),
        ("SPOT", "ONESERIES", "SpotTaskingOneSeries"),
        ("PLEIADESNEO", "ONEPLAN", "PleiadesNeoOnePlan"),
        ("PLEIADESNEO", "ONENOWWEATHER", "PleiadesNeoOneNowWeather"),
    ],
)
async def test_product_type_ids(mission: str, ptype: str, expected: str) -> None:
    body = make(FakeApi()).order_body(oa.request(mission, ptype), OrderContext())
    assert body["items"][0]["productTypeId"] == expected
    assert body["optionsPerProductType"][0]["productTypeId"] == expected


def test_southern_aoi_defaults_to_southern_utm_zone() -> None:
    aoi = {
        "type": "Polygon",
        "coordinates": [
            [[122.68, -24.49], [122.83, -24.49], [122.83, -24.33], [122.68, -24.33], [122.68, -24.49]]
        ],
    }
    body = make(FakeApi()).order_body(oa.request(aoi=aoi), OrderContext())
    options = {o["key"]: o["value"] for o in body["optionsPerProductType"][0]["options"]}
    assert options["projection_1"] == "32751"


async def test_attempt_type_without_attempt_is_refused_before_sending() -> None:
    fake = FakeApi()
    with pytest.raises(InvalidOrderParams):
        await make(fake).place_order(oa.request(programming_type="ONEDAY"), OrderContext())
    assert fake.requests == []


async def test_order_2xx_without_id_is_outcome_unknown() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/orders", (201, {"currency": "EUR"}))
    with pytest.raises(OutcomeUnknown):
        await make(fake).place_order(oa.request(), OrderContext())


# ============================================================================= errors


async def test_api_error_family_is_rejected_with_code_and_message() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/prices", (400, oa.API_ERROR))
    with pytest.raises(ProviderRejected) as info:
        await make(fake).price(oa.request(), OrderContext())
    assert info.value.provider_code == "ORD-4001"
    assert "Invalid field 'aoi'" in info.value.message
    assert info.value.status_code == 400
    assert info.value.operation == "price"


@pytest.mark.parametrize(("status", "body"), [(400, oa.E2203_WORKSPACE), (404, oa.E2203_CONTRACT)])
async def test_error_code_family_e2203(status: int, body: dict[str, Any]) -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/orders", (status, body))
    with pytest.raises(ProviderRejected) as info:
        await make(fake).place_order(oa.request(), OrderContext())
    assert info.value.provider_code == "E2203"
    assert body["message"] in info.value.message
    assert len(fake.api("POST", "/api/v1/orders")) == 1


async def test_errors_family_4xx_is_rejected() -> None:
    fake = FakeApi()
    fake.on(
        "POST",
        "/api/v1/feasibility",
        (400, {"errors": [{"code": "ERR_INVALID_PARAMETER", "locator": "aoi", "message": "bad"}]}),
    )
    with pytest.raises(ProviderRejected) as info:
        await make(fake).check_feasibility(oa.request())
    assert info.value.provider_code == "ERR_INVALID_PARAMETER"
    assert "bad" in info.value.message


async def test_read_5xx_retried_then_success() -> None:
    fake, sleeps = FakeApi(), Sleeps()
    fake.on(
        "POST", "/api/v1/feasibility", (500, oa.UNEXPECTED), (503, oa.API_ERROR), (200, oa.FEASIBILITY_LEGACY)
    )
    result = await make(fake, sleeps=sleeps).check_feasibility(oa.request())
    assert result.automation is Automation.AUTOMATIC
    assert len(fake.api()) == 3
    assert len(sleeps.delays) == 2


async def test_read_5xx_gives_up_as_unavailable_with_code() -> None:
    fake = FakeApi()
    fake.on("GET", TASKINGS, (500, oa.UNEXPECTED))
    with pytest.raises(ProviderUnavailable) as info:
        await make(fake).poll(["SAL1"])
    assert info.value.provider_code == "UNEXPECTED_SERVER_ERROR"
    assert len(fake.api()) == 4  # 1 + max_retries (3)


async def test_429_retry_after_is_honoured() -> None:
    fake, sleeps = FakeApi(), Sleeps()
    fake.on(
        "POST", "/api/v1/feasibility", (429, oa.API_ERROR, {"Retry-After": "7"}), (200, oa.FEASIBILITY_LEGACY)
    )
    await make(fake, sleeps=sleeps).check_feasibility(oa.request())
    assert len(sleeps.delays) == 1
    assert sleeps.delays[0] >= 7


async def test_429_on_order_is_retried_because_nothing_was_done() -> None:
    fake, sleeps = FakeApi(), Sleeps()
    fake.on("POST", "/api/v1/orders", (429, oa.API_ERROR, {"Retry-After": "2"}), (201, oa.ORDER_LEGACY))
    placed = await make(fake, sleeps=sleeps).place_order(oa.request(), OrderContext())
    assert placed.tracking_key == "SAL21416909"
    assert len(fake.api("POST", "/api/v1/orders")) == 2
    assert sleeps.delays[0] >= 2


@pytest.mark.parametrize(
    "failure",
    [(500, oa.UNEXPECTED), (502, None), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("gone")],
)
async def test_order_write_failure_is_outcome_unknown_and_not_retried(failure: Answer) -> None:
    fake, sleeps = FakeApi(), Sleeps()
    fake.on("POST", "/api/v1/orders", failure, (201, oa.ORDER_LEGACY))
    with pytest.raises(OutcomeUnknown):
        await make(fake, sleeps=sleeps).place_order(oa.request(), OrderContext())
    assert len(fake.api("POST", "/api/v1/orders")) == 1
    assert sleeps.delays == []


async def test_connect_error_on_order_is_retried() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v1/orders", httpx.ConnectError("refused"), (201, oa.ORDER_LEGACY))
    placed = await make(fake).place_order(oa.request(), OrderContext())
    assert placed.tracking_key == "SAL21416909"


# ============================================================================= legacy tracking


def _paged_taskings(items: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        count = int(request.url.params["count"])
        page = int(request.url.params["startPage"])
        ref = request.url.params.get("customerRef")
        selected = [i for i in items if ref is None or i["icr"]["customerRef"] == ref]
        return httpx.Response(200, json={"taskings": selected[(page - 1) * count : page * count]})

    return answer


async def test_poll_pages_grow_with_pages_not_orders() -> None:
    fake = FakeApi()
    items = [oa.tasking(n) for n in range(1, 251)]
    fake.on("GET", TASKINGS, _paged_taskings(items))
    keys = [i["sal"] for i in items]
    snapshots = await make(fake).poll(keys)
    assert set(snapshots) == set(keys)
    calls = fake.api("GET", TASKINGS)
    assert [(c.url.params["startPage"], c.url.params["count"]) for c in calls] == [
        ("1", "100"),
        ("2", "100"),
        ("3", "100"),
    ]


async def test_poll_stops_early_when_every_key_is_found() -> None:
    fake = FakeApi()
    items = [oa.tasking(n) for n in range(1, 251)]
    fake.on("GET", TASKINGS, _paged_taskings(items))
    snapshots = await make(fake).poll([items[3]["sal"], items[42]["sal"], "SAL_UNKNOWN_1"])
    assert set(snapshots) == {items[3]["sal"], items[42]["sal"]}
    assert len(fake.api()) == 3  # the unknown key forces the full listing
    fake.requests.clear()
    await make(fake).poll([items[3]["sal"]])
    assert len(fake.api()) == 1


@pytest.mark.parametrize(
    ("status", "total", "phase"),
    [
        ("Feasibility study in progress", 0, RemotePhase.FEASIBILITY_STUDY),
        ("In Progress", 0, RemotePhase.ACTIVE),
        ("In Progress", 2, RemotePhase.ACQUIRING),
        ("Paused", 1, RemotePhase.ACQUIRING),
        ("Canceled", 0, RemotePhase.CANCELLED),
        ("Completed", 3, RemotePhase.COMPLETED),
        ("Something New", 0, RemotePhase.ACTIVE),
    ],
)
async def test_icr_status_mapping(status: str, total: int, phase: RemotePhase) -> None:
    fake = FakeApi()
    fake.on(
        "GET",
        TASKINGS,
        (
            200,
            {
                "taskings": [
                    oa.tasking(
                        1,
                        status=status,
                        proposed=min(total, 1),
                        total=total,
                        validated_area=25_000_000.0 if total else 0.0,
                    )
                ]
            },
        ),
    )
    with capture_logs() as logs:
        snap = (await make(fake).poll(["SAL21400001"]))["SAL21400001"].snapshot
    assert snap.phase is phase
    assert snap.provider_status == status
    assert snap.refs["taskingId"] == "ICR_FC_000001"
    assert snap.counts is not None
    assert snap.counts.proposed == min(total, 1)
    assert snap.coverage_pct == (25.0 if total else 0.0)
    assert (status == "Something New") == any(e["event"] == "oneatlas_unknown_icr_status" for e in logs)


async def test_verbatim_completed_example_with_nothing_validated() -> None:
    fake = FakeApi()
    fake.on("GET", TASKINGS, (200, oa.TASKINGS_EXAMPLE))
    snap = (await make(fake).poll(["SALXXXXXX"]))["SALXXXXXX"].snapshot
    assert snap.phase is RemotePhase.COMPLETED
    assert snap.coverage_pct == 0.0
    assert snap.refs == {
        "salesOrderId": "SALXXXXXX",
        "so": "SOXXXXX",
        "taskingId": "ICR_FC_XXXXX",
        "contractId": oa.LEGACY_CONTRACT,
        "customerReference": "customer ref",
    }


async def test_change_marker_moves_with_segments() -> None:
    fake = FakeApi()
    fake.on(
        "GET",
        TASKINGS,
        (200, {"taskings": [oa.tasking(1, total=1)]}),
        (200, {"taskings": [oa.tasking(1, total=2, proposed=1)]}),
    )
    provider = make(fake)
    first = (await provider.poll(["SAL21400001"]))["SAL21400001"]
    second = (await provider.poll(["SAL21400001"]))["SAL21400001"]
    assert first.snapshot.change_marker != second.snapshot.change_marker
    assert first.fingerprint != second.fingerprint


async def test_poll_fingerprints_the_raw_item_so_unchanged_orders_need_no_parsing() -> None:
    fake = FakeApi()
    fake.on(
        "GET",
        TASKINGS,
        (200, {"taskings": [oa.tasking(1), oa.tasking(2)]}),
        (200, {"taskings": [oa.tasking(1), oa.tasking(2, total=1)]}),
    )
    provider = make(fake)
    keys = ["SAL21400001", "SAL21400002"]
    first, second = await provider.poll(keys), await provider.poll(keys)
    assert first[keys[0]].fingerprint == second[keys[0]].fingerprint  # the same item
    assert first[keys[0]].snapshot == second[keys[0]].snapshot
    assert first[keys[1]].fingerprint != second[keys[1]].fingerprint  # a segment appeared
    assert first[keys[1]].snapshot.counts != second[keys[1]].snapshot.counts


async def test_poll_leaves_out_known_orders_and_still_stops_early() -> None:
    fake = FakeApi()
    items = [oa.tasking(n) for n in range(1, 251)]
    fake.on("GET", TASKINGS, _paged_taskings(items))
    keys = [items[3]["sal"], items[42]["sal"], items[120]["sal"]]
    fingerprints = {key: p.fingerprint for key, p in (await make(fake).poll(keys)).items()}
    asked: list[tuple[str, int]] = []

    def known(key: str, fingerprint: int) -> bool:
        asked.append((key, fingerprint))
        return bool(key != items[42]["sal"])

    fake.requests.clear()
    polled = await make(fake).poll(keys, known)
    assert set(polled) == {items[42]["sal"]}  # the known ones are left out...
    assert polled[items[42]["sal"]].fingerprint == fingerprints[items[42]["sal"]]
    assert sorted(asked) == sorted(fingerprints.items())  # ...asked once each, same fingerprint
    assert len(fake.api()) == 2  # and counted as listed: page 3 is never read


async def test_poll_takes_a_key_listed_twice_once() -> None:
    """A page boundary shifting under a new order can list one twice."""
    fake = FakeApi()
    fake.on("GET", TASKINGS, (200, {"taskings": [oa.tasking(1), oa.tasking(1, total=1)]}))
    asked: list[str] = []

    def known(key: str, fingerprint: int) -> bool:
        asked.append(key)
        return False

    polled = await make(fake).poll(["SAL21400001"], known)
    assert asked == ["SAL21400001"]  # the second listing of the key is not looked at
    counts = polled["SAL21400001"].snapshot.counts
    assert counts is not None
    assert counts.validated == 0  # the first listing's (the second has one segment)


async def test_find_order_by_customer_reference() -> None:
    fake = FakeApi()
    items = [oa.tasking(1, ref="other"), oa.tasking(2, ref="my-ref")]
    fake.on("GET", TASKINGS, _paged_taskings(items))
    provider = make(fake)
    found = await provider.find_order(oa.request(customerReference="my-ref"))
    assert found is not None
    assert found.tracking_key == "SAL21400002"
    assert found.refs["taskingId"] == "ICR_FC_000002"
    assert fake.api()[0].url.params["customerRef"] == "my-ref"
    assert await provider.find_order(oa.request(customerReference="nobody")) is None


async def test_get_order_uses_tasking_id_when_known() -> None:
    fake = FakeApi()
    fake.on("GET", f"{TASKINGS}/ICR_FC_000001", (200, oa.tasking(1, status="Completed")))
    snap = await make(fake).get_order(LEGACY_PLACED)
    assert snap.phase is RemotePhase.COMPLETED
    assert len(fake.api()) == 1


async def test_segments_to_acquisitions() -> None:
    fake = FakeApi()
    fake.on(
        "GET",
        f"{TASKINGS}/ICR_FC_000001/segments",
        (
            200,
            {
                "segments": [
                    *oa.SEGMENTS_EXAMPLE["segments"],
                    oa.segment("S2", "Validated", 95.0),
                    oa.segment("S3", "Refused", 40.0),
                    oa.segment("S4", "Rejected", 10.0),
                    oa.segment("S5", "Pending", 50.0),
                    oa.segment("S6", "Weird", 50.0),
                ]
            },
        ),
    )
    acquisitions = await make(fake).list_acquisitions(LEGACY_PLACED)
    first = acquisitions[0]
    assert first.id == "AS_FC_XXXX_1_2"
    assert first.status is AcquisitionStatus.PROPOSED
    assert first.cloud_cover == pytest.approx(100 - 88.8973)
    assert first.incidence_angle == 15.1072
    assert first.acquired_at == datetime(2021, 4, 18, 10, 53, 38, tzinfo=UTC)
    assert first.footprint == oa.SEGMENTS_EXAMPLE["segments"][0]["asDetail1"]["footprint"]
    assert first.refs["catalogId"] == "DS_PHR1B_XXXXXX"
    assert [a.status for a in acquisitions[1:]] == [
        AcquisitionStatus.VALIDATED,
        AcquisitionStatus.REFUSED,
        AcquisitionStatus.REJECTED,
        AcquisitionStatus.PENDING,
        AcquisitionStatus.PENDING,
    ]


async def test_segments_without_tasking_id_resolve_the_icr_first() -> None:
    fake = FakeApi()
    fake.on("GET", TASKINGS, _paged_taskings([oa.tasking(1, ref="r1")]))
    fake.on("GET", f"{TASKINGS}/ICR_FC_000001/segments", (200, oa.SEGMENTS_EXAMPLE))
    placed = PlacedOrder(tracking_key="SAL21400001", refs={"customerReference": "r1"})
    assert len(await make(fake).list_acquisitions(placed)) == 1
    assert fake.api()[0].url.params["customerRef"] == "r1"


@pytest.mark.parametrize("accept", [True, False])
async def test_segment_accept_refuse(accept: bool) -> None:
    fake = FakeApi()
    verb = "accept" if accept else "refuse"
    path = f"{TASKINGS}/ICR_FC_000001/segments/AS_1/{verb}"
    fake.on("POST", path, (200, {}))
    await make(fake).decide_acquisition(LEGACY_PLACED, "AS_1", accept)
    assert [r.url.path for r in fake.api()] == [path]


async def test_icr_cancel_and_refusal_reason() -> None:
    fake = FakeApi()
    path = f"{TASKINGS}/ICR_FC_000001/cancel"
    fake.on("POST", path, (200, {}), (400, {**oa.API_ERROR, "message": "Tasking is Completed"}))
    provider = make(fake)
    await provider.cancel(LEGACY_PLACED)
    assert body_of(fake.api()[0]) == {}
    with pytest.raises(ProviderRejected) as info:
        await provider.cancel(LEGACY_PLACED)
    assert "Tasking is Completed" in info.value.message


async def test_choose_option_is_not_offered() -> None:
    with pytest.raises(ProviderRejected, match="does not offer"):
        await make(FakeApi()).choose_option(LEGACY_PLACED, "study", "option")


# ============================================================================= PNEO tracking


def _paged_search(lines: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        paging = body_of(request)["paging"]
        start, size = paging["startIndex"], paging["itemsPerPage"]
        return httpx.Response(200, json=oa.search_page(lines[start : start + size], start, size, len(lines)))

    return answer


@pytest.mark.parametrize(
    ("status", "quotation", "total", "phase"),
    [
        ("PENDING", "PENDING", 0, RemotePhase.AWAITING_QUOTATION),
        ("PENDING", "SENT", 0, RemotePhase.QUOTATION_READY),
        ("IN_PROGRESS", "ACCEPTED", 0, RemotePhase.ACTIVE),
        ("IN_PROGRESS", "ACCEPTED", 2, RemotePhase.ACQUIRING),
        ("CANCELLED", "REFUSED", 0, RemotePhase.REJECTED),
        ("CANCELLED", "ACCEPTED", 0, RemotePhase.CANCELLED),
        ("COMPLETED", "ACCEPTED", 2, RemotePhase.COMPLETED),
        ("DELIVERED", "ACCEPTED", 2, RemotePhase.COMPLETED),
        ("FAILED", "ACCEPTED", 0, RemotePhase.FAILED),
        ("MYSTERY", "WHATEVER", 0, RemotePhase.AWAITING_QUOTATION),
    ],
)
async def test_neo_status_mapping(status: str, quotation: str, total: int, phase: RemotePhase) -> None:
    fake = FakeApi()
    line = oa.order_line(
        "QUO22054973",
        status=status,
        quotation_status=quotation,
        total=total,
        proposed=min(total, 1),
        pct=50.0 if total else 0.0,
    )
    fake.on("POST", "/api/v2/orders/search", _paged_search([line]))
    snap = (await make(fake).poll(["QUO22054973"]))["QUO22054973"].snapshot
    assert snap.phase is phase
    assert snap.coverage_pct == (50.0 if total else 0.0)
    assert snap.refs["orderItemId"] == "WOI_000007805_1"


async def test_neo_sent_quotation_is_built() -> None:
    fake = FakeApi()
    fake.on(
        "POST",
        "/api/v2/orders/search",
        _paged_search(
            [
                oa.order_line(
                    "QUO22054973",
                    status="PENDING",
                    quotation_status="SENT",
                    order_item_id=None,
                    sales_order_id=None,
                )
            ]
        ),
    )
    snap = await make(fake).get_order(NEO_PLACED)
    assert snap.quotation is not None
    assert (snap.quotation.id, snap.quotation.amount, snap.quotation.currency) == (
        "QUO22054973",
        12345.0,
        "EUR",
    )
    assert snap.quotation.decision is QuotationDecision.NOT_DECIDED
    assert snap.quotation.valid_until == datetime(2022, 5, 9, 9, tzinfo=UTC)
    sent = body_of(fake.api()[0])
    assert sent["paging"] == {"itemsPerPage": 100, "startIndex": 0, "pagingMode": "item"}
    assert sent["criteria"]["q"] == f"(cis.quotation:QUO22054973) AND (contractId:{oa.NEO_CONTRACT})"


async def test_neo_poll_pages_by_total_results() -> None:
    fake = FakeApi()
    lines = [oa.order_line(f"QUO{n}") for n in range(1, 251)]
    fake.on("POST", "/api/v2/orders/search", _paged_search(lines))
    snapshots = await make(fake).poll([f"QUO{n}" for n in range(1, 251)])
    assert len(snapshots) == 250
    assert [body_of(r)["paging"]["startIndex"] for r in fake.api()] == [0, 100, 200]


async def test_neo_find_order_query_escapes_reference() -> None:
    fake = FakeApi()
    fake.on("POST", "/api/v2/orders/search", _paged_search([oa.order_line("QUO7", ref="a:b c")]))
    found = await make(fake).find_order(oa.request("PLEIADESNEO", customerReference="a:b c"))
    assert found is not None
    assert found.tracking_key == "QUO7"
    assert body_of(fake.api()[0])["criteria"]["q"] == (
        f"(customerReference:a\\:b\\ c) AND (contractId:{oa.NEO_CONTRACT})"
    )


async def test_coverages_to_acquisitions() -> None:
    fake = FakeApi()
    placed = PlacedOrder(
        tracking_key="QUO22054973", refs={"quotationId": "QUO22054973", "orderItemId": "WOI_000007805_1"}
    )
    items = [
        oa.coverage_item("CIE_1", "PROPOSED", 80.0),
        oa.coverage_item("CIE_2", "VALIDATED", 99.0),
        oa.coverage_item("CIE_3", "REFUSED", 60.0),
    ]
    fake.on("POST", "/api/v1/coverages/search", _paged_search(items))
    acquisitions = await make(fake).list_acquisitions(placed)
    assert [(a.id, a.status) for a in acquisitions] == [
        ("CIE_1", AcquisitionStatus.PROPOSED),
        ("CIE_2", AcquisitionStatus.VALIDATED),
        ("CIE_3", AcquisitionStatus.REFUSED),
    ]
    assert acquisitions[0].cloud_cover == pytest.approx(20.0)
    assert acquisitions[0].refs["archiveId"] == "ACQ_PNEO4_0001"
    assert body_of(fake.api()[0])["criteria"]["q"] == "(orderItemId:WOI_000007805_1)"


async def test_neo_acquisitions_before_acceptance_are_empty() -> None:
    fake = FakeApi()
    fake.on(
        "POST",
        "/api/v2/orders/search",
        _paged_search(
            [oa.order_line("QUO22054973", status="PENDING", quotation_status="SENT", order_item_id=None)]
        ),
    )
    assert await make(fake).list_acquisitions(NEO_PLACED) == []


@pytest.mark.parametrize("accept", [True, False])
async def test_neo_decisions(accept: bool) -> None:
    fake = FakeApi()
    verb = "accept" if accept else "refuse"
    fake.on("PUT", f"/api/v1/contracts/{oa.NEO_CONTRACT}/quotations/QUO22054973/{verb}", (200, {}))
    fake.on("POST", f"/api/v1/coverages/CIE_1/{verb}", (200, {}))
    provider = make(fake)
    await provider.decide_quotation(NEO_PLACED, "QUO22054973", accept)
    await provider.decide_acquisition(NEO_PLACED, "CIE_1", accept)
    assert [(r.method, r.url.path) for r in fake.api()] == [
        ("PUT", f"/api/v1/contracts/{oa.NEO_CONTRACT}/quotations/QUO22054973/{verb}"),
        ("POST", f"/api/v1/coverages/CIE_1/{verb}"),
    ]


async def test_quotation_accept_5xx_is_outcome_unknown() -> None:
    fake = FakeApi()
    fake.on("PUT", f"/api/v1/contracts/{oa.NEO_CONTRACT}/quotations/QUO22054973/accept", (500, oa.UNEXPECTED))
    with pytest.raises(OutcomeUnknown):
        await make(fake).decide_quotation(NEO_PLACED, "QUO22054973", True)
    assert len(fake.api()) == 1


@pytest.mark.parametrize(("total", "verb"), [(0, "cancel"), (2, "stop")])
async def test_neo_cancel_or_stop(total: int, verb: str) -> None:
    fake = FakeApi()
    fake.on(
        "POST",
        "/api/v2/orders/search",
        _paged_search([oa.order_line("QUO22054973", total=total, proposed=0)]),
    )
    fake.on("POST", f"/api/v1/orders/WOI_000007805_1/{verb}", (200, {}))
    await make(fake).cancel(NEO_PLACED)
    assert fake.api()[-1].url.path == f"/api/v1/orders/WOI_000007805_1/{verb}"


async def test_neo_cancel_before_acceptance_refuses_the_quotation() -> None:
    fake = FakeApi()
    fake.on(
        "POST",
        "/api/v2/orders/search",
        _paged_search(
            [oa.order_line("QUO22054973", status="PENDING", quotation_status="SENT", order_item_id=None)]
        ),
    )
    fake.on("PUT", f"/api/v1/contracts/{oa.NEO_CONTRACT}/quotations/QUO22054973/refuse", (200, {}))
    await make(fake).cancel(NEO_PLACED)
    assert fake.api()[-1].method == "PUT"


# ============================================================================= validate


async def test_validate_rules() -> None:
    provider = make(FakeApi())
    await provider.validate(oa.request(programming_type="ONEDAY"))
    big = {
        "type": "Polygon",
        "coordinates": [[[1.0, 43.0], [1.5, 43.0], [1.5, 44.0], [1.0, 44.0], [1.0, 43.0]]],
    }  # about 4500 km²
    with pytest.raises(InvalidOrderParams, match="aoi"):
        await provider.validate(oa.request(programming_type="ONEDAY", aoi=big))
    await provider.validate(oa.request("SPOT", "ONENOW", aoi=big))  # SPOT allows up to 7200 km²
    with pytest.raises(InvalidOrderParams, match="spectralProcessing"):
        await provider.validate(oa.request(processing={"spectralProcessing": "full_bundle"}))
    await provider.validate(oa.request("PLEIADESNEO", processing={"spectralProcessing": "full_bundle"}))
    with pytest.raises(InvalidOrderParams, match="pixelCoding"):
        await provider.validate(
            oa.request(processing={"pixelCoding": "8bits", "radiometricProcessing": "basic"})
        )
    with pytest.raises(InvalidOrderParams, match="providerOptions"):
        await provider.validate(oa.request(providerOptions={"x": {"nested": 1}}))
