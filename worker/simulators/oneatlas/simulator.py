"""A faithful simulator of the Airbus OneAtlas tasking API (auth + order.api on one ASGI app).

It serves the real paths, status codes and payload shapes of the OneAtlas order API,
including the quirks a client must survive: ``/attempts`` answers ``progCapacities`` as an *object*
with WKT footprints, ``mission`` and ``missions`` are both accepted, prices and orders answer 201,
ICRs use camel-case ``progTypeName`` (``OneDay``), and errors come in the three body families
(ApiError, ``{errorCode, message}``, ``{errors: [{code, locator, message}]}``).

Behaviour follows the simulated clock (``SimulatorCore.clock``) and is evaluated lazily: every
request first advances every order to "now". Everything random comes from per-order generators
seeded with ``seed`` and the order id, so a run is reproducible whatever the order of the polls.

* Feasibility: AUTOMATIC unless STEREO/TRISTEREO, ``maxCloudCover < 10``, ``maxIncidenceAngle < 20``
  or a ONEPLAN period under 30 days (§6); EASY for ONEPLAN periods of 60 days or more.
* Legacy (SPOT/PHR) order: an ICR ``In Progress`` (``Feasibility study in progress`` for a MANUAL
  order, until ``study_duration`` passes or an operator finishes it). Every ``acquisition_interval``
  an acquisition is attempted with a seeded ``clearSkyRate``: auto-``Validated`` when its cloud cover
  is within ``maxCloudCover``, ``Proposed`` when within ``notificationThreshold`` (§4.5). The ICR
  completes when the validated coverage reaches 100 % or the period ends (possibly with
  ``validatedArea`` 0). ONEDAY/ONENOW orders acquire once, at the chosen attempt.
* PNEO order: a ``quotationId``; the quotation is SENT after ``quotation_delay`` (``study_duration``
  for MANUAL) with ``quotationEndOfValidityDate``; accepting it creates the sales order and order
  item (``IN_PROGRESS``), then coverage items arrive like legacy segments; refusing it ends it.

"Paid" orders are counted per customer reference: a legacy order answered 2xx, or a PNEO quotation
accepted. Operator controls exist as methods and as JSON endpoints under ``/_sim/``; those are not
subject to fault injection and are not recorded as calls.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.simulators.common import Fault, SimulatorCore, apply_faults, iso, paid_write_switches
from worker.simulators.oneatlas.catalogue import CatalogueApi
from worker.simulators.oneatlas.delivery import DeliveryApi
from worker.simulators.oneatlas.model import (
    AUTH_PATH,
    DAY,
    DEFAULT_CONTRACTS,
    ICR_ACTIVE,
    ICR_CANCELED,
    ICR_PAUSED,
    ICR_STUDY,
    SimContract,
    SimError,
    SimOrder,
    api_error,
)
from worker.simulators.oneatlas.ordering import OrderingApi
from worker.simulators.oneatlas.tracking import TrackingApi


class OneAtlasSimulator(CatalogueApi, OrderingApi, TrackingApi, DeliveryApi):
    """The OneAtlas simulator. Use :attr:`app` with ``httpx.ASGITransport`` or uvicorn.

    Args:
        core: clock, faults, call record, tokens (a fresh one when ``None``).
        api_key: the only API key the token endpoint accepts.
        contracts: the contracts this account holds.
        seed: seeds every random choice.
        token_lifetime: simulated seconds a token lives (``expires_in``).
        auth_failure_status: status for a wrong API key (403 per the spec; configurable).
        study_duration: simulated seconds a manual feasibility study takes.
        quotation_delay: simulated seconds before a PNEO quotation is SENT (automatic requests).
        quotation_validity: simulated seconds a sent quotation stays valid.
        acquisition_interval: simulated seconds between two acquisition attempts of an open order.
        coverage_per_acquisition: fraction of the AOI one validated acquisition covers.
        min_clear_sky: the seeded ``clearSkyRate`` is uniform in ``[min_clear_sky, 100]``.
        neo_auto_accept: PNEO AUTOMATIC orders skip the quotation step (accepted at once).
        delivery_delay: simulated seconds between an acquisition's validation and its delivered
            product in the delivery workspace.
        product_size: bytes of each delivered product (seeded content).
        listing_lag: real seconds a new order stays out of the listings (``GET …/taskings``,
            ``POST /api/v2/orders/search``) after it was created, as a search index that lags.
        duplicate_reference_status: when set, ``POST /api/v1/orders`` with a
            ``customerReference`` an open order already carries is refused with this status and
            an ``ApiError`` body (``ORDER-409``), as an API that keeps references unique would;
            the reference does not document the real behaviour ([U]), so it is a switch.
        raise_on_lost_response: a ``lost_response`` fault raises ``httpx.ReadTimeout`` after the
            handler ran, which ``httpx.ASGITransport`` propagates to the client (in-process tests
            have no client timeout); behind uvicorn the fault's ``delay`` does the job.
    """

    def __init__(
        self,
        core: SimulatorCore | None = None,
        *,
        api_key: str = "sim-oneatlas-key",
        contracts: Iterable[SimContract] = DEFAULT_CONTRACTS,
        seed: int = 7,
        token_lifetime: float = 3600.0,
        auth_failure_status: int = 403,
        study_duration: float = 2 * DAY,
        quotation_delay: float = 6 * 3600.0,
        quotation_validity: float = 7 * DAY,
        acquisition_interval: float = 3 * DAY,
        coverage_per_acquisition: float = 0.5,
        min_clear_sky: float = 55.0,
        neo_auto_accept: bool = False,
        raise_on_lost_response: bool = True,
        listing_lag: float = 0.0,
        duplicate_reference_status: int | None = None,
        delivery_delay: float = DAY,
        product_size: int = 1024 * 1024,
    ) -> None:
        self.core = core if core is not None else SimulatorCore()
        self.api_key = api_key
        self.contracts = {c.contract_id: c for c in contracts}
        self.seed = seed
        self.token_lifetime = token_lifetime
        self.auth_failure_status = auth_failure_status
        self.study_duration = study_duration
        self.quotation_delay = quotation_delay
        self.quotation_validity = quotation_validity
        self.acquisition_interval = acquisition_interval
        self.coverage_per_acquisition = coverage_per_acquisition
        self.min_clear_sky = min_clear_sky
        self.neo_auto_accept = neo_auto_accept
        self.raise_on_lost_response = raise_on_lost_response
        self.listing_lag = listing_lag
        self.duplicate_reference_status = duplicate_reference_status
        self.orders: list[SimOrder] = []
        # Per-order fault: customer references whose /taskings item is served malformed (an
        # ``icr`` that is not an object), as a provider's corrupted record would be.
        self.malformed_items: set[str] = set()
        self.no_capacity_aois: list[dict[str, Any]] = []
        self.no_attempt_aois: list[dict[str, Any]] = []
        self._segment_keys: dict[str, dict[str, Any]] = {}
        self._paid: Counter[str] = Counter()
        self._ids = 0
        self._lock = threading.RLock()
        self._init_deliveries(delivery_delay, product_size)
        self.app = Starlette(routes=self._routes())

    @property
    def legacy_contract_id(self) -> str:
        """The first ``legacy`` (SPOT/Pléiades) contract."""
        return self._first_contract("legacy").contract_id

    @property
    def neo_contract_id(self) -> str:
        """The first ``neo`` (Pléiades Neo) contract."""
        return self._first_contract("neo").contract_id

    @property
    def workspace_id(self) -> str:
        """The delivery workspace of the legacy contract (``delivery.workspace`` of orders)."""
        return self._first_contract("legacy").workspace

    def _first_contract(self, backend: str) -> SimContract:
        return next(c for c in self.contracts.values() if c.backend == backend)

    # ================================================================== routing

    def _routes(self) -> list[Route]:
        c, t = "/api/v1/contracts/{cid}", "/api/v1/contracts/{cid}/taskings/{tid}"
        api: list[tuple[str, str, Callable[[Request, bytes], Response]]] = [
            ("GET", "/api/v1/contracts", self._contracts),
            ("GET", c + "/productTypes", self._product_types),
            ("POST", c + "/productTypes/{ptype}/options", self._options),
            ("POST", "/api/v1/feasibility", self._feasibility),
            ("POST", "/api/v1/attempts", self._attempts),
            ("POST", "/api/v1/prices", self._prices),
            ("POST", "/api/v1/orders", self._orders),
            ("POST", "/api/v1/quotations", self._orders),
            ("PUT", c + "/quotations/{qid}/{verb:str}", self._quotation_decision),
            ("POST", "/api/v2/orders/search", self._orders_search),
            ("POST", "/api/v1/coverages/search", self._coverages_search),
            ("POST", "/api/v1/coverages/{item}/{verb:str}", self._coverage_decision),
            ("POST", "/api/v1/orders/{oiid}/{verb:str}", self._neo_stop_cancel),
            ("GET", c + "/taskings", self._taskings),
            ("GET", t, self._tasking),
            ("POST", t + "/cancel", self._tasking_cancel),
            ("GET", t + "/segments", self._segments),
            ("POST", t + "/segments/{sid}/{verb:str}", self._segment_decision),
            # Delivered products: the data, search and access hosts share this app.
            ("GET", "/api/v1/me", self._me),
            ("POST", "/api/v2/opensearch", self._opensearch_post),
            ("GET", "/api/v2/opensearch", self._opensearch_get),
            ("GET", "/api/v1/opensearch", self._opensearch_get),
            ("GET", "/api/v1/items/{item}/quicklook", self._quicklook),
            ("GET", "/api/v1/items/{item}/thumbnail", self._quicklook),
            ("GET", "/api/v1/items/{item}/images/{image}/metadata", self._image_metadata),
        ]
        routes = [Route(AUTH_PATH, self._endpoint(self._token, auth=False), methods=["POST"])]
        routes += [Route(p, self._endpoint(h), methods=[m]) for m, p, h in api]
        routes.append(
            Route("/api/v1/items/{item}/download", self._endpoint(self._download), methods=["GET", "HEAD"])
        )
        routes += self._sim_routes()
        return routes

    def _endpoint(
        self, handler: Callable[[Request, bytes], Response], *, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._dispatch(request, handler, auth)

        return endpoint

    async def _dispatch(
        self, request: Request, handler: Callable[[Request, bytes], Response], auth: bool
    ) -> Response:
        """Faults, call record, token check, clock evaluation, then the handler."""
        index: list[int] = []

        async def run(req: Request) -> Response:
            response = await self._handle(req, handler, auth)
            # apply_faults records this call right after we return, at this index.
            index.append(len(self.core.calls))
            return response

        response = await apply_faults(self.core, request, run)
        if index and self.raise_on_lost_response and self._lost(index[0]):
            raise httpx.ReadTimeout("simulated lost response")
        return response

    def _lost(self, index: int) -> bool:
        calls = self.core.calls
        return index < len(calls) and calls[index].fault == "lost_response"

    async def _handle(
        self, request: Request, handler: Callable[[Request, bytes], Response], auth: bool
    ) -> Response:
        raw = await request.body()
        with self._lock:
            try:
                if auth:
                    self._check_token(request)
                self._advance_all()
                return handler(request, raw)
            except SimError as exc:
                return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    # ================================================================== auth

    def _token(self, request: Request, raw: bytes) -> Response:
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "api_key" or form.get("client_id") != "IDP":
            raise api_error(400, "grant_type must be api_key and client_id must be IDP", "AUTH-400")
        if form.get("apikey") != self.api_key:
            raise api_error(self.auth_failure_status, "Invalid API key", "AUTH-403")
        token = self.core.issue_token(self.token_lifetime)
        return JSONResponse(
            {
                "access_token": token,
                "expires_in": int(self.token_lifetime),
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "session_state": f"sim-{token[-12:]}",
                "scope": "",
            }
        )

    def _check_token(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        expired = self.core.token_expired(token)
        if expired is None:
            raise SimError(401, {"message": "Authentication failed (cause: Invalid token)"})
        if expired:
            raise SimError(401, {"message": "Authentication failed (cause: Token expired)"})

    # ================================================================== operator controls

    def advance(self, seconds: float) -> None:
        """Jump the simulated clock ahead (orders catch up at the next request or control)."""
        self.core.clock.advance(seconds)
        with self._lock:
            self._advance_all()

    def set_clock_speed(self, speed: float) -> None:
        """Change the clock speed without a jump in simulated time."""
        clock = self.core.clock
        now = clock.now()
        clock.speed = speed
        clock.advance((now - clock.now()).total_seconds())

    def finish_study(self, key: str, *, feasible: bool = True) -> None:
        """End a manual study now: legacy ICR goes ``In Progress`` (or ``Canceled``); PNEO
        quotation is sent (or refused by the provider)."""
        with self._lock:
            self._advance_all()
            order, now = self.order(key), self._now()
            if order.backend == "legacy":
                if order.status != ICR_STUDY:
                    raise ValueError(f"{key} is not in a feasibility study ({order.status})")
                if feasible:
                    self._activate(order, now)
                else:
                    order.status, order.last_change = ICR_CANCELED, now
            elif feasible:
                self._send_quotation(order, now, order.amount)
            else:
                order.quotation_status, order.status, order.last_change = "REFUSED", "CANCELLED", now

    def send_quotation(self, key: str, amount: float | None = None, currency: str | None = None) -> None:
        """Send a PNEO quotation now, optionally with a chosen amount."""
        with self._lock:
            self._advance_all()
            order = self.order(key)
            if order.backend != "neo":
                raise ValueError("quotations exist for Pléiades Neo orders only")
            self._send_quotation(order, self._now(), order.amount if amount is None else amount, currency)

    def propose_acquisition(
        self, key: str, cloud_cover: float, incidence_angle: float = 15.0, status: str = "Proposed"
    ) -> str:
        """Add an acquisition to an open order with a chosen cloud cover; returns its id."""
        with self._lock:
            self._advance_all()
            order = self.order(key)
            if order.status not in (ICR_ACTIVE, ICR_PAUSED, "IN_PROGRESS"):
                raise ValueError(f"{key} is not acquiring ({order.status})")
            acquisition = self._acquire(
                order,
                self._now(),
                clear_sky=100.0 - cloud_cover,
                auto=False,
                incidence=incidence_angle,
                status=status,
            )
            assert acquisition is not None  # a status was given, so it is always kept
            if order.validated_fraction >= 1.0 - 1e-9:
                self._complete(order, self._now())
            return acquisition.id

    def set_status(self, key: str, status: str | None = None, quotation_status: str | None = None) -> None:
        """Move an order to any status (and PNEO quotation status), as the provider might."""
        with self._lock:
            order = self.order(key)
            if status is not None:
                order.status = status
            if quotation_status is not None:
                order.quotation_status = quotation_status
            if order.status not in (ICR_ACTIVE, "IN_PROGRESS"):
                order.next_acq_at = None
            order.last_change = self._now()

    def add_no_capacity_aoi(self, geometry: Mapping[str, Any]) -> None:
        """Feasibility answers ``available: false`` for AOIs intersecting ``geometry``."""
        with self._lock:
            self.no_capacity_aois.append(dict(geometry))

    def add_no_attempt_aoi(self, geometry: Mapping[str, Any]) -> None:
        """Attempts answer 500 ``ERR_NO_SENSOR_AVAILABLE`` for AOIs intersecting ``geometry``."""
        with self._lock:
            self.no_attempt_aois.append(dict(geometry))

    def expire_tokens(self) -> None:
        self.core.expire_tokens()

    def inject(self, fault: Fault | Mapping[str, Any]) -> None:
        self.core.inject(fault if isinstance(fault, Fault) else Fault(**fault))

    def calls(self) -> list[dict[str, Any]]:
        """The call record as JSON-ready dicts."""
        return [{**asdict(c), "at": iso(c.at)} for c in self.core.calls]

    def paid_orders(self) -> int:
        """Paid orders: legacy orders answered 2xx plus accepted PNEO quotations."""
        return sum(self._paid.values())

    def paid_order_count(self, customer_reference: str) -> int:
        """Paid orders for one customer reference (exactly-once checks)."""
        return self._paid[customer_reference]

    # ================================================================== /_sim endpoints

    def _sim_routes(self) -> list[Route]:
        def route(path: str, method: str, fn: Callable[[dict[str, Any], Mapping[str, str]], Any]) -> Route:
            async def endpoint(request: Request) -> Response:
                body = self._json(await request.body()) if method != "GET" else {}
                try:
                    result = fn(body, request.path_params)
                except (KeyError, ValueError, TypeError) as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
                return JSONResponse(result if result is not None else {})

            return Route(path, endpoint, methods=[method])

        return [
            route("/_sim/clock", "GET", lambda b, p: self._clock_state()),
            route("/_sim/clock", "POST", lambda b, p: self._set_clock(b)),
            route("/_sim/faults", "POST", lambda b, p: self.inject(b)),
            route("/_sim/faults", "DELETE", lambda b, p: self.core.clear_faults()),
            route("/_sim/paid-write-faults", "POST", lambda b, p: paid_write_switches(self, b)),
            route("/_sim/calls", "GET", lambda b, p: {"calls": self.calls()}),
            route(
                "/_sim/paid-orders",
                "GET",
                lambda b, p: {"count": self.paid_orders(), "byReference": dict(self._paid)},
            ),
            route("/_sim/tokens/expire", "POST", lambda b, p: self.expire_tokens()),
            route("/_sim/no-capacity", "POST", lambda b, p: self.add_no_capacity_aoi(b["aoi"])),
            route("/_sim/no-attempts", "POST", lambda b, p: self.add_no_attempt_aoi(b["aoi"])),
            route("/_sim/orders", "GET", lambda b, p: {"orders": self._summaries()}),
            route(
                "/_sim/orders/{key}/delivery",
                "POST",
                lambda b, p: self.plan_delivery(
                    p["key"],
                    delay=b.get("delaySeconds"),
                    withhold=b.get("withhold"),
                    withhold_all=b.get("withholdAll"),
                    release=b.get("release"),
                ),
            ),
            route("/_sim/deliveries", "GET", lambda b, p: {"products": self.delivered()}),
            route("/_sim/deliveries/{item}/expire", "POST", lambda b, p: self.expire_product(p["item"])),
            route("/_sim/downloads/faults", "POST", lambda b, p: self.inject_download_fault(b)),
            route(
                "/_sim/orders/{key}/study",
                "POST",
                lambda b, p: self.finish_study(p["key"], feasible=b.get("outcome", "feasible") == "feasible"),
            ),
            route(
                "/_sim/orders/{key}/quotation",
                "POST",
                lambda b, p: self.send_quotation(p["key"], b.get("amount"), b.get("currency")),
            ),
            route(
                "/_sim/orders/{key}/acquisitions",
                "POST",
                lambda b, p: {
                    "id": self.propose_acquisition(
                        p["key"],
                        float(b["cloudCover"]),
                        float(b.get("incidenceAngle", 15.0)),
                        str(b.get("status", "Proposed")),
                    )
                },
            ),
            route(
                "/_sim/orders/{key}/status",
                "POST",
                lambda b, p: self.set_status(p["key"], b.get("status"), b.get("quotationStatus")),
            ),
        ]

    def _clock_state(self) -> dict[str, Any]:
        return {"now": iso(self._now()), "speed": self.core.clock.speed}

    def _set_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("speed") is not None:
            self.set_clock_speed(float(body["speed"]))
        if body.get("advanceSeconds") is not None:
            self.advance(float(body["advanceSeconds"]))
        return self._clock_state()

    def _summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            self._advance_all()
            return [
                {
                    "customerReference": o.customer_ref,
                    "backend": o.backend,
                    "status": o.status,
                    "quotationStatus": o.quotation_status or None,
                    "salesOrderId": o.sales_order_id,
                    "taskingId": o.tasking_id,
                    "quotationId": o.quotation_id,
                    "orderItemId": o.order_item_id,
                    "acquisitions": [{"id": a.id, "status": a.status} for a in o.acquisitions],
                }
                for o in self.orders
            ]
