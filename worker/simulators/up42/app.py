"""UP42 simulator: the v2 tasking API (``docs/providers/up42.md``) as one starlette app, with
UP42 storage (delivered assets, STAC API, downloads: :mod:`worker.simulators.up42.storage`).

It serves the Keycloak token and user-info endpoints and the API paths on one app, with the
payloads, error bodies and quirks of the reference: HTTP 200 with per-item ``errors`` on create
and estimate, ``tags`` that must not be empty, a ``subStatus`` that is never cleared when ``status``
moves on, 405 "write-protected" on deciding twice, several error envelopes, 0-based Spring pages.

The lifecycle runs on the simulated clock and is evaluated lazily at each request, so it is
deterministic for a given clock and seed::

    CREATED/FEASIBILITY_WAITING_UPLOAD --study_delay--> AUTO study (accepted by itself)
        or MANUAL study with options -> FEASIBILITY_WAITING_RESPONSE --option chosen-->
    QUOTATION_WAITING_UPLOAD --quotation_delay--> QUOTATION_WAITING_RESPONSE
        --ACCEPTED (credits deducted)--> BEING_PLACED -> PLACED -> BEING_FULFILLED
            (deliveries appear as storage assets, coverage grows) -> FULFILLED at 100 % or window end
            each asset's STAC items appear ``extraction_delay`` later (also after FULFILLED)
        --REJECTED--> FAILED_PERMANENTLY with subStatus QUOTATION_REJECTED          [I]

Operator controls exist as Python methods and as ``/_sim/...`` JSON endpoints (those bypass auth,
faults and the call record). Every provider path goes through :func:`apply_faults`.

A ``lost_response`` fault runs the handler, then holds the answer for ``Fault.delay`` seconds: a
client with a shorter timeout sees a timeout after the effect happened. ``httpx.ASGITransport``
applies no timeout, so in-process tests wrap it with a transport that enforces one.

The routes live per resource (:mod:`.auth`, :mod:`.orders`, :mod:`.tasking`, :mod:`.assets`,
:mod:`.console`) on the shared state of :mod:`.state`; this module only composes them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulators.common import apply_faults
from worker.simulators.up42.assets import AssetRoutes
from worker.simulators.up42.auth import AuthRoutes
from worker.simulators.up42.console import console_routes
from worker.simulators.up42.orders import OrderRoutes
from worker.simulators.up42.responses import Endpoint, _error
from worker.simulators.up42.state import SimOrder, Up42SimConfig
from worker.simulators.up42.tasking import TaskingRoutes

__all__ = ["SimOrder", "Up42SimConfig", "Up42Simulator"]


class Up42Simulator(AuthRoutes, OrderRoutes, TaskingRoutes, AssetRoutes):
    """The UP42 v2 API, its Keycloak realm and an operator console, on one ASGI app (``.app``)."""

    def _routes(self) -> list[Route]:
        api, sim = self._api, self._operator
        return [
            Route(
                "/realms/public/protocol/openid-connect/token", api(self._token, auth=False), methods=["POST"]
            ),
            Route(
                "/realms/public/protocol/openid-connect/userinfo",
                api(self._userinfo, auth=False),
                methods=["GET"],
            ),
            Route("/v2/collections", api(self._collections, auth=False), methods=["GET"]),
            Route("/orders/schema/{product_id}", api(self._schema), methods=["GET"]),
            Route("/v2/orders/estimate", api(self._estimate), methods=["POST"]),
            Route("/v2/orders", api(self._orders_root), methods=["GET", "POST"]),
            Route("/v2/orders/{order_id}", api(self._order_item), methods=["GET", "PATCH"]),
            Route("/v2/orders/{order_id}/cancellation", api(self._cancel), methods=["POST"]),
            Route("/v2/tasking/feasibility-studies", api(self._list_studies), methods=["GET"]),
            Route("/v2/tasking/feasibility-studies/{study_id}", api(self._decide_study), methods=["PATCH"]),
            Route("/v2/tasking/quotation", api(self._list_quotations), methods=["GET"]),
            Route("/v2/tasking/quotation/{quotation_id}", api(self._decide_quotation), methods=["PATCH"]),
            Route("/v2/coverage/orders/{order_id}", api(self._coverage), methods=["GET"]),
            Route("/v2/assets/stac/", api(self.storage.catalog), methods=["GET"]),
            Route("/v2/assets/stac", api(self.storage.catalog), methods=["GET"]),
            Route("/v2/assets/stac/search", api(self._stac_search), methods=["POST"]),
            Route(
                "/v2/assets/stac/collections/{collection_id}", api(self.storage.collection), methods=["GET"]
            ),
            Route(
                "/v2/assets/stac/collections/{collection_id}/items",
                api(self.storage.collection_items),
                methods=["GET"],
            ),
            Route(
                "/v2/assets/stac/collections/{collection_id}/items/{item_id}",
                api(self.storage.collection_items),
                methods=["GET"],
            ),
            Route("/v2/assets", api(self._list_assets), methods=["GET"]),
            Route("/v2/assets/{asset_id}", api(self.storage.download), methods=["GET"]),
            Route("/v2/assets/{asset_id}/download-url", api(self.storage.download_url), methods=["POST"]),
            Route("/_storage/{token}", self.storage.signed_download, methods=["GET"]),
            *console_routes(self, sim),
        ]

    def _api(self, handler: Endpoint, *, auth: bool = True) -> Endpoint:
        """A provider endpoint: faults and call record, lazy lifecycle, bearer-token check."""

        async def guarded(request: Request) -> Response:
            if auth and (denied := self._deny(request)) is not None:
                return denied
            self.tick()
            return await handler(request)

        async def endpoint(request: Request) -> Response:
            return await apply_faults(self.core, request, guarded)

        return endpoint

    @staticmethod
    def _operator(handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except KeyError as exc:
                return _error(404, f"unknown {exc.args[0]}")
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))

        return endpoint
