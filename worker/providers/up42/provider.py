"""The UP42 adapter class: auth, ordering, tracking, decisions and delivery discovery (the last in
``worker.providers.up42.delivery``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from worker.config import HttpClientSettings, Up42Settings
from worker.domain.identity import listed_identity, mismatches, parse_instant, request_identity
from worker.domain.ports import (
    Acquisition,
    Attempt,
    DeliveryHarvest,
    FeasibilityResult,
    FeasibilityStudy,
    OrderContext,
    OrderSnapshot,
    PlacedOrder,
    PolledOrder,
    PriceQuote,
    Quotation,
    QuotationDecision,
    RemotePhase,
    StudyDecision,
)
from worker.errors import (
    OutcomeUnknown,
    ProviderAuthError,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderRejected,
)
from worker.events.models import OrderRequest, Provider
from worker.providers.http import (
    NullMetrics,
    ProviderHttp,
    ProviderMetrics,
    build_client,
    http_policy,
)
from worker.providers.scope import up42_scope
from worker.providers.up42.delivery import Up42Deliveries
from worker.providers.up42.mapping import (
    _READ_QUOTATION,
    _READ_STUDY,
    _STATUS_PHASE,
    _WITH_COVERAGE,
    CANCELLABLE,
    CREATED,
    CREDITS,
    PAGE_SIZE,
    PROVIDER,
    TOKEN_MARGIN_SECONDS,
    _latest,
    _number,
    _page_items,
    _Seen,
    _sub_status,
    _text,
    order_phase,
    to_acquisition,
    to_quotation,
    to_study,
    translate_error,
)
from worker.providers.up42.params import build_params, display_name, reference_tags, validate_params
from worker.tokens import TokenSource

log = structlog.get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _listed(order: Mapping[str, Any]) -> dict[str, str]:
    """What a listed v2 order states about its product, AOI and window (``orderDetails`` of a
    tasking order: ``geometry``, ``acquisitionStart``, ``acquisitionEnd``; ``dataProductId``)."""
    details = order.get("orderDetails")
    details = details if isinstance(details, Mapping) else {}
    return listed_identity(
        product=order.get("dataProductId"),
        geometry=details.get("geometry"),
        window=(parse_instant(details.get("acquisitionStart")), parse_instant(details.get("acquisitionEnd"))),
    )


class Up42Provider:
    """The UP42 v2 tasking API as a :class:`~worker.domain.ports.TaskingProvider`.

    Args:
        settings: credentials (password grant), hosts, workspace, pacing.
        http: timeouts and retry policy.
        client: an ``httpx.AsyncClient`` to use (tests inject a transport); one is built otherwise.
        metrics: provider call metrics.
        sleep: the backoff sleep (tests pass a no-op).
        clock: monotonic seconds for token expiry (tests pass a fake clock).
        wall_clock: the current time (how long a delivered asset may wait for its STAC items).

    Raises:
        ProviderNotConfigured: no username or password.
    """

    name = Provider.UP42

    def __init__(
        self,
        settings: Up42Settings,
        http: HttpClientSettings,
        *,
        client: httpx.AsyncClient | None = None,
        metrics: ProviderMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not settings.configured:
            raise ProviderNotConfigured(
                "UP42 username/password are not configured", provider=PROVIDER, operation="configure"
            )
        self._settings = settings
        self._base = str(settings.base_url).rstrip("/")
        self._owns_client = client is None
        self._client = client or build_client(http, settings.max_concurrency)
        sink: ProviderMetrics = metrics or NullMetrics()
        policy = http_policy(http, settings.rate_limit_per_second, settings.max_concurrency)
        renewed = getattr(sink, "token_renewed", None)
        self.tokens = TokenSource(
            self._fetch_token,
            margin=TOKEN_MARGIN_SECONDS,
            clock=clock,
            on_renewal=(lambda ok: renewed(PROVIDER, ok)) if callable(renewed) else None,
        )
        common: dict[str, Any] = {
            "policy": policy,
            "metrics": sink,
            "translate": translate_error,
            "sleep": sleep,
        }
        self._auth = ProviderHttp(PROVIDER, self._client, None, **common)
        self._http = ProviderHttp(PROVIDER, self._client, self.tokens, **common, scope=up42_scope(settings))
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schema_lock = asyncio.Lock()
        self._workspace: str | None = settings.workspace_id
        self._workspace_lock = asyncio.Lock()
        self._seen: dict[str, _Seen] = {}
        self._deliveries = Up42Deliveries(
            self._http, self._base, self.workspace_id, wall_clock, overlap=settings.delivery_overlap_seconds
        )

    # ------------------------------------------------------------------ auth and workspace

    async def _fetch_token(self) -> tuple[str, float]:
        """Password grant; the form carries the secret, so it is never logged or echoed."""
        password = self._settings.password
        assert password is not None  # checked in __init__
        form = {
            "grant_type": "password",
            "username": self._settings.username or "",
            "password": password.get_secret_value(),
            "client_id": self._settings.client_id,
        }
        body = await self._auth.read("token", "POST", str(self._settings.auth_url), data=form)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderAuthError("token: answer has no access_token", provider=PROVIDER, operation="token")
        expires_in = _number(body.get("expires_in")) or 300.0
        return token, expires_in

    async def workspace_id(self) -> str:
        """The configured workspace, else the ``sub`` claim of the user-info endpoint (cached)."""
        if self._workspace is not None:
            return self._workspace
        async with self._workspace_lock:
            if self._workspace is None:
                body = await self._http.read("userinfo", "GET", self._settings.resolved_userinfo_url())
                sub = body.get("sub") if isinstance(body, dict) else None
                if not isinstance(sub, str) or not sub:
                    raise ProviderProtocolError(
                        "userinfo: no sub claim", provider=PROVIDER, operation="userinfo"
                    )
                self._workspace = sub
            return self._workspace

    def _url(self, path: str) -> str:
        return f"{self._base}{path}"

    # ------------------------------------------------------------------ params

    async def product_schema(self, product_id: str) -> dict[str, Any]:
        """The product's params JSON Schema, fetched once per product."""
        if product_id in self._schemas:
            return self._schemas[product_id]
        async with self._schema_lock:
            if product_id not in self._schemas:
                body = await self._http.read(
                    "product_schema", "GET", self._url(f"/orders/schema/{product_id}")
                )
                if not isinstance(body, dict):
                    raise ProviderProtocolError(
                        "product_schema: not a JSON Schema", provider=PROVIDER, operation="product_schema"
                    )
                self._schemas[product_id] = body
            return self._schemas[product_id]

    async def _params(self, request: OrderRequest, operation: str) -> dict[str, Any]:
        schema = await self.product_schema(request.up42_product().data_product_id)
        built = build_params(request, schema)
        props = schema.get("properties")
        declared: Mapping[str, Any] = props if isinstance(props, dict) else {}
        instance = dict(built.params)
        # The server validates the AOI and displayName against the same schema (when declared).
        if "geometry" in declared:
            instance["geometry"] = request.aoi.to_json_dict()
        if "displayName" in declared:
            instance["displayName"] = display_name(request)
        validate_params(schema, instance, built.sources, operation=operation)
        return built.params

    async def _order_body(self, request: OrderRequest, operation: str) -> dict[str, Any]:
        feature = {"type": "Feature", "properties": {}, "geometry": request.aoi.to_json_dict()}
        body: dict[str, Any] = {
            "dataProduct": request.up42_product().data_product_id,
            "displayName": display_name(request),
            "params": await self._params(request, operation),
            "featureCollection": {"type": "FeatureCollection", "features": [feature]},
        }
        tags = reference_tags(request.reference)
        if tags:  # UP42 answered 400 to an empty list: omit the key rather than send [] or null
            body["tags"] = tags
        return body

    async def validate(self, request: OrderRequest) -> None:
        """Build ``params`` from the product schema and validate them locally.

        Raises:
            InvalidOrderParams: names the parameter, the contract field it came from and the rule.
        """
        await self._params(request, "validate")

    # ------------------------------------------------------------------ no synchronous feasibility

    async def check_feasibility(self, request: OrderRequest) -> FeasibilityResult:
        """UP42 has no synchronous feasibility: studies arrive after the order is created."""
        raise ProviderRejected(
            "UP42 has no synchronous feasibility check; a study follows order creation",
            provider=PROVIDER,
            operation="check_feasibility",
            provider_code="UNSUPPORTED",
        )

    async def find_attempts(self, request: OrderRequest) -> list[Attempt]:
        """UP42 offers no acquisition attempts to choose from."""
        raise ProviderRejected(
            "UP42 has no acquisition attempts",
            provider=PROVIDER,
            operation="find_attempts",
            provider_code="UNSUPPORTED",
        )

    # ------------------------------------------------------------------ price and order

    @staticmethod
    def _item_error(body: Any, operation: str) -> ProviderRejected | None:
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors or not isinstance(errors, list) or not isinstance(errors[0], dict):
            return None
        first = errors[0]
        message = _text(first.get("message")) or "Failed"
        details = _text(first.get("details"))
        return ProviderRejected(
            f"{operation}: UP42 refused the order item: {message}" + (f" ({details})" if details else ""),
            provider=PROVIDER,
            operation=operation,
            status_code=200,
            details={"index": first.get("index"), "details": details},
        )

    async def price(self, request: OrderRequest, context: OrderContext) -> PriceQuote:
        """``POST /v2/orders/estimate``: indicative credits (the quotation is the binding price).

        Raises:
            InvalidOrderParams: the params do not fit the product schema (nothing sent).
            ProviderRejected: the estimate has a per-item error (HTTP 200) or a 4xx.
        """
        body = await self._order_body(request, "estimate")
        answer = await self._http.read("estimate", "POST", self._url("/v2/orders/estimate"), json=body)
        if (error := self._item_error(answer, "estimate")) is not None:
            raise error
        summary = answer.get("summary") if isinstance(answer, dict) else None
        credits = _number(summary.get("totalCredits")) if isinstance(summary, dict) else None
        if not isinstance(summary, dict) or credits is None:
            raise ProviderProtocolError(
                "estimate: answer has no summary.totalCredits", provider=PROVIDER, operation="estimate"
            )
        area = _number(summary.get("totalSize")) if summary.get("unit") == "SQ_KM" else None
        return PriceQuote(amount=credits, currency=CREDITS, area_km2=area, indicative=True)

    async def place_order(self, request: OrderRequest, context: OrderContext) -> PlacedOrder:
        """``POST /v2/orders?workspaceId=…``, sent once (no idempotency key at UP42).

        Raises:
            OutcomeUnknown: no answer (timeout, lost connection, 5xx), or a 2xx that is not
                readable (HTML, truncated, without an order id): reconcile with find_order.
            ProviderRejected: a per-item error (HTTP 200) or a 400; nothing was created.
            InvalidOrderParams: the params do not fit the product schema (nothing sent).
        """
        body = await self._order_body(request, "place_order")
        workspace = await self.workspace_id()
        answer = await self._http.write(
            "place_order", "POST", self._url("/v2/orders"), params={"workspaceId": workspace}, json=body
        )
        if (error := self._item_error(answer, "place_order")) is not None:
            raise error
        results = answer.get("results") if isinstance(answer, dict) else None
        first = results[0] if isinstance(results, list) and results else None
        if not isinstance(first, dict) or not first.get("id"):
            # A 2xx without the order id: the order may exist; only a read can tell.
            raise OutcomeUnknown(
                "place_order: answer has neither results nor errors; outcome unknown",
                provider=PROVIDER,
                operation="place_order",
            )
        order_id = str(first["id"])
        log.info("up42_order_created", order_id=order_id)
        return PlacedOrder(tracking_key=order_id, refs={"orderId": order_id})

    async def _orders(
        self,
        operation: str,
        query: list[tuple[str, str]],
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Walk ``GET /v2/orders`` page by page (0-based) in creation order.

        Ascending ``createdAt`` keeps pages stable while new orders are created meanwhile.
        """
        workspace = await self.workspace_id()
        page, total = 0, 1
        while page < total:
            params = [
                ("workspaceId", workspace),
                *query,
                ("sort", "createdAt,asc"),
                ("page", str(page)),
                ("size", str(PAGE_SIZE)),
            ]
            body = await self._http.read(operation, "GET", self._url("/v2/orders"), params=params)
            items, total = _page_items(body, operation)
            for item in items:
                yield item
            page += 1

    async def find_order(self, request: OrderRequest) -> PlacedOrder | None:
        """The order already placed for ``request.reference``, found by its tag(s).

        When the display name is the reference itself, orders whose tags were since removed are
        still found by ``displayName`` (exact match; UP42 may filter by substring).
        """
        tags = reference_tags(request.reference)
        name = display_name(request)
        wanted = request_identity(request)
        found = await self._first(
            "find_order",
            [("tags", tags[0])],
            lambda o: all(t in (o.get("tags") or []) for t in tags),
            wanted,
        )
        if found is None and name == request.reference:
            found = await self._first(
                "find_order", [("displayName", name)], lambda o: o.get("displayName") == name, wanted
            )
        if found is None:
            return None
        order_id = str(found["id"])
        return PlacedOrder(tracking_key=order_id, refs={"orderId": order_id}, identity=_listed(found))

    async def _first(
        self,
        operation: str,
        query: list[tuple[str, str]],
        match: Callable[[dict[str, Any]], bool],
        wanted: Mapping[str, str],
    ) -> dict[str, Any] | None:
        """The oldest order ``match`` accepts whose product, AOI and window are the request's
        (a duplicate, if any, is newer), else the oldest one ``match`` accepts (the caller's
        identity check then refuses to adopt it)."""
        first: dict[str, Any] | None = None
        async with aclosing(self._orders(operation, query)) as orders:
            async for order in orders:
                if not match(order) or not order.get("id"):
                    continue
                if not mismatches(wanted, _listed(order)):
                    return order
                first = first or order
        return first

    # ------------------------------------------------------------------ tracking

    async def _study(self, order_id: str) -> FeasibilityStudy | None:
        body = await self._http.read(
            "get_study",
            "GET",
            self._url("/v2/tasking/feasibility-studies"),
            params={"orderId": order_id, "sort": "createdAt,desc"},
        )
        latest = _latest(_page_items(body, "get_study")[0])
        return to_study(latest) if latest else None

    async def _quotation(self, order_id: str) -> Quotation | None:
        body = await self._http.read(
            "get_quotation",
            "GET",
            self._url("/v2/tasking/quotation"),
            params={"orderId": order_id, "sort": "createdAt,desc"},
        )
        latest = _latest(_page_items(body, "get_quotation")[0])
        return to_quotation(latest) if latest else None

    async def _coverage(self, order_id: str) -> float | None:
        """The order's covered percentage, or ``None`` when UP42 does not serve it.

        Optional (it only enriches ``progress``): a definitive refusal (404 for an order without
        coverage data, or any other 4xx) means "not available" and the order's status still
        advances. A transient failure (5xx, timeout, 429) is raised as usual."""
        try:
            body = await self._http.read("get_coverage", "GET", self._url(f"/v2/coverage/orders/{order_id}"))
        except ProviderRejected as exc:
            log.info("up42_coverage_unavailable", order_id=order_id, status_code=exc.status_code)
            return None
        covered = body.get("covered") if isinstance(body, dict) else None
        return _number(covered.get("percentage")) if isinstance(covered, dict) else None

    async def _snapshot(self, order: dict[str, Any]) -> OrderSnapshot:
        """One order as a snapshot, reading the study/quotation only while they matter."""
        order_id = str(order["id"])
        status = str(order.get("status") or "")
        sub = _sub_status(order) if status == CREATED else None
        study = await self._study(order_id) if sub in _READ_STUDY else None
        quotation = await self._quotation(order_id) if sub in _READ_QUOTATION else None
        seen = self._seen.get(order_id)
        phase = order_phase(status, _sub_status(order), study, quotation, seen.phase if seen else None)
        if status != CREATED and status not in _STATUS_PHASE:
            log.warning("up42_unknown_status", order_id=order_id, status=status, phase=phase.value)
        coverage, marker = await self._progress(order_id, order, phase, seen)
        refs = {"orderId": order_id}
        if study is not None:
            refs["feasibilityStudyId"] = study.id
        if quotation is not None:
            refs["quotationId"] = quotation.id
        return OrderSnapshot(
            tracking_key=order_id,
            refs=refs,
            provider_status=f"{status}/{sub}" if sub else status,
            phase=phase,
            study=study,
            quotation=quotation,
            coverage_pct=coverage,
            change_marker=marker,
        )

    async def _progress(
        self, order_id: str, order: Mapping[str, Any], phase: RemotePhase, seen: _Seen | None
    ) -> tuple[float | None, str | None]:
        """Coverage while acquiring, read again only when the order changed since last time."""
        updated = order.get("updatedAt")
        updated_at = str(updated) if updated is not None else None
        coverage: float | None = None
        if phase in _WITH_COVERAGE:
            unchanged = seen is not None and seen.updated_at == updated_at and seen.coverage is not None
            coverage = seen.coverage if unchanged and seen else await self._coverage(order_id)
        self._seen[order_id] = _Seen(updated_at, coverage, phase)
        marker = f"{order.get('status')}|{updated_at}|{coverage}" if phase in _WITH_COVERAGE else None
        return coverage, marker

    async def get_order(self, placed: PlacedOrder) -> OrderSnapshot:
        """``GET /v2/orders/{id}`` plus, while ``CREATED``, its study/quotation; coverage while
        acquiring."""
        order = await self._http.read("get_order", "GET", self._url(f"/v2/orders/{placed.tracking_key}"))
        if not isinstance(order, dict) or not order.get("id"):
            raise ProviderProtocolError("get_order: not an order", provider=PROVIDER, operation="get_order")
        return await self._snapshot(order)

    async def poll(self, keys: Collection[str]) -> dict[str, PolledOrder]:
        """Snapshots of the tasking orders in ``keys`` by walking ``GET /v2/orders`` pages.

        Calls grow with pages, not orders: a study or quotation is read only for orders waiting
        on one, and coverage only for acquiring orders that changed. Stops early once every key
        was seen.
        """
        wanted = set(keys)
        found: dict[str, PolledOrder] = {}
        if not wanted:
            return found
        async with aclosing(self._orders("poll", [("type", "TASKING")])) as orders:
            async for order in orders:
                order_id = str(order.get("id"))
                if order_id in wanted and order_id not in found:
                    # Built at once: a snapshot may need a study, quotation or coverage read.
                    found[order_id] = await self._polled(order)
                    if len(found) == len(wanted):
                        break
        return found

    async def _polled(self, order: dict[str, Any]) -> PolledOrder:
        """One listed order's snapshot. A failure of its own reads (study, quotation) or of its
        parsing is carried by the result (``PolledOrder.failed``) and stays this order's: the
        rest of the listing is still delivered."""
        try:
            return PolledOrder.of(await self._snapshot(order))
        except Exception as exc:
            return PolledOrder.failed(exc)

    async def list_acquisitions(self, placed: PlacedOrder) -> list[Acquisition]:
        """Deliveries of the order: ``POST /v2/assets/stac/search`` filtered on ``up42-order:id``
        (CQL2 JSON; not ``up42-order:order_id``, an old SDK key that matches nothing), following
        ``next`` links."""
        order_id = placed.tracking_key
        cql2 = {"op": "=", "args": [{"property": "up42-order:id"}, order_id]}
        features = await self._deliveries.search(cql2, "list_acquisitions")
        return [to_acquisition(f, order_id) for f in features]

    async def decide_acquisition(self, placed: PlacedOrder, acquisition_id: str, accept: bool) -> None:
        """UP42 delivers what it acquires: there is nothing to accept or refuse."""
        raise ProviderRejected(
            "UP42 has no per-acquisition decision",
            provider=PROVIDER,
            operation="decide_acquisition",
            provider_code="UNSUPPORTED",
        )

    # ------------------------------------------------------------------ decisions

    async def _find_one(self, operation: str, path: str, item_id: str, order_id: str) -> dict[str, Any]:
        body = await self._http.read(
            operation, "GET", self._url(path), params={"id": item_id, "orderId": order_id}
        )
        for item in _page_items(body, operation)[0]:
            if str(item.get("id")) == item_id:
                return item
        raise ProviderRejected(
            f"{operation}: UP42 has no {item_id!r} for order {order_id}",
            provider=PROVIDER,
            operation=operation,
            provider_code="NOT_FOUND",
        )

    async def choose_option(self, placed: PlacedOrder, study_id: str, option_id: str) -> None:
        """Choose a study option: read first, PATCH only while ``NOT_DECIDED``.

        Already decided with the same option is success (a repeated command is a no-op).

        Raises:
            ProviderRejected: decided with another option, unknown option, or 405 write-protected.
            OutcomeUnknown: the PATCH got no answer; read the study again.
        """
        raw = await self._find_one(
            "choose_option", "/v2/tasking/feasibility-studies", study_id, placed.tracking_key
        )
        study = to_study(raw)
        if study.decision is StudyDecision.ACCEPTED:
            if study.chosen_option_id == option_id:
                return
            raise ProviderRejected(
                f"choose_option: study {study_id} is already decided"
                + (
                    f" with option {study.chosen_option_id}"
                    if study.chosen_option_id
                    else " (automatic study)"
                ),
                provider=PROVIDER,
                operation="choose_option",
                provider_code="ALREADY_DECIDED",
            )
        if option_id not in {o.id for o in study.options}:
            raise ProviderRejected(
                f"choose_option: study {study_id} has no option {option_id}",
                provider=PROVIDER,
                operation="choose_option",
                provider_code="UNKNOWN_OPTION",
            )
        await self._http.write(
            "choose_option",
            "PATCH",
            self._url(f"/v2/tasking/feasibility-studies/{study_id}"),
            json={"acceptedOptionId": option_id},
        )

    async def decide_quotation(self, placed: PlacedOrder, quotation_id: str, accept: bool) -> None:
        """Accept (spends credits, irreversible) or refuse: read first, PATCH only while
        ``NOT_DECIDED``; already in the requested decision is success.

        Raises:
            ProviderRejected: decided the other way, 405 write-protected, or 403 (role).
            OutcomeUnknown: the PATCH got no answer; read the quotation again.
        """
        wanted = QuotationDecision.ACCEPTED if accept else QuotationDecision.REJECTED
        raw = await self._find_one(
            "decide_quotation", "/v2/tasking/quotation", quotation_id, placed.tracking_key
        )
        current = to_quotation(raw).decision
        if current is wanted:
            return
        if current is not QuotationDecision.NOT_DECIDED:
            raise ProviderRejected(
                f"decide_quotation: quotation {quotation_id} is already {current.value}",
                provider=PROVIDER,
                operation="decide_quotation",
                provider_code="ALREADY_DECIDED",
            )
        await self._http.write(
            "decide_quotation",
            "PATCH",
            self._url(f"/v2/tasking/quotation/{quotation_id}"),
            json={"decision": wanted.value},
        )

    async def cancel(self, placed: PlacedOrder) -> None:
        """``POST /v2/orders/{id}/cancellation``, only while ``CREATED`` or ``PLACEMENT_FAILED``
        (the SDK's rule); an order already ``CANCELED`` is success.

        Raises:
            ProviderRejected: any other status (the message names it), or UP42 refused.
            OutcomeUnknown: the POST got no answer; read the order again.
        """
        order_id = placed.tracking_key
        order = await self._http.read("cancel", "GET", self._url(f"/v2/orders/{order_id}"))
        status = str(order.get("status")) if isinstance(order, dict) else "unknown"
        if status == "CANCELED":
            return
        if status not in CANCELLABLE:
            raise ProviderRejected(
                f"UP42 allows cancellation only while CREATED or PLACEMENT_FAILED; order is {status}",
                provider=PROVIDER,
                operation="cancel",
                provider_code="NOT_CANCELLABLE",
            )
        await self._http.write("cancel", "POST", self._url(f"/v2/orders/{order_id}/cancellation"))

    async def find_deliveries(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """Products in UP42 storage of ``orders``, new since ``cursor``: assets created since the
        cursor, their STAC items, their collections' original archives
        (``worker.providers.up42.delivery``). Calls grow with new assets, not with orders."""
        return await self._deliveries.harvest(orders, cursor)

    async def refresh_token(self) -> bool:
        """Renew the password-grant token when it is within its renewal margin (see the protocol)."""
        return await self.tokens.refresh_if_due()

    def forget(self, tracking_keys: Collection[str]) -> None:
        """Drop what the last polls saw of these orders (see ``TaskingProvider.forget``): a
        forgotten order's coverage is read again at its next poll while it is acquiring."""
        for key in tracking_keys:
            self._seen.pop(key, None)

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter built it."""
        if self._owns_client:
            await self._client.aclose()
