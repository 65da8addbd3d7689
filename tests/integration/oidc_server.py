"""A real OIDC token endpoint (client credentials grant, RFC 6749 §4.4) on loopback, for the
OAUTHBEARER tests: issues opaque tokens with a short lifetime and tells the Kafka gateway which
tokens are valid until when."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from worker.httpserver import ServerHandle, serve


@dataclass
class OidcServer:
    client_id: str = "tasking-worker"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(8))
    scope: str = "kafka"
    lifetime: float = 300.0
    refuse: bool = False
    issued: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    requests: int = 0
    _handle: ServerHandle | None = None

    @property
    def url(self) -> str:
        assert self._handle is not None
        return f"http://127.0.0.1:{self._handle.port}/realms/kafka/protocol/openid-connect/token"

    def check(self, token: str) -> float | None:
        return self.issued.get(token)

    async def start(self) -> None:
        app = Starlette(
            routes=[Route("/realms/kafka/protocol/openid-connect/token", self._token, methods=["POST"])]
        )
        self._handle = await serve(app, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._handle is not None:
            await self._handle.stop()

    async def _token(self, request: Request) -> JSONResponse:
        self.requests += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if self.refuse or client_id != self.client_id or secret != self.client_secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("scope") != self.scope:
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        token = secrets.token_urlsafe(24)
        self.issued[token] = time.monotonic() + self.lifetime
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime})
