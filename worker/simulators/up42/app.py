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
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft7Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.simulators.common import Fault, SimulatorCore, apply_faults, iso
from worker.simulators.up42.console import console_routes
from worker.simulators.up42.responses import (
    Endpoint,
    Json,
    _error,
    _keycloak_error,
    _legacy_error,
    _parse_time,
    _tasking_error,
    area_km2,
    spring_page,
)
from worker.simulators.up42.storage import Up42Storage
from worker.simulators.up42_schemas import COLLECTIONS, PRODUCT_SCHEMAS

DEFAULT_WORKSPACE_ID = "7f3c2b1a-9d8e-4c6f-a5b4-3e2d1c0b9a87"
DEFAULT_ACCOUNT_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
DEFAULT_USER_ID = "e49786fb-0c1d-4e2f-8a3b-4c5d6e7f8091"
TOKEN_LIFETIME = 300.0
CLIENT_IDS = frozenset({"up42-api", "up42-sdk"})
CANCELLABLE = frozenset({"CREATED", "PLACEMENT_FAILED"})
TAG_PATTERN = re.compile(r"^[A-Za-z0-9 ._/:-]+$")


@dataclass
class Up42SimConfig:
    """Timings (simulated seconds), prices and behaviour switches.

    ``auto_operator`` False leaves studies, quotations and deliveries to the operator controls.
    ``manual_rule`` decides whether a new order gets a MANUAL study (default: stereo/tristereo, or
    a cloud limit at or below ``manual_cloud_threshold``).
    """

    study_delay: float = 4 * 3600
    quotation_delay: float = 4 * 3600
    placement_delay: float = 3600
    fulfilment_delay: float = 3600
    credits_per_km2: float = 10.0
    min_credits: int = 100
    deliveries_per_order: int = 2
    manual_options: int = 2
    manual_cloud_threshold: float = 10.0
    manual_rule: Callable[[Mapping[str, Any]], bool] | None = None
    auto_operator: bool = True
    default_page_size: int = 10
    max_page_size: int = 1000
    extraction_delay: float = 0.0  # upload of an asset -> its STAC items are listed
    scenes_per_delivery: int = 1  # STAC items per delivered asset
    late_listing_delay: float = 1800.0  # a ``late_listed`` asset's lag behind its createdAt


@dataclass
class SimOrder:
    """One tasking order and what its lifecycle has scheduled next."""

    id: str
    seq: int
    display_name: str
    data_product_id: str
    params: Json
    geometry: Json
    tags: list[str]
    area_km2: float
    created_at: datetime
    updated_at: datetime
    window: tuple[datetime, datetime]
    manual: bool
    status: str = "CREATED"
    sub_status: str = "FEASIBILITY_WAITING_UPLOAD"
    study_due: datetime | None = None
    quotation_due: datetime | None = None
    step_due: datetime | None = None
    deliveries_due: list[datetime] = field(default_factory=list)
    covered_pct: float = 0.0
    assets: list[str] = field(default_factory=list)
    frozen: bool = False
    listed_from: float = 0.0  # monotonic seconds: out of ``GET /v2/orders`` before (listing lag)


class Up42Simulator:
    """The UP42 v2 API, its Keycloak realm and an operator console, on one ASGI app (``.app``)."""

    def __init__(
        self,
        core: SimulatorCore | None = None,
        *,
        username: str = "sim@up42.example",
        password: str = "sim-up42-password",  # noqa: S107 - the simulator's own test account
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        credits: int = 10_000_000,
        config: Up42SimConfig | None = None,
        seed: int = 42,
    ) -> None:
        self.core = core or SimulatorCore()
        self.username, self.password = username, password
        self.workspace_id = workspace_id
        self.credits = credits
        self.config = config or Up42SimConfig()
        self.role = "ADMIN"
        self.schemas: dict[str, Json] = dict(PRODUCT_SCHEMAS)
        self.orders: dict[str, SimOrder] = {}
        self.studies: dict[str, Json] = {}
        self.quotations: dict[str, Json] = {}
        # Per-order fault: references (displayName or tag) whose coverage UP42 does not serve
        # (``GET /v2/coverage/orders/{id}`` answers 404, as for orders without coverage data).
        self.coverage_unavailable: set[str] = set()
        self._rng = random.Random(seed)
        self._seed = seed
        self.storage = Up42Storage(self._now, self._uuid)
        # reference -> how its deliveries go wrong: "missing" (items never extracted),
        # "failed" (extraction fails), "partial" (only the first item of each asset)
        self.delivery_faults: dict[str, str] = {}
        # Switches for the paid-write faults: ``listing_lag`` real seconds during which a new
        # order is missing from ``GET /v2/orders`` (a search index that lags; ``GET
        # /v2/orders/{id}`` already serves it); ``duplicate_reference_status`` refuses an order
        # whose tags or displayName an open order already carries (BasicErrorResponse). UP42
        # documents no such uniqueness (a blind re-send duplicates the order), so the switch
        # stands for a gateway or account rule that refuses the re-send.
        self.listing_lag = 0.0
        self.duplicate_reference_status: int | None = None
        self.app = Starlette(routes=self._routes())

    # ------------------------------------------------------------------ plumbing

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _now(self) -> datetime:
        return self.core.clock.now()

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

    def _deny(self, request: Request) -> Response | None:
        """401 in the legacy envelope for a missing, unknown or expired token."""
        if self.core.token_valid(request):
            return None
        header = request.headers.get("authorization", "")
        expiry = self.core.tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
        if expiry is not None:
            return _legacy_error(401, "UNAUTHORIZED", f"ACCESS_TOKEN_EXPIRED: JWT expired at {iso(expiry)}")
        return _legacy_error(401, "UNAUTHORIZED", "Full authentication is required")

    @staticmethod
    async def _json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    # ------------------------------------------------------------------ auth

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

    # ------------------------------------------------------------------ catalogue

    async def _collections(self, request: Request) -> Response:
        wanted = request.query_params.get("type")
        items = [c for c in COLLECTIONS if wanted is None or c["type"] == wanted]
        page, size = self._paging(request)
        return JSONResponse(spring_page(items, page, size))

    async def _schema(self, request: Request) -> Response:
        product = request.path_params["product_id"]
        if product not in self.schemas:
            return _error(404, f"Data product {product} not found")
        return JSONResponse(self.schemas[product])

    def _paging(self, request: Request) -> tuple[int, int]:
        q = request.query_params
        try:
            page = max(0, int(q.get("page", "0")))
            size = int(q.get("size", str(self.config.default_page_size)))
        except ValueError:
            return 0, self.config.default_page_size
        return page, min(max(1, size), self.config.max_page_size)

    # ------------------------------------------------------------------ orders: create, estimate

    def _check_order_body(self, body: Any) -> tuple[Response | None, list[Json], list[Json]]:
        """``(whole-request error, valid features with index, per-item errors)``."""
        if not isinstance(body, dict):
            return _error(400, "Order parameters errors", "body must be a JSON object"), [], []
        problem = self._body_problem(body)
        if problem is not None:
            return _error(400, "Order parameters errors", problem), [], []
        schema = self.schemas[body["dataProduct"]]
        validator = Draft7Validator(schema)
        instance = {**body["params"], "displayName": body["displayName"]}
        good, errors = [], []
        for index, feature in enumerate(body["featureCollection"]["features"]):
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            found = list(validator.iter_errors({**instance, "geometry": geometry}))
            common = [e for e in found if not self._about_geometry(e)]
            if common:
                return _error(400, "Order parameters errors", [self._describe(e) for e in common]), [], []
            if found:
                errors.append(
                    {
                        "index": index,
                        "message": "Failed",
                        "details": "Invalid geometry: " + self._describe(found[0]),
                    }
                )
            else:
                good.append({"index": index, "geometry": geometry})
        return None, good, errors

    def _body_problem(self, body: Json) -> str | None:
        if body.get("dataProduct") not in self.schemas:
            return "dataProduct: unknown data product"
        name = body.get("displayName")
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            return "displayName: required, 1 to 200 characters"
        params = body.get("params")
        if not isinstance(params, dict):
            return "params: required object"
        if "geometry" in params or "displayName" in params:
            return "params: geometry belongs in featureCollection and displayName at top level"
        if "tags" in body and not self._tags_ok(body["tags"]):
            return "tags: 1 to 30 tags of letters, digits, spaces and . - _ / :"
        features = (body.get("featureCollection") or {}).get("features")
        if not isinstance(features, list) or not features:
            return "featureCollection: at least one feature is required"
        return None

    @staticmethod
    def _tags_ok(tags: Any) -> bool:
        # An empty list was answered 400 by UP42 (SDK CHANGELOG 2.2.0); null is no better.
        return (
            isinstance(tags, list)
            and 1 <= len(tags) <= 30
            and all(isinstance(t, str) and TAG_PATTERN.match(t) for t in tags)
        )

    @staticmethod
    def _about_geometry(error: Any) -> bool:
        path = list(error.absolute_path)
        if path:
            return bool(path[0] == "geometry")
        return error.validator == "required" and "geometry" in str(error.message)

    @staticmethod
    def _describe(error: Any) -> str:
        path = ".".join(str(p) for p in error.absolute_path)
        return f"{path or '$'}: {error.message}"

    def _credits_for(self, km2: float) -> int:
        return max(self.config.min_credits, math.ceil(km2 * self.config.credits_per_km2))

    @staticmethod
    def _feature_area(geometry: Json) -> float:
        try:
            return area_km2(geometry) if geometry.get("type") != "Point" else 25.0
        except (ValueError, TypeError, AttributeError):
            return 0.0

    async def _estimate(self, request: Request) -> Response:
        failed, good, errors = self._check_order_body(await self._json(request))
        if failed is not None:
            return failed
        results = []
        for item in good:
            size = round(self._feature_area(item["geometry"]), 2)
            results.append(
                {"index": item["index"], "credits": self._credits_for(size), "size": size, "unit": "SQ_KM"}
            )
        summary = {
            "totalCredits": sum(r["credits"] for r in results),
            "totalSize": round(sum(r["size"] for r in results), 2),
            "unit": "SQ_KM",
        }
        return JSONResponse({"summary": summary, "results": results, "errors": errors})

    async def _orders_root(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._create(request)
        return self._list_orders(request)

    async def _create(self, request: Request) -> Response:
        workspace = request.query_params.get("workspaceId")
        if not workspace:
            return _error(400, "Required parameter 'workspaceId' is not present")
        if workspace != self.workspace_id or self.role == "VIEWER":
            return _error(403, "Access denied: the role or workspace does not allow creating orders")
        body = await self._json(request)
        failed, good, errors = self._check_order_body(body)
        if failed is not None:
            return failed
        if (duplicate := self._duplicate(body)) is not None:
            return duplicate
        results = []
        for item in good:
            name = body["displayName"] + (f" Order {item['index'] + 1}" if len(good) > 1 else "")
            order = self._new_order(body, name, item["geometry"])
            results.append({"index": item["index"], "id": order.id})
        return JSONResponse({"results": results, "errors": errors})

    def _duplicate(self, body: Json) -> Response | None:
        status = self.duplicate_reference_status
        if status is None:
            return None
        tags, name = set(body.get("tags") or []), body.get("displayName")
        for order in self.orders.values():
            if order.status in ("CANCELED", "FAILED"):
                continue
            if (tags and tags <= set(order.tags)) or order.display_name == name:
                return _error(
                    status, f"An order with displayName or tags {sorted(tags) or name} already exists"
                )
        return None

    def _new_order(self, body: Json, name: str, geometry: Json) -> SimOrder:
        now, params = self._now(), body["params"]
        start = _parse_time(params.get("acquisitionStart")) or now
        end = _parse_time(params.get("acquisitionEnd")) or now + timedelta(days=30)
        order = SimOrder(
            id=self._uuid(),
            seq=len(self.orders),
            display_name=name,
            data_product_id=body["dataProduct"],
            params=dict(params),
            geometry=geometry,
            tags=list(body.get("tags") or []),
            area_km2=self._feature_area(geometry),
            created_at=now,
            updated_at=now,
            window=(start, end),
            manual=self._is_manual(params),
            study_due=now + timedelta(seconds=self.config.study_delay),
            listed_from=time.monotonic() + self.listing_lag,
        )
        self.orders[order.id] = order
        return order

    def _is_manual(self, params: Mapping[str, Any]) -> bool:
        if self.config.manual_rule is not None:
            return self.config.manual_rule(params)
        if str(params.get("acquisitionMode", "mono")).lower() in ("stereo", "tristereo"):
            return True
        cloud = params.get("cloudCoverage", params.get("maxCloudCover"))
        return isinstance(cloud, int | float) and cloud <= self.config.manual_cloud_threshold

    # ------------------------------------------------------------------ orders: read, list, patch

    def order_json(self, order: SimOrder) -> Json:
        """The v2 order shape (tasking ``orderDetails`` with the product's own param names)."""
        details = {**order.params, "geometry": order.geometry, "subStatus": order.sub_status}
        return {
            "id": order.id,
            "displayName": order.display_name,
            "workspaceId": self.workspace_id,
            "accountId": DEFAULT_ACCOUNT_ID,
            "type": "TASKING",
            "status": order.status,
            "dataProductId": order.data_product_id,
            "createdAt": iso(order.created_at),
            "updatedAt": iso(order.updated_at),
            "createdBy": {"id": DEFAULT_USER_ID, "type": "USER"},
            "updatedBy": {"id": "system", "type": "INTERNAL"},
            "tags": list(order.tags),
            "orderDetails": details,
            "assets": list(order.assets),
        }

    async def _order_item(self, request: Request) -> Response:
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            return _error(404, f"Order {request.path_params['order_id']} not found")
        if request.method == "PATCH":
            patch = await self._json(request)
            if not isinstance(patch, dict):
                return _error(400, "merge-patch body must be an object")
            if "tags" in patch:
                tags = patch["tags"] or []
                if tags and not self._tags_ok(tags):
                    return _error(400, "tags: letters, digits, spaces and . - _ / : only")
                order.tags, order.updated_at = list(tags), self._now()
        return JSONResponse(self.order_json(order))

    def _list_orders(self, request: Request) -> Response:
        q = request.query_params
        if q.get("workspaceId") not in (None, self.workspace_id):
            return JSONResponse(spring_page([], *self._paging(request)))
        statuses, subs, tags = q.getlist("status"), q.getlist("subStatus"), q.getlist("tags")
        name = (q.get("displayName") or "").lower()
        kind = q.get("type")
        items = [
            o
            for o in self.orders.values()
            if o.listed_from <= time.monotonic()
            and (not kind or kind == "TASKING")
            and (not statuses or o.status in statuses)
            and (not subs or o.sub_status in subs)
            and (not tags or any(t in o.tags for t in tags))  # any of the tags [I]
            and name in o.display_name.lower()
        ]  # substring, case-insensitive [I]
        items = self._sorted(items, q.get("sort", "createdAt,desc"))
        page, size = self._paging(request)
        return JSONResponse(spring_page([self.order_json(o) for o in items], page, size))

    @staticmethod
    def _sorted(items: list[SimOrder], sort: str) -> list[SimOrder]:
        field_name, _, direction = sort.partition(",")
        keys: dict[str, Callable[[SimOrder], Any]] = {
            "createdAt": lambda o: (o.created_at, o.seq),
            "updatedAt": lambda o: (o.updated_at, o.seq),
            "status": lambda o: (o.status, o.seq),
            "type": lambda o: o.seq,
        }
        key = keys.get(field_name, keys["createdAt"])
        return sorted(items, key=key, reverse=direction.lower() != "asc")

    async def _cancel(self, request: Request) -> Response:
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            return _error(404, f"Order {request.path_params['order_id']} not found")
        if order.status not in CANCELLABLE:
            return _tasking_error(409, f"Order cannot be canceled in status {order.status}.")
        order.status, order.updated_at, order.frozen = "CANCELED", self._now(), True
        return JSONResponse({"orderId": order.id, "status": "CANCELED"})

    # ------------------------------------------------------------------ studies and quotations

    def _list_filtered(self, request: Request, items: list[Json], decisions: set[str]) -> Response:
        q = request.query_params
        selected = [
            i
            for i in items
            if q.get("id") in (None, i["id"])
            and q.get("orderId") in (None, i["orderId"])
            and q.get("workspaceId") in (None, i["workspaceId"])
            # Unknown decision values are ignored by UP42 (a recording returned everything).
            and (q.get("decision") not in decisions or i["decision"] == q.get("decision"))
        ]
        field_name, _, direction = q.get("sort", "createdAt,desc").partition(",")
        selected.sort(key=lambda i: str(i.get(field_name) or ""), reverse=direction != "asc")
        page, size = self._paging(request)
        return JSONResponse(spring_page(selected, page, size))

    async def _list_studies(self, request: Request) -> Response:
        return self._list_filtered(request, list(self.studies.values()), {"NOT_DECIDED", "ACCEPTED"})

    async def _list_quotations(self, request: Request) -> Response:
        return self._list_filtered(
            request, list(self.quotations.values()), {"NOT_DECIDED", "ACCEPTED", "REJECTED"}
        )

    async def _decide_study(self, request: Request) -> Response:
        study_id = request.path_params["study_id"]
        study = self.studies.get(study_id)
        if study is None:
            return _tasking_error(404, f"Resource (FeasibilityStudy) not found with Id='{study_id}'.")
        if study["decision"] != "NOT_DECIDED":
            return _tasking_error(405, "Resource (FeasibilityStudy) is write-protected.")
        body = await self._json(request)
        option_id = body.get("acceptedOptionId") if isinstance(body, dict) else None
        option = next((o for o in study["options"] if o["id"] == option_id), None)
        if option is None:
            return _tasking_error(400, f"Option '{option_id}' does not belong to the study.")
        now = self._now()
        study.update(
            decision="ACCEPTED",
            decisionById=DEFAULT_USER_ID,
            decisionByType="USER",
            decisionAt=iso(now),
            decisionOption=option,
            updatedAt=iso(now),
        )
        self._await_quotation(self.orders[study["orderId"]], now)
        return JSONResponse(study)

    async def _decide_quotation(self, request: Request) -> Response:
        quotation_id = request.path_params["quotation_id"]
        quotation = self.quotations.get(quotation_id)
        if self.role != "ADMIN":
            return _tasking_error(403, f"Role {self.role} is not allowed to decide quotations.")
        if quotation is None:
            return _tasking_error(404, f"Resource (Quotation) not found with Id='{quotation_id}'.")
        if quotation["decision"] != "NOT_DECIDED":
            return _tasking_error(405, "Resource (Quotation) is write-protected.")
        body = await self._json(request)
        decision = body.get("decision") if isinstance(body, dict) else None
        if decision not in ("ACCEPTED", "REJECTED"):
            return _tasking_error(400, "decision must be ACCEPTED or REJECTED.")
        if decision == "ACCEPTED" and self.credits < quotation["creditsPrice"]:
            return _tasking_error(403, "Insufficient credits to accept the quotation.")  # [I]
        self._apply_decision(quotation, decision)
        return JSONResponse(quotation)

    def _apply_decision(self, quotation: Json, decision: str) -> None:
        now, order = self._now(), self.orders[quotation["orderId"]]
        quotation.update(
            decision=decision,
            decisionById=DEFAULT_USER_ID,
            decisionByType="USER",
            decisionAt=iso(now),
            updatedAt=iso(now),
        )
        order.updated_at = now
        if decision == "ACCEPTED":
            self.credits -= int(quotation["creditsPrice"])  # irreversible
            order.sub_status, order.status = "QUOTATION_ACCEPTED", "BEING_PLACED"
            order.step_due = now + timedelta(seconds=self.config.placement_delay)
        else:
            order.sub_status, order.status = "QUOTATION_REJECTED", "FAILED_PERMANENTLY"  # [I]

    # ------------------------------------------------------------------ coverage and STAC

    async def _coverage(self, request: Request) -> Response:
        order = self.orders.get(request.path_params["order_id"])
        if order is None or any(order in self._orders_for(r) for r in self.coverage_unavailable):
            return _error(404, f"Order {request.path_params['order_id']} not found")
        pct = round(order.covered_pct, 2)
        covered = self.storage.items_of(order.id)
        return JSONResponse(
            {
                "covered": {
                    "sqKmArea": round(order.area_km2 * pct / 100, 3),
                    "percentage": pct,
                    "geometry": {
                        "type": "FeatureCollection",
                        "features": [
                            {"type": "Feature", "properties": {}, "geometry": i["geometry"]} for i in covered
                        ],
                    },
                },
                "remainder": {
                    "sqKmArea": round(order.area_km2 * (100 - pct) / 100, 3),
                    "percentage": round(100 - pct, 2),
                    "geometry": {"type": "FeatureCollection", "features": []},
                },
            }
        )

    async def _stac_search(self, request: Request) -> Response:
        body = await self._json(request) or {}
        if not isinstance(body, dict):
            return _error(400, "search body must be an object")
        return await self.storage.search(request, body)

    async def _list_assets(self, request: Request) -> Response:
        page, size = self._paging(request)
        return JSONResponse(spring_page(self.storage.list_assets(request, page, size), page, size))

    @property
    def stac_items(self) -> list[Json]:
        """Every STAC item listed in storage (extraction done)."""
        return self.storage.visible_items()

    # ------------------------------------------------------------------ lifecycle

    def tick(self) -> None:
        """Advance every order to the simulated now (the lazy lifecycle)."""
        now = self._now()
        for order in self.orders.values():
            self._advance(order, now)

    def _advance(self, order: SimOrder, now: datetime) -> None:
        for _ in range(1000):
            step = None if order.frozen else self._next_step(order)
            if step is None or step[0] > now:
                return
            at, action = step
            action(order, at)

    def _next_step(self, order: SimOrder) -> tuple[datetime, Callable[[SimOrder, datetime], None]] | None:
        auto = self.config.auto_operator
        if order.status == "CREATED":
            if auto and order.sub_status == "FEASIBILITY_WAITING_UPLOAD" and order.study_due:
                return order.study_due, self._auto_study
            if auto and order.sub_status == "QUOTATION_WAITING_UPLOAD" and order.quotation_due:
                return order.quotation_due, self._auto_quotation
            return None
        if order.status in ("BEING_PLACED", "PLACED") and order.step_due is not None:
            return order.step_due, self._placement_step
        if order.status == "BEING_FULFILLED":
            if order.deliveries_due:
                return order.deliveries_due[0], self._scheduled_delivery
            return order.window[1], self._fulfil
        return None

    def _auto_study(self, order: SimOrder, at: datetime) -> None:
        self.upload_study(order.id, manual=order.manual, options=self.config.manual_options, at=at)

    def _auto_quotation(self, order: SimOrder, at: datetime) -> None:
        self.upload_quotation(order.id, self._credits_for(order.area_km2), at=at)

    def _placement_step(self, order: SimOrder, at: datetime) -> None:
        if order.status == "BEING_PLACED":
            order.status = "PLACED"
            order.step_due = at + timedelta(seconds=self.config.fulfilment_delay)
        else:
            order.status, order.step_due = "BEING_FULFILLED", None
            order.deliveries_due = self._delivery_times(order, at) if self.config.auto_operator else []
        order.updated_at = at

    def _delivery_times(self, order: SimOrder, start: datetime) -> list[datetime]:
        begin = max(start, order.window[0])
        n = max(1, self.config.deliveries_per_order)
        span = max(order.window[1] - begin, timedelta(hours=n))
        return [begin + span * (k + 1) / (n + 1) for k in range(n)]

    def _scheduled_delivery(self, order: SimOrder, at: datetime) -> None:
        order.deliveries_due.pop(0)
        rng = random.Random(f"{self._seed}:{order.id}:{len(order.assets)}")
        limit = order.params.get("cloudCoverage", order.params.get("maxCloudCover"))
        cloud = round(rng.uniform(0, float(limit) if isinstance(limit, int | float) else 20.0), 1)
        incidence = round(rng.uniform(3, 25), 1)
        share = 100.0 / max(1, self.config.deliveries_per_order)
        self.deliver(order.id, cloud_cover=cloud, incidence_angle=incidence, coverage_pct=share, at=at)

    def _fulfil(self, order: SimOrder, at: datetime) -> None:
        order.status, order.updated_at = "FULFILLED", at

    def _await_quotation(self, order: SimOrder, at: datetime) -> None:
        order.sub_status, order.updated_at = "QUOTATION_WAITING_UPLOAD", at
        order.quotation_due = at + timedelta(seconds=self.config.quotation_delay)

    # ------------------------------------------------------------------ operator controls

    def upload_study(
        self, order_id: str, *, manual: bool, options: int = 2, at: datetime | None = None
    ) -> Json:
        """Upload a feasibility study: AUTO (accepted at once) or MANUAL with ``options`` options."""
        order, at = self.orders[order_id], at or self._now()
        study_id, stamp = self._uuid(), iso(at)
        study: Json = {
            "id": study_id,
            "createdAt": stamp,
            "updatedAt": stamp,
            "accountId": DEFAULT_ACCOUNT_ID,
            "workspaceId": self.workspace_id,
            "orderId": order.id,
            "type": "MANUAL" if manual else "AUTO",
            "options": [
                {
                    "id": self._uuid(),
                    "createdAt": stamp,
                    "updatedAt": stamp,
                    "studyId": study_id,
                    "description": f"Feasibility option {chr(65 + k)}",
                }
                for k in range(options if manual else 0)
            ],
            "decision": "NOT_DECIDED" if manual else "ACCEPTED",
            "decisionById": None,
            "decisionByType": None,
            "decisionAt": None if manual else stamp,
            "decisionOption": None,
        }
        self.studies[study_id] = study
        if manual:
            order.sub_status, order.updated_at = "FEASIBILITY_WAITING_RESPONSE", at
        else:
            self._await_quotation(order, at)
        return study

    def upload_quotation(self, order_id: str, credits_price: int, *, at: datetime | None = None) -> Json:
        """Upload a quotation (``creditsPrice``) and ask the customer to decide."""
        order, at = self.orders[order_id], at or self._now()
        stamp = iso(at)
        quotation: Json = {
            "id": self._uuid(),
            "createdAt": stamp,
            "updatedAt": stamp,
            "accountId": DEFAULT_ACCOUNT_ID,
            "workspaceId": self.workspace_id,
            "orderId": order.id,
            "creditsPrice": int(credits_price),
            "decision": "NOT_DECIDED",
            "decisionById": None,
            "decisionByType": None,
            "decisionAt": None,
        }
        self.quotations[quotation["id"]] = quotation
        order.sub_status, order.updated_at = "QUOTATION_WAITING_RESPONSE", at
        return quotation

    def deliver(
        self,
        order_id: str,
        *,
        cloud_cover: float,
        incidence_angle: float = 10.0,
        coverage_pct: float | None = None,
        at: datetime | None = None,
    ) -> Json:
        """Deliver one acquisition as a storage asset with ``scenes_per_delivery`` STAC items
        (listed ``extraction_delay`` later); coverage grows, 100 % fulfils the order. Returns the
        asset as ``GET /v2/assets`` lists it."""
        order, at = self.orders[order_id], at or self._now()
        fault = next((f for r, f in self.delivery_faults.items() if order in self._orders_for(r)), None)
        scenes = [
            {"eo:cloud_cover": cloud_cover, "view:incidence_angle": incidence_angle}
            for _ in range(max(1, self.config.scenes_per_delivery))
        ]
        delay = math.inf if fault == "missing" else self.config.extraction_delay
        stored = self.storage.store(
            order_id=order.id,
            workspace_id=self.workspace_id,
            product_id=order.data_product_id,
            geometry=order.geometry,
            at=at,
            scenes=scenes,
            extraction_delay=delay if math.isfinite(delay) else 10 * 365 * 86400.0,
            extracted=1 if fault == "partial" else None,
            failed=fault == "failed",
        )
        if fault == "late_listed":  # the asset listing's index lags: listed after newer assets
            stored.listed_at = at + timedelta(seconds=self.config.late_listing_delay)
        order.assets.append(stored.id)
        share = coverage_pct if coverage_pct is not None else 100.0 / max(1, self.config.deliveries_per_order)
        order.covered_pct = min(100.0, order.covered_pct + share)
        order.updated_at = at
        if order.status in ("PLACED", "BEING_PLACED"):
            order.status = "BEING_FULFILLED"
        if order.covered_pct >= 100.0 - 1e-9:
            order.status, order.deliveries_due = "FULFILLED", []
        return self.storage.asset_json(stored)

    def release_deliveries(self, reference: str) -> int:
        """Finish now the extraction of every asset of ``reference``'s orders whose STAC items were
        held back (a ``missing``/``failed`` fault), and clear the fault. Returns how many."""
        self.delivery_faults.pop(reference, None)
        ids = {o.id for o in self._orders_for(reference)}
        return self.storage.release([a for a in self.storage.assets.values() if a.order_id in ids])

    def fault_deliveries(self, reference: str, mode: str) -> None:
        """Make the deliveries of ``reference``'s orders go wrong: ``missing`` (STAC items never
        listed), ``failed`` (metadata extraction fails), ``partial`` (one item per asset),
        ``late_listed`` (the asset appears in ``GET /v2/assets`` only ``late_listing_delay``
        simulated seconds after its ``createdAt``), or ``ok`` to clear it."""
        if mode == "ok":
            self.delivery_faults.pop(reference, None)
        elif mode in ("missing", "failed", "partial", "late_listed"):
            self.delivery_faults[reference] = mode
        else:
            raise ValueError(f"unknown delivery fault {mode!r}")

    def set_status(
        self, order_id: str, status: str, sub_status: str | None = None, *, resume: bool = False
    ) -> None:
        """Force a status (any value, also unknown ones); the lifecycle stops unless ``resume``."""
        order, now = self.orders[order_id], self._now()
        order.status, order.updated_at, order.frozen = status, now, not resume
        if sub_status is not None:
            order.sub_status = sub_status
        if resume and status in ("BEING_PLACED", "PLACED"):
            order.step_due = now + timedelta(seconds=self.config.placement_delay)
        if resume and status == "BEING_FULFILLED" and not order.deliveries_due:
            order.deliveries_due = self._delivery_times(order, now)

    def expire_tokens(self) -> None:
        self.core.expire_tokens()

    def inject(self, fault: Fault) -> None:
        self.core.inject(fault)

    def advance(self, seconds: float) -> None:
        """Jump the simulated clock ahead (the lifecycle catches up at the next request)."""
        self.core.clock.advance(seconds)

    def set_speed(self, speed: float) -> None:
        """Change the clock speed without a jump in simulated time."""
        clock = self.core.clock
        now = clock.now()
        clock.speed = speed
        clock.advance((now - clock.now()).total_seconds())

    def _orders_for(self, reference: str) -> list[SimOrder]:
        return [
            o
            for o in self.orders.values()
            if o.display_name == reference
            or reference in o.tags
            or o.display_name.startswith(f"{reference} Order ")
        ]

    def paid_order_count(self, reference: str) -> int:
        """Orders created (POST /v2/orders answered 2xx, even if the answer was lost) for
        ``reference`` (by displayName or tag): more than one is a duplicate order."""
        return len(self._orders_for(reference))

    def accepted_quotations(self, reference: str) -> int:
        """Quotations accepted (credits spent) for ``reference``'s orders."""
        ids = {o.id for o in self._orders_for(reference)}
        return sum(1 for q in self.quotations.values() if q["orderId"] in ids and q["decision"] == "ACCEPTED")

    def calls(self, method: str | None = None, path: str = ".*") -> list[Json]:
        """The call record (method, path, query, status, fault), oldest first."""
        return [
            {
                "method": c.method,
                "path": c.path,
                "query": c.query,
                "status": c.status,
                "fault": c.fault,
                "at": iso(c.at),
            }
            for c in self.core.calls
            if (method is None or c.method == method) and re.fullmatch(path, c.path)
        ]
