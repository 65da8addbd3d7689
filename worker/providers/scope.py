"""Where a provider's credentials may go: its configured origins, over ``https``.

A provider token (OneAtlas bearer, UP42 bearer) is sent only to an *origin* (scheme, host and
port) that the provider's configuration names (``TASKING_<PROVIDER>__*_URL``), or to a host of the
provider's own documented domain (``*.oneatlas.airbus.com``, ``*.up42.com``: the OneAtlas download
host is not configured) and only over ``https``. Plain ``http`` is allowed only to a loopback host
(the simulators and tests) that is a configured origin. A URL anywhere else (a STAC ``next`` link
or a download href naming another host, another port, or ``http``) gets no credentials: the
callers refuse it with a message naming the origin (never the token).

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.config import OneAtlasSettings, Up42Settings, is_loopback

_DEFAULT_PORTS = {"https": 443, "http": 80}
ONEATLAS_DOMAIN = ".oneatlas.airbus.com"
UP42_DOMAIN = ".up42.com"


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case, default port filled in); ``""`` when it has
    no scheme or host."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        return ""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


@dataclass(frozen=True)
class CredentialScope:
    """The origins one provider's credentials may be sent to (see the module docstring)."""

    provider: str
    origins: frozenset[str]
    domain: str | None = None  # the provider's own domain suffix, e.g. ``.up42.com`` (https only)

    @classmethod
    def of(cls, provider: str, urls: Iterable[object], domain: str | None = None) -> CredentialScope:
        found = frozenset(o for o in (origin(str(u)) for u in urls if u is not None) if o)
        return cls(provider, found, domain)

    def allows(self, url: str) -> bool:
        """Whether ``url`` may receive this provider's credentials."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        where = origin(url)
        if scheme == "https":
            return where in self.origins or (self.domain is not None and host.endswith(self.domain))
        if scheme == "http":
            return is_loopback(host) and where in self.origins
        return False

    def refusal(self, url: str) -> str:
        """Why ``url`` gets no credentials (names the origin only, never the URL's query)."""
        where = origin(url) or "a URL without a host"
        return (
            f"{where} is not a configured {self.provider} origin over https (plain http only to a "
            f"loopback host): the {self.provider} credentials are not sent there"
        )


def oneatlas_scope(settings: OneAtlasSettings) -> CredentialScope:
    """OneAtlas: the configured order, auth, search and data hosts, and ``*.oneatlas.airbus.com``."""
    urls = (settings.base_url, settings.auth_url, settings.search_url, settings.data_url)
    return CredentialScope.of("oneatlas", urls, ONEATLAS_DOMAIN)


def up42_scope(settings: Up42Settings) -> CredentialScope:
    """UP42: the configured API and auth hosts, and ``*.up42.com``."""
    urls = (settings.base_url, settings.auth_url, settings.resolved_userinfo_url())
    return CredentialScope.of("up42", urls, UP42_DOMAIN)
