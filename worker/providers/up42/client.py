"""The UP42 adapter's client: the token (password grant), the workspace, the URLs and the order
body built from the product's schema. :class:`~worker.providers.up42.provider.Up42Provider`
builds on it (through :class:`~worker.providers.up42.tracking.Up42Tracking`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from worker.config import HttpClientSettings, Up42Settings
from worker.domain.identity import listed_identity, parse_instant
from worker.errors import (
    ProviderAuthError,
    ProviderNotConfigured,
    ProviderProtocolError,
)
from worker.events.models import OrderRequest
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
    PAGE_SIZE,
    PROVIDER,
    TOKEN_MARGIN_SECONDS,
    _number,
    _page_items,
    _Seen,
    translate_error,
)
from worker.providers.up42.params import build_params, display_name, reference_tags, validate_params
from worker.tokens import TokenSource

# The adapter's lines keep the provider module's logger name (log filters rely on it).
log = structlog.get_logger("worker.providers.up42.provider")


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


class Up42Client:
    """Auth, workspace and order bodies of :class:`~.provider.Up42Provider` (whose docstring
    lists the arguments)."""

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
