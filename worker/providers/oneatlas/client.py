"""The OneAtlas adapter's client: its HTTP layers, the token from the API key and the contract
of each backend. :class:`~worker.providers.oneatlas.provider.OneAtlasProvider` builds on it
(through :class:`~worker.providers.oneatlas.tracking.OneAtlasTracking`); the API key and the token
never appear in an exception message or a log line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from worker.config import HttpClientSettings, OneAtlasSettings
from worker.errors import (
    ProviderNotConfigured,
    ProviderProtocolError,
)
from worker.events.models import Provider
from worker.providers.http import NullMetrics, ProviderHttp, ProviderMetrics, build_client, http_policy
from worker.providers.oneatlas.common import (
    PROVIDER,
    TOKEN_MARGIN_SECONDS,
    Sleep,
    as_dict,
    as_float,
)
from worker.providers.oneatlas.delivery import DeliveryFinder
from worker.providers.oneatlas.failures import auth_translate, translate_error
from worker.providers.scope import oneatlas_scope
from worker.tokens import TokenSource


class OneAtlasClient:
    """Configuration, auth and the HTTP calls of :class:`~.provider.OneAtlasProvider` (whose
    docstring lists the arguments)."""

    name = Provider.ONEATLAS

    def __init__(
        self,
        settings: OneAtlasSettings,
        http: HttpClientSettings,
        *,
        client: httpx.AsyncClient | None = None,
        metrics: ProviderMetrics | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = 100,
        delivery_page_size: int = 500,
    ) -> None:
        self._settings = settings
        self._owns_client = client is None
        self._client = client if client is not None else build_client(http, settings.max_concurrency)
        self._page_size = page_size
        self._base = str(settings.base_url).rstrip("/")
        policy = http_policy(http, settings.rate_limit_per_second, settings.max_concurrency)
        sink = metrics if metrics is not None else NullMetrics()
        renewed = getattr(sink, "token_renewed", None)
        self._tokens = TokenSource(
            self._fetch_token,
            margin=TOKEN_MARGIN_SECONDS,
            clock=clock,
            on_renewal=(lambda ok: renewed(PROVIDER, ok)) if callable(renewed) else None,
        )
        self._http = ProviderHttp(
            PROVIDER,
            self._client,
            self._tokens,
            policy=policy,
            metrics=sink,
            translate=translate_error,
            sleep=sleep,
            scope=oneatlas_scope(settings),
        )
        self._auth_http = ProviderHttp(
            PROVIDER,
            self._client,
            None,
            policy=policy,
            metrics=sink,
            translate=auth_translate(self._api_key_or_empty()),
            sleep=sleep,
        )
        self._deliveries = DeliveryFinder(settings, self._http, self._contract, delivery_page_size)
        # Which backend a tracking key belongs to, learnt when this process placed or found it.
        self._backends: dict[str, str] = {}

    # ------------------------------------------------------------------ configuration and auth

    def _api_key_or_empty(self) -> str:
        key = self._settings.api_key
        return key.get_secret_value() if key is not None else ""

    def _contract(self, backend: str) -> str:
        """The contract for a backend (PNEO: the neo contract, falling back to ``contract_id``)."""
        if not self._settings.configured:
            raise ProviderNotConfigured("OneAtlas API key is not configured", provider=PROVIDER)
        contract = self._settings.contract_id
        if backend == "neo":
            contract = self._settings.neo_contract_id or contract
        if not contract:
            raise ProviderNotConfigured(f"no OneAtlas {backend} contract configured", provider=PROVIDER)
        return contract

    async def _fetch_token(self) -> tuple[str, float]:
        """Exchange the API key for a token (form POST); returns ``(token, expires_in)``."""
        api_key = self._api_key_or_empty()
        if not api_key:
            raise ProviderNotConfigured("OneAtlas API key is not configured", provider=PROVIDER)
        body = await self._auth_http.read(
            "authenticate",
            "POST",
            str(self._settings.auth_url),
            data={"apikey": api_key, "grant_type": "api_key", "client_id": "IDP"},
        )
        body = as_dict(body)
        token, token_type = body.get("access_token"), str(body.get("token_type") or "bearer")
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise ProviderProtocolError(
                "authenticate: no bearer access_token in the answer",
                provider=PROVIDER,
                operation="authenticate",
            )
        return token, as_float(body.get("expires_in")) or 3600.0

    def _url(self, path: str) -> str:
        return self._base + path

    async def _read(self, operation: str, method: str, path: str, **kw: Any) -> Any:
        return await self._http.read(operation, method, self._url(path), **kw)

    async def _write(self, operation: str, method: str, path: str, **kw: Any) -> Any:
        return await self._http.write(operation, method, self._url(path), **kw)
