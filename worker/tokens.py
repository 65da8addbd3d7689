"""Bearer-token lifecycles for both providers.

OneAtlas exchanges an API key for a 1 h token with no refresh token; UP42 uses a password grant for
a 5 min token. Both are handled the same way: the token is fetched on first use, renewed
``margin`` seconds before it expires (so a request never leaves with a token about to die), and
renewed once more when the provider answers 401 (:meth:`TokenSource.invalidate`). Concurrent
callers share one renewal.

The token value is only ever held in memory and sent in the ``Authorization`` header; it never
appears in a ``repr``, a log field or an exception message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, repr=False)
class Token:
    """An access token and its absolute expiry on the monotonic clock."""

    value: str
    expires_at: float

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at:.0f}, value=[REDACTED])"


Fetch = Callable[[], Awaitable[tuple[str, float]]]
"""Fetches a new token: returns ``(access_token, expires_in_seconds)``; raises ProviderError."""


@dataclass
class TokenSource:
    """Caches one token and renews it early.

    Args:
        fetch: obtains a new token from the provider's token endpoint.
        margin: renew this many seconds before expiry (30 s for UP42's 5 min tokens, 60 s for
            OneAtlas's 1 h tokens); capped at half the lifetime for short-lived test tokens.
        on_renewal: called with ``True``/``False`` after each renewal attempt (metrics).
        clock: monotonic seconds (injectable for tests).
    """

    fetch: Fetch
    margin: float = 30.0
    on_renewal: Callable[[bool], None] | None = None
    clock: Callable[[], float] = time.monotonic
    _token: Token | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def _fresh(self) -> Token | None:
        token = self._token
        if token is not None and self.clock() < token.expires_at:
            return token
        return None

    async def get(self) -> str:
        """A valid token, renewing it first when it is missing or about to expire."""
        token = self._fresh()
        if token is not None:
            return token.value
        async with self._lock:
            token = self._fresh()
            if token is None:
                token = await self._renew()
            return token.value

    async def _renew(self) -> Token:
        try:
            value, expires_in = await self.fetch()
        except Exception:
            if self.on_renewal:
                self.on_renewal(False)
            raise
        margin = min(self.margin, expires_in / 2)
        self._token = Token(value, self.clock() + expires_in - margin)
        if self.on_renewal:
            self.on_renewal(True)
        return self._token

    async def refresh_if_due(self) -> bool:
        """Renew a cached token that has reached its renewal margin; ``True`` when it renewed.

        Does nothing before the first token was obtained (no eager authentication).
        """
        if self._token is None or self._fresh() is not None:
            return False
        async with self._lock:
            if self._fresh() is None:
                await self._renew()
                return True
        return False

    def invalidate(self, value: str) -> None:
        """Forget ``value`` after a 401 so the next :meth:`get` renews (once per bad token)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    def seconds_left(self) -> float | None:
        """Seconds until the cached token must be renewed, or ``None`` without a token."""
        if self._token is None:
            return None
        return self._token.expires_at - self.clock()
