"""The HTTP layer and the adapters on paid writes: an unreadable 2xx is an unknown outcome, the
401 re-send passes the ownership check again, ``Retry-After`` in both forms and capped, and
``find_order`` reports what the listing states about the order (its identity)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from providers import up42_payloads as p
from providers.test_up42_adapter import FakeUp42, make, reply

from worker.domain.identity import mismatches, request_identity
from worker.domain.ports import OrderContext
from worker.errors import OutcomeUnknown, OwnershipLost, ProviderProtocolError, RateLimited
from worker.providers.http import HttpPolicy, ProviderHttp, before_write, retry_after_seconds
from worker.tokens import TokenSource

HTML = "<html><body><h1>Service under maintenance</h1></body></html>"


def _http(handler: Any, policy: HttpPolicy | None = None, tokens: TokenSource | None = None) -> ProviderHttp:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="https://provider.test")

    async def no_sleep(delay: float) -> None:
        return None

    return ProviderHttp("up42", client, tokens, policy=policy or HttpPolicy(), sleep=no_sleep)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(HTML.encode(), "text/html"), (b'{"results": [{"id": "ord', "application/json")],
    ids=["html-maintenance-page", "truncated-json"],
)
async def test_an_unreadable_2xx_on_a_write_is_an_unknown_outcome(content: bytes, content_type: str) -> None:
    http = _http(lambda r: httpx.Response(201, content=content, headers={"content-type": content_type}))
    with pytest.raises(OutcomeUnknown) as caught:
        await http.write("place_order", "POST", "/v2/orders", json={})
    assert caught.value.status_code == 201
    assert "maintenance" not in caught.value.message  # the body is not echoed
    with pytest.raises(ProviderProtocolError) as read:  # a read stays a protocol error
        await http.read("get_order", "GET", "/v2/orders/x")
    assert not isinstance(read.value, OutcomeUnknown)


async def test_up42_placement_answered_with_html_or_without_an_id_is_an_unknown_outcome() -> None:
    for answer in (
        httpx.Response(200, content=HTML.encode(), headers={"content-type": "text/html"}),
        reply(200, {"results": [], "errors": []}),
    ):
        fake = FakeUp42()
        fake.on("POST", "/v2/orders", answer)
        with pytest.raises(OutcomeUnknown):
            await make(fake).place_order(p.order_request(), OrderContext())
        assert len(fake.sent("POST", "/v2/orders")) == 1  # never re-sent blindly


async def test_the_re_send_after_a_401_checks_ownership_again() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["authorization"])
        return httpx.Response(401 if len(sent) == 1 else 201, json={"ok": True})

    issued = iter(["tok-1", "tok-2"])

    async def fetch() -> tuple[str, float]:
        return next(issued), 3600.0

    checks: list[int] = []

    async def guard() -> None:
        checks.append(len(sent))
        if len(checks) == 2:
            raise OwnershipLost(3)

    http = _http(handler, tokens=TokenSource(fetch, margin=60))
    reset = before_write.set(guard)
    try:
        with pytest.raises(OwnershipLost):
            await http.write("place_order", "POST", "/v2/orders", json={})
    finally:
        before_write.reset(reset)
    assert checks == [0, 1]  # before the first send, and again before the re-send
    assert sent == ["Bearer tok-1"]  # the re-send was stopped


def test_retry_after_is_read_as_seconds_or_http_date() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert retry_after_seconds("1e999", now) == float("inf")  # capped by the policy, not here
    for garbage in ("nan", "-inf", "soon", "", None):
        assert retry_after_seconds(garbage, now) is None


@pytest.mark.parametrize("header", ["1e999", "86400000", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_retry_after_is_capped_by_the_configured_maximum(header: str) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    answers = iter([httpx.Response(429, headers={"Retry-After": header}), httpx.Response(200, json={})])
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: next(answers)))
    policy = HttpPolicy(retry_after_max=7.0, backoff_base=0.0)
    http = ProviderHttp("up42", client, None, policy=policy, sleep=sleep)
    assert await asyncio.wait_for(http.read("get_order", "GET", "https://provider.test/x"), 5) == {}
    assert waits == [7.0]


async def test_a_rate_limit_error_carries_the_capped_retry_after() -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(429, headers={"Retry-After": "999999"}))
    )
    http = ProviderHttp("up42", client, None, policy=HttpPolicy(max_retries=0, retry_after_max=30.0))
    with pytest.raises(RateLimited) as caught:
        await http.read("get_order", "GET", "https://provider.test/x")
    assert caught.value.retry_after == 30.0


async def test_up42_find_order_prefers_the_order_that_matches_the_request() -> None:
    fake = FakeUp42()
    elsewhere = p.order("00000000-0000-4000-8000-00000000000a")
    elsewhere["orderDetails"] = {
        **elsewhere["orderDetails"],
        "geometry": {"type": "Polygon", "coordinates": [[[10, 40], [10.1, 40], [10.1, 40.1], [10, 40]]]},
    }
    fake.on("GET", "/v2/orders", reply(200, p.page([elsewhere, p.order()])))
    request = p.order_request()
    found = await make(fake).find_order(request)
    assert found is not None
    assert found.tracking_key == p.ORDER_ID
    assert mismatches(request_identity(request), found.identity) == []
    # Only a mismatching order under the reference: it is returned with what its listing states,
    # and the identity check refuses it.
    fake.on("GET", "/v2/orders", reply(200, p.page([elsewhere])))
    other = await make(fake).find_order(request)
    assert other is not None
    assert mismatches(request_identity(request), other.identity) == ["aoi"]


def test_provider_numbers_that_are_not_finite_read_as_absent() -> None:
    from worker.providers.oneatlas.common import as_float
    from worker.providers.up42.mapping import _number

    for parse in (as_float, _number):
        for value in ("inf", "-Infinity", "nan", "1e999", 10**400):
            assert parse(value) is None, (parse.__name__, value)
        assert parse("12.5") == 12.5
        assert parse(7) == 7.0
