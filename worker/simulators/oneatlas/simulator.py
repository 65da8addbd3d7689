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

import hashlib
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
from shapely.geometry import shape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.providers.wkt import area_km2, centroid, utm_epsg
from worker.simulators.common import Fault, SimulatorCore, apply_faults, iso

AUTH_PATH = "/auth/realms/IDP/protocol/openid-connect/token"
DAY = 86_400.0

LEGACY_PROG_TYPES = ("ONEPLAN", "ONEDAY", "ONENOW", "ONESERIES")
NEO_PROG_TYPES = ("ONEPLAN", "ONEDAY", "ONENOWATTEMPTS", "ONENOWWEATHER")
ATTEMPT_PROG_TYPES = {"legacy": ("ONEDAY", "ONENOW"), "neo": ("ONEDAY", "ONENOWATTEMPTS")}
ATTEMPT_TYPES = frozenset({"ONEDAY", "ONENOW", "ONENOWATTEMPTS"})
CAMEL = {
    "ONEPLAN": "OnePlan",
    "ONEDAY": "OneDay",
    "ONENOW": "OneNow",
    "ONESERIES": "OneSeries",
    "ONENOWATTEMPTS": "OneNowAttempts",
    "ONENOWWEATHER": "OneNowWeather",
}
PREFIX = {"PLEIADES": "PleiadesTasking", "SPOT": "SpotTasking", "PLEIADESNEO": "PleiadesNeo"}
SATELLITE = {"PLEIADES": "PHR", "SPOT": "SPOT", "PLEIADESNEO": "PNEO"}
RATE_PER_KM2 = {"PLEIADES": 56.0, "SPOT": 6.9, "PLEIADESNEO": 23.0}
MIN_KM2 = {"PLEIADES": 100.0, "SPOT": 500.0, "PLEIADESNEO": 100.0}
ATTEMPT_AOI_KM2 = {"PLEIADESNEO": (24.5, 400.0), "PLEIADES": (25.0, 800.0), "SPOT": (100.0, 7200.0)}
SPECTRAL = {
    "legacy": {
        "pansharpened_natural_color",
        "panchromatic",
        "pansharpened",
        "multispectral",
        "pansharpened_false_color",
        "bundle",
    },
    "neo": {"panchromatic", "pansharpened", "multispectral", "bundle", "full_bundle", "full_pms", "full_ms"},
}

ICR_STUDY, ICR_ACTIVE, ICR_PAUSED = "Feasibility study in progress", "In Progress", "Paused"
ICR_CANCELED, ICR_COMPLETED = "Canceled", "Completed"
ICR_OPEN = (ICR_STUDY, ICR_ACTIVE, ICR_PAUSED)


class SimError(Exception):
    """An HTTP error answer (status and body) raised inside a handler."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def api_error(status: int, message: str, internal_code: str = "SIM") -> SimError:
    """The foundation ApiError family."""
    return SimError(
        status,
        {
            "correlationId": f"sim-{abs(hash(message)) % 10**8:08d}",
            "hint": message,
            "internalCode": internal_code,
            "message": message,
            "timestamp": 0,
        },
    )


def code_error(status: int, code: str, message: str) -> SimError:
    """The order.api ``{errorCode, message}`` family (``E2203``...)."""
    return SimError(status, {"errorCode": code, "message": message})


def errors_error(status: int, code: str, locator: str, message: str | None = None) -> SimError:
    """The ``{errors: [{code, locator, message}]}`` family (feasibility, attempts)."""
    error: dict[str, Any] = {"code": code, "locator": locator}
    if message is not None:
        error["message"] = message
    return SimError(status, {"errors": [error]})


@dataclass(frozen=True)
class SimContract:
    """One contract: ``legacy`` (SPOT/PHR) or ``neo`` (PNEO), with its delivery workspace."""

    contract_id: str
    backend: str
    workspace: str
    currency: str = "EUR"
    name: str = ""


DEFAULT_CONTRACTS = (
    SimContract("CTR21000001", "legacy", "7b1a0c1e-0000-4000-8000-00000000a001", name="Legacy"),
    SimContract("CTR21000002", "neo", "7b1a0c1e-0000-4000-8000-00000000b002", name="Neo"),
)


@dataclass
class SimAcquisition:
    """A legacy segment or a PNEO coverage item."""

    id: str
    status: str
    clear_sky: float
    incidence: float
    acquired_at: datetime
    footprint: dict[str, Any]
    catalog_id: str


@dataclass
class SimOrder:
    """One order: a legacy ICR or a PNEO order line, with its acquisitions."""

    seq: int
    backend: str
    contract_id: str
    customer_ref: str
    mission: str
    prog_type: str
    product_type: str
    aoi: dict[str, Any]
    area_km2: float
    start: datetime
    end: datetime
    max_cloud: float
    threshold: float
    max_incidence: float
    mode: str
    automation: str
    created: datetime
    amount: float
    currency: str
    rng: random.Random
    attempt: dict[str, Any] | None = None
    status: str = ""
    sales_order_id: str | None = None
    so: str | None = None
    tasking_id: str | None = None
    quotation_id: str | None = None
    quotation_status: str = ""
    order_item_id: str | None = None
    quote_at: datetime | None = None
    quotation_valid_until: datetime | None = None
    study_until: datetime | None = None
    next_acq_at: datetime | None = None
    validated_fraction: float = 0.0
    last_change: datetime | None = None
    acquisitions: list[SimAcquisition] = field(default_factory=list)

    def ids(self) -> set[str]:
        """Every id an operator may use to name this order."""
        ids = {self.sales_order_id, self.tasking_id, self.quotation_id, self.order_item_id, self.customer_ref}
        return {i for i in ids if i}


class OneAtlasSimulator:
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
        self.orders: list[SimOrder] = []
        self.no_capacity_aois: list[dict[str, Any]] = []
        self.no_attempt_aois: list[dict[str, Any]] = []
        self._segment_keys: dict[str, dict[str, Any]] = {}
        self._paid: Counter[str] = Counter()
        self._ids = 0
        self._lock = threading.RLock()
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
        ]
        routes = [Route(AUTH_PATH, self._endpoint(self._token, auth=False), methods=["POST"])]
        routes += [Route(p, self._endpoint(h), methods=[m]) for m, p, h in api]
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

    # ================================================================== helpers

    def _now(self) -> datetime:
        return self.core.clock.now()

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise api_error(400, "Malformed JSON body", "JSON-400") from exc
        if not isinstance(body, dict):
            raise api_error(400, "JSON body must be an object", "JSON-400")
        return body

    def _contract(self, cid: Any) -> SimContract:
        contract = self.contracts.get(str(cid))
        if contract is None:
            raise code_error(404, "E2203", f"CIS contract '{cid}' not found.")
        return contract

    def _rng(self, *parts: Any) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *parts))))

    # ================================================================== catalogue

    def _contracts(self, request: Request, raw: bytes) -> Response:
        return JSONResponse(
            {
                "contracts": [
                    {
                        "contractId": c.contract_id,
                        "customerId": "CUS-SIM",
                        "name": c.name or c.contract_id,
                        "tradeAgreementUrl": "",
                        "creditRemaining": "1000000",
                        "currency": c.currency,
                        "language": "en",
                        "contractType": "PPO",
                        "delivery": [{"deliveryPlatformId": "PublicMOC", "deliveryWorkspace": c.workspace}],
                        "backendSource": c.backend,
                    }
                    for c in self.contracts.values()
                ]
            }
        )

    def product_types(self, backend: str) -> list[str]:
        """The ``productTypeId`` values a contract of this backend can order."""
        if backend == "neo":
            base = [PREFIX["PLEIADESNEO"] + CAMEL[p] for p in NEO_PROG_TYPES]
            return base + [b + "Vrs" for b in base]
        return [PREFIX[m] + CAMEL[p] for m in ("PLEIADES", "SPOT") for p in LEGACY_PROG_TYPES]

    def _product_types(self, request: Request, raw: bytes) -> Response:
        contract = self._contract(request.path_params["cid"])
        return JSONResponse(
            {
                "productTypes": [
                    {
                        "productTypeId": p,
                        "technicalProduct": {
                            "id": p,
                            "label": p,
                            "source": {"id": "tasking", "label": "Tasking"},
                            "sensor": {"id": _sensor(p), "label": _sensor(p)},
                            "target": {"id": _target(p), "label": _target(p)},
                            "licences": [],
                        },
                        "minimumOrderAreaApplied": 500 if p.startswith("Spot") else 100,
                        "descriptionUrl": "",
                    }
                    for p in self.product_types(contract.backend)
                ]
            }
        )

    def _options(self, request: Request, raw: bytes) -> Response:
        contract = self._contract(request.path_params["cid"])
        ptype = request.path_params["ptype"]
        if ptype not in self.product_types(contract.backend):
            raise code_error(404, "E2204", f"Product type '{ptype}' not found.")
        polygons = _list(self._json(raw).get("aoi"))
        aoi_id = _dict(polygons[0]).get("polygonId", 1) if polygons else 1
        geometry = _dict(polygons[0]).get("geometry") if polygons else None
        projection = utm_epsg(geometry) if isinstance(geometry, dict) else "4326"
        default_spectral = "full_bundle" if contract.backend == "neo" else "bundle"
        return JSONResponse(
            {
                "availableOptions": [
                    _option("processing_level", "primary", ["ortho", "projected", "primary"]),
                    _option("spectral_processing", default_spectral, sorted(SPECTRAL[contract.backend])),
                    _option("radiometric_processing", "basic", ["basic", "reflectance", "display"]),
                    _option("pixel_coding", "12bits", ["8bits", "12bits"]),
                    _option(
                        "image_format",
                        "dimap_jpeg2000_regular",
                        ["dimap_jpeg2000_regular", "dimap_jpeg2000_optimized", "dimap_geotiff"],
                    ),
                    _option(
                        f"projection_{aoi_id}",
                        projection,
                        [projection, "4326", "3857"],
                        mandatory="constraint",
                        condition="processing_level:(ortho|projected)",
                    ),
                    _option(
                        f"dem_{aoi_id}",
                        "best_available",
                        ["best_available", "SRTMV4"],
                        mandatory="constraint",
                        condition="processing_level:(ortho)",
                    ),
                    _option("priority", "standard", ["standard", "rush"]),
                    _option("licence", "standard", ["standard", "background_layer"]),
                    _option("delivery_method", "on_the_flow", ["on_the_flow", "at_the_end"]),
                ]
            }
        )

    # ================================================================== feasibility / attempts

    def _search_request(self, body: dict[str, Any], endpoint: str) -> dict[str, Any]:
        """Validate a feasibility/attempts body; returns the parsed essentials."""
        for name in ("progTypeNames", "contractId", "acquisitionDate", "optical", "aoi"):
            if body.get(name) in (None, "", []):
                raise errors_error(400, "ERR_MISSING_PARAMETER", name, f"{name} is required")
        missions = body.get("missions")
        mission = body.get("mission") or (missions[0] if isinstance(missions, list) and missions else None)
        if mission not in PREFIX:
            raise errors_error(400, "ERR_INVALID_PARAMETER", "mission", f"unknown mission {mission}")
        contract = self._contract(body["contractId"])
        backend = "neo" if mission == "PLEIADESNEO" else "legacy"
        if contract.backend != backend:
            raise errors_error(
                400,
                "ERR_OTHER",
                "contractId",
                f"{mission} cannot be ordered on a {contract.backend} contract",
            )
        names = body["progTypeNames"] if isinstance(body["progTypeNames"], list) else [body["progTypeNames"]]
        allowed = (
            ATTEMPT_PROG_TYPES[backend]
            if endpoint == "attempts"
            else (NEO_PROG_TYPES if backend == "neo" else LEGACY_PROG_TYPES)
        )
        for name in names:
            if name not in allowed:
                raise errors_error(
                    400,
                    "ERR_INVALID_PARAMETER",
                    "progTypeNames",
                    f"{name} is not one of {', '.join(allowed)}",
                )
        dates, optical = _dict(body["acquisitionDate"]), _dict(body["optical"])
        start = _time(dates.get("startDate"), "acquisitionDate.startDate")
        end = (
            _time(dates["endDate"], "acquisitionDate.endDate")
            if dates.get("endDate")
            else start + timedelta(days=7)
        )
        aoi = _aoi(body["aoi"])
        return {
            "mission": mission,
            "backend": backend,
            "names": names,
            "start": start,
            "end": end,
            "aoi": aoi,
            "mode": str(optical.get("acquisitionMode") or "MONO"),
            "cloud": float(optical.get("maxCloudCover", 100)),
            "incidence": float(optical.get("maxIncidenceAngle", 90)),
            "contract": contract,
        }

    def _feasibility(self, request: Request, raw: bytes) -> Response:
        q = self._search_request(self._json(raw), "feasibility")
        blocked = _intersects_any(q["aoi"], self.no_capacity_aois)
        prog_types = [self._feasibility_entry(q, name, blocked) for name in q["names"]]
        return JSONResponse({"progCapacities": [{"mission": q["mission"], "progTypes": prog_types}]})

    def _feasibility_entry(self, q: dict[str, Any], name: str, blocked: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "mission": q["mission"]}
        size_error = _aoi_size_error(q["mission"], name, q["aoi"])
        if size_error is not None:
            return {**entry, "errors": [size_error], "available": False}
        if blocked:
            return {**entry, "available": False}
        days = (q["end"] - q["start"]).total_seconds() / DAY
        manual = (
            q["mode"] != "MONO"
            or q["cloud"] < 10
            or q["incidence"] < 20
            or (name == "ONEPLAN" and days < 30)
            or (name == "ONENOWWEATHER" and days < 3)
        )
        feasibility: dict[str, Any] = {
            "classification": "EASY" if name != "ONEPLAN" or days >= 60 else "CHALLENGING",
            "automation": "MANUAL" if manual else "AUTOMATIC",
        }
        if q["backend"] == "legacy":
            feasibility["automationName"] = "" if manual else "AutomaticTasking30"
            return {**entry, "feasibility": feasibility, "available": True}
        expires = iso(self._now() + timedelta(days=1))
        return {**entry, "feasibility": feasibility, "available": True, "expirationDate": expires}

    def _attempts(self, request: Request, raw: bytes) -> Response:
        q = self._search_request(self._json(raw), "attempts")
        if _intersects_any(q["aoi"], self.no_attempt_aois):
            raise errors_error(500, "ERR_NO_SENSOR_AVAILABLE", "UNKNOWN")
        prog_types = []
        for name in q["names"]:
            size_error = _aoi_size_error(q["mission"], name, q["aoi"])
            if size_error is not None:
                prog_types.append(
                    {
                        "name": name,
                        "mission": q["mission"],
                        "errors": [size_error],
                        "segments": [],
                        "available": False,
                    }
                )
                continue
            segments = [self._attempt_segment(q, name, k) for k in range(3)]
            prog_types.append(
                {"name": name, "mission": q["mission"], "available": True, "segments": segments}
            )
        # The example answers progCapacities as an object, not the array of the schema.
        return JSONResponse({"progCapacities": {"mission": q["mission"], "progTypes": prog_types}})

    def _attempt_segment(self, q: dict[str, Any], name: str, k: int) -> dict[str, Any]:
        start = _millis(max(q["start"], self._now()))  # a past start is replaced by "now"
        acq_start = start + timedelta(hours=8 + 24 * k)
        acq_end = acq_start + timedelta(seconds=2.2)
        deadline = acq_start - timedelta(hours=6)
        wkt = _wkt(_envelope(q["aoi"]))
        lon, lat = centroid(q["aoi"])
        rng = self._rng("attempt", wkt, iso(acq_start))
        incidence = round(rng.uniform(2.0, min(q["incidence"], 45.0)), 2)
        meta = [
            {"key": "orderDeadLine", "value": iso(deadline)},
            {"key": "acqPeriod", "value": f"{iso(acq_start)} {iso(acq_end)}"},
            {"key": "maxIncidenceAngle", "value": f"{q['incidence']:.1f}"},
            {"key": "geometryWkt", "value": wkt},
        ]
        digest = hashlib.sha512(f"{self.seed}|{name}|{wkt}|{iso(acq_start)}".encode()).hexdigest()
        key = f"{digest}::{json.dumps(meta, separators=(',', ':'))}"
        self._segment_keys[key] = {
            "start": acq_start,
            "end": acq_end,
            "deadline": deadline,
            "incidence": incidence,
            "prog": name,
            "mission": q["mission"],
        }
        return {
            "id": f"{SATELLITE[q['mission']]}{k + 1}",
            "footprint": {"geometry": wkt, "center": f"POINT({lon:.6f} {lat:.6f})"},
            "instrumentMode": "THR",
            "orderDeadline": iso(deadline),
            "extendedAngle": False,
            "acquisitionStartDate": iso(acq_start),
            "acquisitionEndDate": iso(acq_end),
            "incidenceAngle": incidence,
            "acrossTrackIncidenceAngle": round(-incidence / 3, 6),
            "maxIncidenceAngle": q["incidence"],
            "segmentKey": key,
        }

    # ================================================================== price / order

    def _order_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a price/order body (§3.3); returns the parsed essentials.

        Raises the error the real API would: E2203 for an unknown contract or workspace, an
        ApiError 400 for a schema problem, an ``errors`` body for a bad segment key.
        """
        contract = self._contract(body.get("contractId"))
        required = [
            "aoi",
            "items",
            "customerReference",
            "optionsPerProductType",
            "endUsers",
            "primaryMarket",
        ] + (["notificationEmails"] if contract.backend == "legacy" else [])
        for name in required:
            if name not in body or body[name] is None:
                raise api_error(400, f"Field '{name}' is required", "ORDER-400")
        aois = {_dict(a).get("id"): _aoi(_dict(a).get("geometry")) for a in _list(body["aoi"])}
        items = body["items"]
        if not isinstance(items, list) or len(items) != 1:
            raise api_error(400, "items must be an array with one tasking item", "ORDER-400")
        item = _dict(items[0])
        ptype = str(item.get("productTypeId"))
        if ptype not in self.product_types(contract.backend):
            raise api_error(
                400,
                f"Product type '{ptype}' is not available on contract {contract.contract_id}",
                "ORDER-400",
            )
        if item.get("aoiId") not in aois:
            raise api_error(400, "items[0].aoiId does not refer to an aoi[].id", "ORDER-400")
        self._check_delivery(body, contract)
        props = {str(_dict(p).get("key")): _dict(p).get("value") for p in _list(item.get("properties"))}
        options = self._check_options(body, ptype, item["aoiId"], contract.backend)
        mission = next(m for m, prefix in PREFIX.items() if ptype.startswith(prefix))
        prog = next(p for p, camel in CAMEL.items() if ptype.removesuffix("Vrs").endswith(camel))
        period = str(props.get("acqPeriod") or "").split(" ")
        if len(period) != 2:
            raise api_error(400, "property acqPeriod must be '<start> <end>'", "ORDER-400")
        attempt = self._check_segment_key(item, prog)
        return {
            "contract": contract,
            "ptype": ptype,
            "mission": mission,
            "prog": prog,
            "aoi": aois[item["aoiId"]],
            "props": props,
            "options": options,
            "start": _time(period[0], "acqPeriod"),
            "end": _time(period[1], "acqPeriod"),
            "attempt": attempt,
            "ref": str(body["customerReference"]),
        }

    def _check_delivery(self, body: dict[str, Any], contract: SimContract) -> None:
        delivery = _dict(body.get("delivery"))
        if delivery.get("type", "network") != "network":
            raise api_error(400, "delivery.type must be network", "ORDER-400")
        workspace = delivery.get("workspace")
        if workspace is not None and workspace != contract.workspace:
            raise code_error(400, "E2203", f"Unable to access workspace '{workspace}'")

    def _check_options(self, body: dict[str, Any], ptype: str, aoi_id: Any, backend: str) -> dict[str, Any]:
        groups = [_dict(g) for g in _list(body["optionsPerProductType"])]
        group = next((g for g in groups if g.get("productTypeId") == ptype), None)
        if group is None or not isinstance(group.get("options"), list):
            raise api_error(
                400,
                f"optionsPerProductType needs {{productTypeId, options:[{{key,value}}]}} for {ptype}",
                "ORDER-400",
            )
        options = {str(_dict(o).get("key")): _dict(o).get("value") for o in group["options"]}
        level = options.get("processing_level", "primary")
        projection = options.get(f"projection_{aoi_id}")
        if level in ("ortho", "projected") and not isinstance(projection, str):
            raise api_error(
                400,
                f"projection_{aoi_id} (an EPSG code string) is mandatory for processing_level {level}",
                "ORDER-400",
            )
        spectral = options.get("spectral_processing")
        if spectral is not None and spectral not in SPECTRAL[backend]:
            raise api_error(400, f"spectral_processing '{spectral}' is not allowed", "ORDER-400")
        if options.get("pixel_coding") == "8bits" and options.get("radiometric_processing") != "display":
            raise api_error(400, "pixel_coding 8bits needs radiometric_processing display", "ORDER-400")
        return options

    def _check_segment_key(self, item: dict[str, Any], prog: str) -> dict[str, Any] | None:
        if prog not in ATTEMPT_TYPES:
            return None
        attempt = self._segment_keys.get(str(item.get("segmentKey")))
        if attempt is None:
            raise errors_error(400, "ERR_INVALID_SEGMENT_KEY", "segmentKey", "unknown segmentKey")
        if self._now() >= attempt["deadline"]:
            raise errors_error(
                400, "ERR_ORDER_DEADLINE_PASSED", "segmentKey", "the attempt's orderDeadline has passed"
            )
        return attempt

    def _amount(self, mission: str, area: float) -> tuple[float, float]:
        billed = max(area, MIN_KM2[mission])
        return round(billed * RATE_PER_KM2[mission], 2), round(billed, 2)

    def _prices(self, request: Request, raw: bytes) -> Response:
        o = self._order_request(self._json(raw))
        amount, billed = self._amount(o["mission"], area_km2(o["aoi"]))
        return JSONResponse(
            {
                "contractId": o["contract"].contract_id,
                "currency": o["contract"].currency,
                "discountPercentage": 0,
                "discountValue": 0,
                "productTypes": [
                    {
                        "amount": amount,
                        "areaKm2": billed,
                        "discountPercentage": 0,
                        "discountValue": 0,
                        "price": amount,
                        "productTypeId": o["ptype"],
                        "items": [{"datastripIds": []}],
                        "voucherCode": None,
                    }
                ],
                "totalAmount": amount,
            },
            status_code=201,
        )

    def _orders(self, request: Request, raw: bytes) -> Response:
        o = self._order_request(self._json(raw))
        order = self._create_order(o)
        answer: dict[str, Any] = {
            "currency": order.currency,
            "discountPercentage": 0,
            "discountValue": 0,
            "totalAmount": order.amount,
        }
        if order.backend == "legacy":
            answer = {"salesOrderId": order.sales_order_id, **answer}
        else:
            answer = {"quotationId": order.quotation_id, **answer}
        return JSONResponse(answer, status_code=201)

    def _create_order(self, o: dict[str, Any]) -> SimOrder:
        now, n = self._now(), self._next_id()
        props, contract = o["props"], o["contract"]
        cloud = float(props.get("maxCloudCover", 20))
        area = area_km2(o["aoi"])
        amount, _ = self._amount(o["mission"], area)
        order = SimOrder(
            seq=n,
            backend=contract.backend,
            contract_id=contract.contract_id,
            customer_ref=o["ref"],
            mission=o["mission"],
            prog_type=o["prog"],
            product_type=o["ptype"],
            aoi=o["aoi"],
            area_km2=area,
            start=o["start"],
            end=o["end"],
            max_cloud=cloud,
            threshold=float(props.get("notificationThreshold", cloud)),
            max_incidence=float(props.get("maxIncidenceAngle", 90)),
            mode=str(props.get("acquisitionMode") or "MONO"),
            automation=str(props.get("feasibilityAutomation") or "AUTOMATIC").upper(),
            created=now,
            amount=amount,
            currency=contract.currency,
            rng=self._rng("order", n),
            attempt=o["attempt"],
            last_change=now,
        )
        self.orders.append(order)
        if order.backend == "legacy":
            self._open_legacy(order, n)
        else:
            self._open_neo(order, n)
        return order

    def _open_legacy(self, order: SimOrder, n: int) -> None:
        order.sales_order_id, order.so, order.tasking_id = (
            f"SAL{21400000 + n}",
            f"SO{n:06d}",
            f"ICR_FC_{n:06d}",
        )
        self._paid[order.customer_ref] += 1
        if order.automation == "MANUAL":
            order.status = ICR_STUDY
            order.study_until = order.created + timedelta(seconds=self.study_duration)
        else:
            self._activate(order, order.created)

    def _open_neo(self, order: SimOrder, n: int) -> None:
        order.quotation_id = f"QUO{21000000 + n}"
        order.status, order.quotation_status = "PENDING", "PENDING"
        if self.neo_auto_accept and order.automation == "AUTOMATIC":
            self._accept_quotation(order, order.created)
            return
        delay = self.study_duration if order.automation == "MANUAL" else self.quotation_delay
        order.quote_at = order.created + timedelta(seconds=delay)

    # ================================================================== lifecycle (lazy)

    def _advance_all(self) -> None:
        now = self._now()
        for order in self.orders:
            self._advance(order, now)

    def _advance(self, order: SimOrder, now: datetime) -> None:
        if order.status == ICR_STUDY and order.study_until is not None and now >= order.study_until:
            self._activate(order, order.study_until)
        if order.quotation_status == "PENDING" and order.quote_at is not None and now >= order.quote_at:
            self._send_quotation(order, order.quote_at, order.amount)
        if order.status in (ICR_ACTIVE, "IN_PROGRESS"):
            self._autopilot(order, now)

    def _activate(self, order: SimOrder, at: datetime) -> None:
        order.status = ICR_ACTIVE if order.backend == "legacy" else "IN_PROGRESS"
        order.last_change = at
        if order.attempt is not None:
            order.next_acq_at = order.attempt["start"]
        else:
            order.next_acq_at = max(at, order.start) + timedelta(seconds=self.acquisition_interval)

    def _autopilot(self, order: SimOrder, now: datetime) -> None:
        """Attempt acquisitions due up to ``now``; complete the order when covered or over."""
        while order.next_acq_at is not None and order.next_acq_at <= min(now, order.end):
            at = order.next_acq_at
            if order.attempt is not None:
                order.next_acq_at = None
                self._acquire(order, at, clear_sky=None, auto=True)
            else:
                order.next_acq_at = at + timedelta(seconds=self.acquisition_interval)
                self._acquire(order, at, clear_sky=None, auto=False)
            if order.validated_fraction >= 1.0 - 1e-9:
                self._complete(order, at)
                return
        if now >= order.end:
            self._complete(order, order.end)

    def _acquire(
        self,
        order: SimOrder,
        at: datetime,
        clear_sky: float | None,
        auto: bool,
        incidence: float | None = None,
        status: str | None = None,
    ) -> SimAcquisition | None:
        """One acquisition attempt: validated, proposed or (too cloudy) discarded (§4.5)."""
        clear = clear_sky if clear_sky is not None else round(order.rng.uniform(self.min_clear_sky, 100.0), 4)
        cloud = 100.0 - clear
        if status is None:
            if auto or cloud <= order.max_cloud:
                status = "Validated"
            elif cloud <= order.threshold:
                status = "Proposed"
            else:
                return None
        k = len(order.acquisitions) + 1
        neo = order.backend == "neo"
        acquisition = SimAcquisition(
            id=f"CIE_{order.seq:09d}_1_{k}_1" if neo else f"AS_FC_{order.seq:06d}_1_{k}",
            status=status.upper() if neo else status.capitalize(),
            clear_sky=clear,
            incidence=incidence
            if incidence is not None
            else round(order.rng.uniform(1.0, order.max_incidence), 4),
            acquired_at=at,
            footprint=order.aoi,
            catalog_id=(
                f"ACQ_PNEO{3 + k % 2}_{order.seq:06d}{k:03d}"
                if neo
                else f"DS_{SATELLITE[order.mission]}1B_{order.seq:06d}{k:03d}"
            ),
        )
        order.acquisitions.append(acquisition)
        order.last_change = at
        if acquisition.status.upper() == "VALIDATED":
            self._add_coverage(order, 1.0 if auto else self.coverage_per_acquisition)
        return acquisition

    def _add_coverage(self, order: SimOrder, fraction: float) -> None:
        order.validated_fraction = min(1.0, order.validated_fraction + fraction)

    def _complete(self, order: SimOrder, at: datetime) -> None:
        order.status = ICR_COMPLETED if order.backend == "legacy" else "COMPLETED"
        order.next_acq_at = None
        order.last_change = at

    def _send_quotation(
        self, order: SimOrder, at: datetime, amount: float, currency: str | None = None
    ) -> None:
        order.quotation_status, order.amount = "SENT", amount
        order.currency = currency or order.currency
        order.quotation_valid_until = at + timedelta(seconds=self.quotation_validity)
        order.quote_at, order.last_change = None, at

    def _accept_quotation(self, order: SimOrder, at: datetime) -> None:
        order.quotation_status = "ACCEPTED"
        order.sales_order_id = f"SAL{21500000 + order.seq}"
        order.order_item_id = f"WOI_{order.seq:09d}_1"
        self._paid[order.customer_ref] += 1
        self._activate(order, at)

    # ================================================================== PNEO tracking

    def _order_line(self, order: SimOrder) -> dict[str, Any]:
        validated_pct = round(order.validated_fraction * 100.0, 4)
        proposed = sum(1 for a in order.acquisitions if a.status == "PROPOSED")
        mode = {"MONO": "MONOSCOPIC", "STEREO": "STEREOSCOPIC", "TRISTEREO": "TRISTEREOSCOPIC"}
        billed = max(order.area_km2, MIN_KM2[order.mission])
        return {
            "contractId": order.contract_id,
            "customerReference": order.customer_ref,
            "quotationId": order.quotation_id,
            "salesOrderId": order.sales_order_id,
            "cis": {"quotation": order.quotation_id},
            "productType": order.product_type,
            "licence": "standard",
            "aoi": {"name": "AOI 1", "geometry": order.aoi},
            "mission": "pleiadesneo",
            "source": "tasking",
            "target": _target(order.product_type),
            "status": order.status,
            "quotationStatus": order.quotation_status,
            "orderItemId": order.order_item_id,
            "orderLineId": order.order_item_id,
            "quotationVersion": 1,
            "orderLineAmount": order.amount if order.quotation_status != "PENDING" else None,
            "initialOrderLineAmount": order.amount,
            "currency": order.currency,
            "priceCalculationArea": round(billed, 2),
            "orderMinimumApplied": order.area_km2 < MIN_KM2[order.mission],
            "requestedArea": round(order.area_km2, 3),
            "quotationCreationDate": iso(order.created),
            "orderCreationDate": iso(order.created) if order.sales_order_id else None,
            "quotationEndOfValidityDate": (
                iso(order.quotation_valid_until) if order.quotation_valid_until else None
            ),
            "cancelationDeadlineDate": iso(order.start),
            "lastStatusChangeDate": iso(order.last_change or order.created),
            "deliveryType": "network",
            "deliveryPlatformId": "PublicMOC",
            "deliveryWorkspace": self.contracts[order.contract_id].workspace,
            "tasking": {
                "maxIncidenceAngle": order.max_incidence,
                "acquisitionMode": mode.get(order.mode),
                "cloudCoverageThresholdForProposition": order.threshold,
                "maxCloudCoverage": order.max_cloud,
                "period": [{"startDate": iso(order.start), "endDate": iso(order.end)}],
                "validatedArea": round(order.validated_fraction * order.area_km2, 3),
                "validatedAreaPct": validated_pct,
                "receivingStationType": "vrs",
                "nbProposedCoverageItems": proposed,
                "totalCoverageItems": len(order.acquisitions),
            },
        }

    def _coverage_item(self, order: SimOrder, a: SimAcquisition) -> dict[str, Any]:
        return {
            "contractId": order.contract_id,
            "coverageItemId": a.id,
            "orderItemId": order.order_item_id,
            "status": a.status,
            "clearSkyRate": a.clear_sky,
            "catalogPlatformId": "MMCAT",
            "archiveId": a.catalog_id,
            "satellite": a.catalog_id.split("_")[1],
            "mission": "pleiadesneo",
            "incidenceAngle": a.incidence,
            "bh": None,
            "customerId": "CUS-SIM",
            "quotationId": order.quotation_id,
            "salesOrderId": order.sales_order_id,
            "footprint": a.footprint,
            "acquisitionDate": iso(a.acquired_at),
        }

    def _orders_search(self, request: Request, raw: bytes) -> Response:
        body = self._json(raw)
        lines = [self._order_line(o) for o in self.orders if o.backend == "neo"]
        return self._paged(body, [line for line in lines if _query_match(body, line)])

    def _coverages_search(self, request: Request, raw: bytes) -> Response:
        body = self._json(raw)
        items = [self._coverage_item(o, a) for o in self.orders if o.backend == "neo" for a in o.acquisitions]
        return self._paged(body, [i for i in items if _query_match(body, i)])

    @staticmethod
    def _paged(body: dict[str, Any], records: list[dict[str, Any]]) -> Response:
        paging = _dict(body.get("paging"))
        size = max(1, int(paging.get("itemsPerPage") or 10))
        start = max(0, int(paging.get("startIndex") or 0))
        return JSONResponse(
            {
                "paging": {
                    "itemsPerPage": size,
                    "startIndex": start,
                    "pagingMode": "item",
                    "totalResults": len(records),
                },
                "features": records[start : start + size],
            }
        )

    def _neo_order(self, predicate: Callable[[SimOrder], bool], what: str) -> SimOrder:
        for order in self.orders:
            if order.backend == "neo" and predicate(order):
                return order
        raise api_error(404, f"{what} not found", "NOT-FOUND")

    def _quotation_decision(self, request: Request, raw: bytes) -> Response:
        p = request.path_params
        self._contract(p["cid"])
        verb = p["verb"]
        if verb not in ("accept", "refuse"):
            raise api_error(404, "Not found", "NOT-FOUND")
        order = self._neo_order(
            lambda o: o.quotation_id == p["qid"] and o.contract_id == p["cid"], f"Quotation {p['qid']}"
        )
        if order.quotation_status != "SENT":
            raise api_error(
                400,
                f"Quotation {order.quotation_id} is {order.quotation_status}, not SENT",
                "QUOTATION-STATE",
            )
        if verb == "accept":
            self._accept_quotation(order, self._now())
        else:
            order.quotation_status, order.status = "REFUSED", "CANCELLED"
            order.last_change = self._now()
        return JSONResponse({})

    def _coverage_decision(self, request: Request, raw: bytes) -> Response:
        item_id, verb = request.path_params["item"], request.path_params["verb"]
        if verb not in ("accept", "refuse"):
            raise api_error(404, "Not found", "NOT-FOUND")
        for order in self.orders:
            for a in order.acquisitions:
                if order.backend == "neo" and a.id == item_id:
                    self._decide(order, a, verb == "accept", neo=True)
                    return JSONResponse({})
        raise api_error(404, f"Coverage item {item_id} not found", "NOT-FOUND")

    def _decide(self, order: SimOrder, a: SimAcquisition, accept: bool, neo: bool) -> None:
        if a.status.upper() != "PROPOSED":
            raise api_error(400, f"Acquisition {a.id} is {a.status}, not proposed", "ACQ-STATE")
        status = "Validated" if accept else "Refused"
        a.status = status.upper() if neo else status
        order.last_change = self._now()
        if accept:
            self._add_coverage(order, self.coverage_per_acquisition)
            if order.validated_fraction >= 1.0 - 1e-9:
                self._complete(order, self._now())

    def _neo_stop_cancel(self, request: Request, raw: bytes) -> Response:
        item_id, verb = request.path_params["oiid"], request.path_params["verb"]
        if verb not in ("stop", "cancel"):
            raise api_error(404, "Not found", "NOT-FOUND")
        order = self._neo_order(lambda o: o.order_item_id == item_id, f"Order item {item_id}")
        if order.status != "IN_PROGRESS":
            raise code_error(
                400,
                "E3001",
                f"Order item {item_id} is {order.status}; it cannot be "
                f"{'stopped' if verb == 'stop' else 'cancelled'}",
            )
        if verb == "cancel" and order.acquisitions:
            raise code_error(400, "E3002", f"Order item {item_id} already has acquisitions; stop it instead")
        order.status = "STOPPED" if verb == "stop" else "CANCELLED"
        order.next_acq_at, order.last_change = None, self._now()
        return JSONResponse({})

    # ================================================================== legacy tracking

    def _tasking_item(self, order: SimOrder) -> dict[str, Any]:
        ordered = order.area_km2 * 1e6  # m², as the example's orderedArea suggests
        icr: dict[str, Any] = {
            "id": order.tasking_id,
            "aoi": order.aoi,
            "progTypeName": CAMEL[order.prog_type],
            "status": order.status,
            "nbProposedSegments": sum(1 for a in order.acquisitions if a.status == "Proposed"),
            "nbTotalSegments": len(order.acquisitions),
            "period": {
                "startDate": iso(order.start).replace(".000Z", "Z"),
                "endDate": iso(order.end).replace(".000Z", "Z"),
            },
            "seriesInformation": None,
            "customerRef": order.customer_ref,
            "taskingProgress": {"orderedArea": ordered, "validatedArea": order.validated_fraction * ordered},
        }
        if order.attempt is not None:
            icr["attempts"] = f"{iso(order.attempt['start'])} {iso(order.attempt['end'])}"
        return {"sal": order.sales_order_id, "so": order.so, "icr": icr}

    def _legacy_orders(self, cid: str) -> list[SimOrder]:
        self._contract(cid)
        return [o for o in self.orders if o.backend == "legacy" and o.contract_id == cid]

    def _taskings(self, request: Request, raw: bytes) -> Response:
        orders = self._legacy_orders(request.path_params["cid"])
        query = request.query_params
        statuses = _multi(query.getlist("status"))
        ids = _multi(query.getlist("taskingIds"))
        progs = _multi(query.getlist("progTypeNames"))
        has_proposed = query.get("hasProposedSegments")
        selected = [
            o
            for o in orders
            if (not query.get("customerRef") or o.customer_ref == query["customerRef"])
            and (not statuses or o.status in statuses)
            and (not ids or o.tasking_id in ids)
            and (not progs or o.prog_type in progs)
            and (not query.get("mission") or o.mission == query["mission"])
            and (
                has_proposed is None
                or any(a.status == "Proposed" for a in o.acquisitions) == (has_proposed == "true")
            )
        ]
        count = _positive(query.get("count"), 10, "count")
        page = _positive(query.get("startPage"), 1, "startPage")
        chosen = selected[(page - 1) * count : page * count]
        return JSONResponse({"taskings": [self._tasking_item(o) for o in chosen]})

    def _legacy_order(self, cid: str, tid: str) -> SimOrder:
        for order in self._legacy_orders(cid):
            if order.tasking_id == tid:
                return order
        raise api_error(404, f"Tasking {tid} not found", "NOT-FOUND")

    def _tasking(self, request: Request, raw: bytes) -> Response:
        p = request.path_params
        return JSONResponse(self._tasking_item(self._legacy_order(p["cid"], p["tid"])))

    def _tasking_cancel(self, request: Request, raw: bytes) -> Response:
        p = request.path_params
        order = self._legacy_order(p["cid"], p["tid"])
        if order.status not in ICR_OPEN:
            raise api_error(
                400, f"Tasking {order.tasking_id} is {order.status} and cannot be cancelled", "ICR-STATE"
            )
        order.status, order.next_acq_at, order.last_change = ICR_CANCELED, None, self._now()
        return JSONResponse({})

    def _segments(self, request: Request, raw: bytes) -> Response:
        p = request.path_params
        order = self._legacy_order(p["cid"], p["tid"])
        return JSONResponse(
            {
                "segments": [
                    {
                        "id": a.id,
                        "status": a.status,
                        "asDetail1": {
                            "catalogId": a.catalog_id,
                            "footprint": a.footprint,
                            "incidenceAngle": a.incidence,
                            "clearSkyRate": a.clear_sky,
                            "acquisitionDate": iso(a.acquired_at).replace(".000Z", "Z"),
                        },
                    }
                    for a in order.acquisitions
                ]
            }
        )

    def _segment_decision(self, request: Request, raw: bytes) -> Response:
        p = request.path_params
        if p["verb"] not in ("accept", "refuse"):
            raise api_error(404, "Not found", "NOT-FOUND")
        order = self._legacy_order(p["cid"], p["tid"])
        for a in order.acquisitions:
            if a.id == p["sid"]:
                self._decide(order, a, p["verb"] == "accept", neo=False)
                return JSONResponse({})
        raise api_error(404, f"Segment {p['sid']} not found", "NOT-FOUND")

    # ================================================================== operator controls

    def order(self, key: str) -> SimOrder:
        """The order named by any of its ids or its customer reference (KeyError if none)."""
        with self._lock:
            for order in reversed(self.orders):
                if key in order.ids():
                    return order
        raise KeyError(key)

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


# ====================================================================== module helpers


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _millis(value: datetime) -> datetime:
    """``value`` truncated to what the wire format carries (milliseconds)."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _multi(values: list[str]) -> set[str]:
    """Array query parameters: repeated (``a=1&a=2``) or comma-separated (``a=1,2``)."""
    return {part for value in values for part in value.split(",") if part}


def _positive(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise api_error(400, f"{name} must be an integer", "QUERY-400") from None
    if number < 1:
        raise api_error(400, f"{name} must be at least 1", "QUERY-400")
    return number


def _time(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise errors_error(
            400, "ERR_INVALID_PARAMETER", name, "expected yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
        ) from None
    if parsed.tzinfo is None:
        raise errors_error(400, "ERR_INVALID_PARAMETER", name, "a UTC time ending in Z is required")
    return parsed


def _aoi(value: Any) -> dict[str, Any]:
    """A GeoJSON Polygon from an object or a bare coordinate array (both are seen)."""
    geometry = value if isinstance(value, dict) else {"type": "Polygon", "coordinates": value}
    if geometry.get("type") != "Polygon":
        raise api_error(400, "aoi must be a GeoJSON Polygon", "AOI-400")
    try:
        polygon = shape(geometry)
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise api_error(400, f"invalid aoi: {exc}", "AOI-400") from exc
    if not polygon.is_valid or len(geometry["coordinates"]) != 1:
        raise api_error(400, "aoi must be one simple ring without holes", "AOI-400")
    return {"type": "Polygon", "coordinates": geometry["coordinates"]}


def _envelope(geometry: Mapping[str, Any]) -> dict[str, Any]:
    minx, miny, maxx, maxy = shape(dict(geometry)).bounds
    ring = [[minx, maxy], [minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy]]
    return {"type": "Polygon", "coordinates": [ring]}


def _wkt(polygon: Mapping[str, Any]) -> str:
    """WKT as OneAtlas writes it: ``POLYGON((x y, ...))``, no space, 6 decimals."""
    ring = ", ".join(f"{x:.6f} {y:.6f}" for x, y in polygon["coordinates"][0])
    return f"POLYGON(({ring}))"


def _intersects_any(aoi: Mapping[str, Any], blocked: list[dict[str, Any]]) -> bool:
    polygon = shape(dict(aoi))
    return any(polygon.intersects(shape(b)) for b in blocked)


def _aoi_size_error(mission: str, prog: str, aoi: Mapping[str, Any]) -> dict[str, Any] | None:
    """The §6 AOI limits, answered as a per-progType error (``ERR_MIN_AOI_AREA``...)."""
    area = area_km2(aoi)
    low, high = ATTEMPT_AOI_KM2[mission] if prog in ATTEMPT_TYPES else (5.0, float("inf"))
    if area < low:
        return {"code": "ERR_MIN_AOI_AREA", "locator": "AOI", "message": f"{low:g}"}
    if area > high:
        return {"code": "ERR_MAX_AOI_AREA", "locator": "AOI", "message": f"{high:g}"}
    return None


def _query_match(body: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Evaluate ``criteria.q`` (``(field:value) AND (field:value)``, ``*`` wildcards)."""
    query = str(_dict(body.get("criteria")).get("q") or "")
    for name, raw in re.findall(r"\(\s*([\w.]+)\s*:\s*((?:\\.|[^\\)])*)\)", query):
        value = _field(record, name)
        if value is _UNKNOWN_FIELD:
            continue  # fields the simulator does not model never exclude a record
        if not _value_match(raw.strip(), "" if value is None else str(value)):
            return False
    return True


_UNKNOWN_FIELD = object()
_FIELDS = {"cis.quotation": "quotationId", "technicalProduct.source.id": "source"}


def _field(record: Mapping[str, Any], name: str) -> Any:
    key = _FIELDS.get(name, name)
    return record.get(key, _UNKNOWN_FIELD)


def _value_match(pattern: str, value: str) -> bool:
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(re.sub(r"\\(.)", r"\1", p)) for p in parts)
    return re.fullmatch(regex, value) is not None


def _option(
    name: str, default: str, values: list[str], mandatory: str = "true", condition: str | None = None
) -> dict[str, Any]:
    return {
        "category": "production_option",
        "label": name.replace("_", " ").title(),
        "name": name,
        "mandatory": mandatory,
        "defaultValue": default,
        "constraint": {"condition": condition} if condition else None,
        "values": [{"id": v, "label": v} for v in values],
        "type": "list",
        "hidden": False,
        "property": True,
    }


def _sensor(product_type: str) -> str:
    return (
        "pleiadesneo"
        if "Neo" in product_type
        else ("spot" if product_type.startswith("Spot") else "pleiades")
    )


def _target(product_type: str) -> str:
    base = product_type.removesuffix("Vrs")
    return next((p.lower() for p, camel in CAMEL.items() if base.endswith(camel)), "oneplan")
