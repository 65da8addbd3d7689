"""The UP42 simulator's state: its configuration, its orders, studies and quotations, the lazy
lifecycle on the simulated clock and the operator controls (Python methods).

:class:`Up42State` serves no route itself. The resource modules (:mod:`.auth`, :mod:`.orders`,
:mod:`.tasking`, :mod:`.assets`) add the provider endpoints on top of it, :mod:`.console` the
``/_sim`` endpoints, and :class:`~worker.simulators.up42.app.Up42Simulator` composes them into one
app. Every module imports this one and none imports the app, so the files form no circle.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from worker.simulators.common import Fault, SimulatorCore, iso
from worker.simulators.up42.responses import Json
from worker.simulators.up42.storage import Up42Storage
from worker.simulators.up42_schemas import PRODUCT_SCHEMAS

DEFAULT_WORKSPACE_ID = "7f3c2b1a-9d8e-4c6f-a5b4-3e2d1c0b9a87"
DEFAULT_ACCOUNT_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
DEFAULT_USER_ID = "e49786fb-0c1d-4e2f-8a3b-4c5d6e7f8091"
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


class Up42State:
    """What the UP42 simulator holds and how it moves on; the app (``.app``) serves it."""

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
        """The app's routes: none here (the composed simulator lists them)."""
        return []

    @staticmethod
    async def _json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    def _paging(self, request: Request) -> tuple[int, int]:
        q = request.query_params
        try:
            page = max(0, int(q.get("page", "0")))
            size = int(q.get("size", str(self.config.default_page_size)))
        except ValueError:
            return 0, self.config.default_page_size
        return page, min(max(1, size), self.config.max_page_size)

    def _credits_for(self, km2: float) -> int:
        return max(self.config.min_credits, math.ceil(km2 * self.config.credits_per_km2))

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
