"""The UP42 simulator's Keycloak realm: the token and user-info endpoints and the bearer check."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.common import iso
from worker.simulators.up42.responses import _keycloak_error, _legacy_error
from worker.simulators.up42.state import Up42State

TOKEN_LIFETIME = 300.0
CLIENT_IDS = frozenset({"up42-api", "up42-sdk"})


class AuthRoutes(Up42State):
    """``/realms/public/protocol/openid-connect/{token,userinfo}`` and the 401 of the API paths."""

    def _deny(self, request: Request) -> Response | None:
        """401 in the legacy envelope for a missing, unknown or expired token."""
        if self.core.token_valid(request):
            return None
        header = request.headers.get("authorization", "")
        expiry = self.core.tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
        if expiry is not None:
            return _legacy_error(401, "UNAUTHORIZED", f"ACCESS_TOKEN_EXPIRED: JWT expired at {iso(expiry)}")
        return _legacy_error(401, "UNAUTHORIZED", "Full authentication is required")

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "password":
            return _keycloak_error(400, "unsupported_grant_type", "Unsupported grant_type")
        if form.get("client_id") not in CLIENT_IDS:
            return _keycloak_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        if form.get("username") != self.username or form.get("password") != self.password:
            return _keycloak_error(401, "invalid_grant", "Invalid user credentials")
        return JSONResponse(
            {
                "access_token": self.core.issue_token(TOKEN_LIFETIME),
                "expires_in": int(TOKEN_LIFETIME),
                "refresh_expires_in": 1800,
                "refresh_token": f"simrefresh-{self._rng.getrandbits(64):016x}",
                "token_type": "Bearer",
                "not-before-policy": 0,
                "session_state": self._uuid(),
                "scope": "ACCOUNT_ADMIN USER",
            }
        )

    async def _userinfo(self, request: Request) -> Response:
        if not self.core.token_valid(request):
            return _keycloak_error(401, "invalid_token", "Token verification failed")
        return JSONResponse({"sub": self.workspace_id, "email": self.username, "email_verified": True})
