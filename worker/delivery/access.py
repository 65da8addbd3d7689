"""How a delivered product's file is fetched with the provider's credentials.

The tokens come from the adapters' own token sources (``OneAtlasProvider.tokens``,
``Up42Provider.tokens``), so the download command authenticates exactly as the worker does:

* OneAtlas: ``GET`` the item's ``/download`` href with ``Authorization: Bearer`` (the link is not
  presigned); ``HEAD`` on the same href answers the md5 (``X-Ads-Checksum-*``).
* UP42: ``POST {href}/download-url`` with the bearer token mints a short-lived signed URL, fetched
  without credentials (a signed URL never goes into an event; it is minted again for a resumed
  transfer). When minting is not offered (404/405), the href itself is fetched with the token.

A token is only ever sent to the provider's own origins (``worker.providers.scope``: the
configured URLs' scheme, host and port, and ``*.oneatlas.airbus.com`` / ``*.up42.com``), only over
``https`` (plain ``http`` only to a configured loopback origin, for the simulators): an item file
naming another origin, or a provider host over plain ``http``, gets ``UNTRUSTED_HOST`` instead of
the token. Redirects to another origin drop the ``Authorization`` header (httpx does so for
cross-origin redirects).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from worker.config import Settings
from worker.errors import DownloadError, ProviderAuthError, ProviderError, ProviderNotConfigured
from worker.providers.scope import CredentialScope, oneatlas_scope, up42_scope
from worker.tokens import TokenSource


@dataclass(frozen=True)
class Prepared:
    """One request ready to send: the URL (maybe signed) and the headers (maybe a bearer token)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None


class Access(Protocol):
    """Credentials of one provider for downloads."""

    provider: str | None
    head_checksum: bool  # HEAD on the href answers the file's checksum (OneAtlas)

    async def prepare(self, href: str) -> Prepared:
        """The request for ``href``.

        Raises:
            DownloadError: ``NOT_CONFIGURED``, ``BAD_CREDENTIALS``, ``UNTRUSTED_HOST``, ``NOT_FOUND``
                or ``HTTP_ERROR`` (minting a signed URL failed).
        """
        ...

    def refused(self, prepared: Prepared) -> None:
        """The server answered 401 to ``prepared``: the next :meth:`prepare` renews the token."""


class Anonymous:
    """No credentials (assets without ``auth:refs``, or an unknown provider)."""

    provider: str | None = None
    head_checksum = False

    async def prepare(self, href: str) -> Prepared:
        return Prepared(href)

    def refused(self, prepared: Prepared) -> None:
        return None


class BearerAccess:
    """A provider's bearer token on its own origins."""

    def __init__(
        self,
        provider: str,
        tokens: Callable[[], TokenSource],
        scope: CredentialScope,
        *,
        head_checksum: bool = False,
    ) -> None:
        self.provider: str | None = provider
        self.head_checksum = head_checksum
        self._tokens = tokens
        self._scope = scope

    def trusted(self, href: str) -> bool:
        return self._scope.allows(href)

    async def token(self, href: str) -> str:
        if not self.trusted(href):
            raise DownloadError("UNTRUSTED_HOST", self._scope.refusal(href))
        try:
            return await self._tokens().get()
        except ProviderNotConfigured as exc:
            raise DownloadError("NOT_CONFIGURED", f"{self.provider}: {exc.message}") from None
        except ProviderAuthError as exc:
            raise DownloadError(
                "BAD_CREDENTIALS", f"{self.provider} refused the credentials: {exc.message}"
            ) from None
        except ProviderError as exc:
            raise DownloadError("HTTP_ERROR", f"{self.provider} token: {exc.message}") from None

    async def prepare(self, href: str) -> Prepared:
        token = await self.token(href)
        return Prepared(href, {"Authorization": f"Bearer {token}"}, token)

    def refused(self, prepared: Prepared) -> None:
        if prepared.token is not None:
            self._tokens().invalidate(prepared.token)


class Up42Access(BearerAccess):
    """UP42: a signed URL minted with ``POST {href}/download-url`` (the bearer token otherwise)."""

    def __init__(
        self, client: httpx.AsyncClient, tokens: Callable[[], TokenSource], scope: CredentialScope
    ) -> None:
        super().__init__("up42", tokens, scope)
        self._client = client

    async def prepare(self, href: str) -> Prepared:
        bearer = await super().prepare(href)
        for attempt in (1, 2):
            try:
                answer = await self._client.post(href.rstrip("/") + "/download-url", headers=bearer.headers)
            except httpx.HTTPError as exc:
                raise DownloadError(
                    "HTTP_ERROR", f"{href}: minting a download URL failed ({type(exc).__name__})"
                ) from None
            if answer.status_code in (401, 403) and attempt == 1:
                self.refused(bearer)
                bearer = await super().prepare(href)
                continue
            return _signed(href, answer, bearer)
        raise AssertionError("unreachable")


def _signed(href: str, answer: httpx.Response, bearer: Prepared) -> Prepared:
    status = answer.status_code
    if status in (404, 405):
        return bearer  # no minting for this href: fetch it with the token
    if status in (401, 403):
        raise DownloadError("BAD_CREDENTIALS", f"{href}: up42 refused the token (HTTP {status})")
    if status >= 400:
        raise DownloadError("HTTP_ERROR", f"{href}: minting a download URL answered HTTP {status}")
    try:
        url = answer.json().get("url")
    except ValueError:
        url = None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise DownloadError("HTTP_ERROR", f"{href}: the download-url answer has no url")
    return Prepared(url)


@dataclass
class Credentials:
    """The :class:`Access` of each provider, built on first use from the ``TASKING_*`` settings.

    The adapters are created with the shared download client (they do not own it), and only
    their token sources are used. ``close`` releases nothing but the adapters' state.
    """

    settings: Settings
    client: httpx.AsyncClient
    _adapters: dict[str, object] = field(default_factory=dict)
    _access: dict[str | None, Access] = field(default_factory=dict)

    def for_provider(self, provider: str | None) -> Access:
        known = self._access.get(provider)
        if known is not None:
            return known
        access: Access
        if provider == "oneatlas":
            scope = oneatlas_scope(self.settings.oneatlas)
            access = BearerAccess("oneatlas", self._oneatlas_tokens, scope, head_checksum=True)
        elif provider == "up42":
            access = Up42Access(self.client, self._up42_tokens, up42_scope(self.settings.up42))
        else:
            access = Anonymous()
        self._access[provider] = access
        return access

    def _oneatlas_tokens(self) -> TokenSource:
        from worker.providers.oneatlas import OneAtlasProvider

        adapter = self._adapters.get("oneatlas")
        if not isinstance(adapter, OneAtlasProvider):
            adapter = OneAtlasProvider(self.settings.oneatlas, self.settings.http_client, client=self.client)
            self._adapters["oneatlas"] = adapter
        return adapter.tokens

    def _up42_tokens(self) -> TokenSource:
        from worker.providers.up42 import Up42Provider

        adapter = self._adapters.get("up42")
        if not isinstance(adapter, Up42Provider):
            adapter = Up42Provider(self.settings.up42, self.settings.http_client, client=self.client)
            self._adapters["up42"] = adapter
        return adapter.tokens

    async def aclose(self) -> None:
        closers: list[Callable[[], Awaitable[None]]] = [
            a.aclose for a in self._adapters.values() if hasattr(a, "aclose")
        ]
        for close in closers:
            await close()
