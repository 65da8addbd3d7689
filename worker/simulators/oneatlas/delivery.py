"""Delivered products: the data, search and access hosts of OneAtlas, on the simulator's one app.

* ``GET /api/v1/me`` (data host): the account, with ``contract.workspaceId`` of the legacy contract.
* ``POST /api/v2/opensearch`` and ``GET /api/v2/opensearch`` / ``GET /api/v1/opensearch`` (search
  host): catalogue items of the delivery workspaces, shaped like the recorded answers
  (``{error, itemsPerPage, startIndex, totalResults, type, features}``); criteria ``workspace`` (id
  or name), ``internalReference``, ``customerReference``, ``constellation``, ``id``,
  ``lastUpdateDate`` / ``publicationDate`` ranges (``[a,b]``, a bound may be omitted), ``sortBy``,
  ``itemsPerPage`` (≤ 500), ``startPage`` (from 1); no more than 10,000 results are served.
* ``GET``/``HEAD /api/v1/items/{id}/download`` (access host): the product zip (seeded bytes), with
  ``X-Ads-Checksum-Method: md5`` / ``X-Ads-Checksum-Value``, ``Accept-Ranges: bytes`` and ``Range``
  requests answered 206; ``GET …/quicklook`` and ``GET …/images/{image}/metadata`` (GeoJSON).

A validated acquisition (legacy segment, PNEO coverage item) becomes one delivered product
``delivery_delay`` simulated seconds after it was validated. Pléiades Neo items carry
``_links.download`` as an array (ftpes then https) and legacy items as an object, as both were
recorded. Operator controls: a per-order delay, withheld acquisitions (partial or missing
deliveries), an immediate release, expiry, and download faults (a body cut after some bytes, a
corrupted body), as methods and under ``/_sim/``.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from worker.simulators.common import iso
from worker.simulators.oneatlas.helpers import as_dict
from worker.simulators.oneatlas.model import (
    SATELLITE,
    SimAcquisition,
    SimContract,
    SimOrder,
    api_error,
)
from worker.simulators.oneatlas.state import SimulatorState
from worker.simulators.rasters import dimap_zip

MAX_ITEMS_PER_PAGE: Final = 500
MAX_RESULTS: Final = 10_000
PRODUCT_LIFETIME: Final = timedelta(days=365)
CHUNK: Final = 64 * 1024
_RANGE = re.compile(r"^\[\s*([^,\]]*)\s*,\s*([^,\]]*)\s*\]$")
_PLATFORM = {"PLEIADES": "PHR1B", "SPOT": "SPOT6"}
DownloadFaultKind = Literal["cut", "corrupt"]


@dataclass
class SimProduct:
    """One delivered catalogue item in a delivery workspace."""

    id: str
    order_seq: int
    acquisition_id: str
    workspace: SimContract
    published_at: datetime
    file_name: str
    size: int
    expires_at: datetime
    footprint: dict[str, Any] = field(default_factory=dict)
    platform: str = "PHR1B"
    ms_bands: int = 4
    _content: bytes | None = field(default=None, repr=False)

    def content(self) -> bytes:
        """The product's bytes: a DIMAP zip with small real GeoTIFFs over the footprint
        (:func:`worker.simulators.rasters.dimap_zip`), padded to ``size``; seeded by the id, so
        every download gives the same file. Without a footprint, seeded random bytes."""
        if self._content is None:
            if self.footprint:
                self._content = dimap_zip(self.footprint, self.platform, self.ms_bands, self.id, self.size)
            else:
                self._content = random.Random(self.id).randbytes(self.size)
        return self._content


@dataclass
class DeliveryPlan:
    """Operator settings of one order's deliveries."""

    delay: float | None = None  # simulated seconds after validation; None: the simulator default
    withheld: set[str] = field(default_factory=set)  # acquisition ids never delivered
    withhold_all: bool = False
    release: bool = False  # deliver every validated acquisition now, whatever the delay
    # When the plan last changed: a product not yet in the catalogue enters it no earlier (a
    # withheld product released today is published today, not back-dated behind a harvest's
    # cursor; products are created lazily, so one not created yet was seen by no search).
    changed_at: datetime | None = None


@dataclass
class DownloadFault:
    """A download answered wrongly: ``cut`` stops the body after ``after_bytes``; ``corrupt``
    flips one byte (the checksum no longer matches). ``times`` downloads are affected."""

    kind: DownloadFaultKind
    after_bytes: int = 0
    times: int = 1
    item_id: str | None = None


class DeliveryApi(SimulatorState):
    """The delivery side of OneAtlas: account, opensearch and item downloads."""

    delivery_delay: float
    product_size: int
    products: dict[str, SimProduct]
    _delivered: set[tuple[int, str]]
    _plans: dict[int, DeliveryPlan]
    _download_faults: list[DownloadFault]

    def _init_deliveries(self, delivery_delay: float, product_size: int) -> None:
        self.delivery_delay = delivery_delay
        self.product_size = product_size
        self.products = {}
        self._delivered = set()
        self._plans = {}
        self._download_faults = []

    # ------------------------------------------------------------------ lifecycle

    def _deliver_due(self) -> None:
        """Create every product due by now (timestamped at its due time, so polls do not matter)."""
        now = self._now()
        for order in self.orders:
            plan = self._plans.get(order.seq, DeliveryPlan())
            if plan.withhold_all and not plan.release:
                continue
            delay = timedelta(seconds=self.delivery_delay if plan.delay is None else plan.delay)
            for a in order.acquisitions:
                if a.status.upper() != "VALIDATED" or (order.seq, a.id) in self._delivered:
                    continue
                if a.id in plan.withheld and not plan.release:
                    continue
                validated = a.validated_at or a.acquired_at
                due = min(validated + delay, now) if plan.release else validated + delay
                if plan.changed_at is not None:
                    due = max(due, plan.changed_at)
                if due <= now:
                    self._publish(order, a, due)

    def _publish(self, order: SimOrder, a: SimAcquisition, at: datetime) -> None:
        self._delivered.add((order.seq, a.id))
        rng = self._rng("product", order.seq, a.id)
        item_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        line = a.id.rsplit("_", 2)[-2] if order.backend == "neo" else "1"
        if order.backend == "neo":
            name = f"WO_{order.seq:09d}_1_{order.sales_order_id}-{line}_{a.catalog_id}.zip"
        else:
            name = f"{order.so}_{order.sales_order_id}_{a.catalog_id}.zip"
        self.products[item_id] = SimProduct(
            id=item_id,
            order_seq=order.seq,
            acquisition_id=a.id,
            workspace=self.contracts[order.contract_id],
            published_at=at,
            file_name=name,
            size=self.product_size,
            expires_at=at + PRODUCT_LIFETIME,
            footprint=a.footprint,
            platform=self._platform(order, a),
            ms_bands=6 if order.backend == "neo" else 4,
        )
        product = self.products[item_id]
        product.size = len(product.content())  # at least product_size: the rasters must fit

    @staticmethod
    def _platform(order: SimOrder, a: SimAcquisition) -> str:
        neo = order.backend == "neo"
        return a.catalog_id.split("_")[1] if neo else _PLATFORM.get(order.mission, "PHR1B")

    def _live_products(self) -> list[SimProduct]:
        now = self._now()
        return [p for p in self.products.values() if p.expires_at > now]

    # ------------------------------------------------------------------ data host

    def _me(self, request: Request, raw: bytes) -> Response:
        contract = next((c for c in self.contracts.values() if c.backend == "legacy"), None)
        record: dict[str, Any] = {}
        if contract is not None:
            record = {
                "id": contract.contract_id,
                "name": contract.name or contract.contract_id,
                "workspaceId": contract.workspace,
                "workspaceName": contract.workspace_name or None,
            }
        return JSONResponse(
            {
                "id": "USR-SIM",
                "username": "sim-user",
                "email": "sim@example.invalid",
                "roles": ["customer"],
                "contract": record,
            }
        )

    # ------------------------------------------------------------------ search host

    def _opensearch_post(self, request: Request, raw: bytes) -> Response:
        return self._search(self._json(raw), str(request.base_url))

    def _opensearch_get(self, request: Request, raw: bytes) -> Response:
        return self._search(dict(request.query_params), str(request.base_url))

    def _search(self, criteria: Mapping[str, Any], base: str) -> Response:
        self._deliver_due()
        size = _bounded(criteria.get("itemsPerPage"), 50, 1, MAX_ITEMS_PER_PAGE, "itemsPerPage")
        page = _bounded(criteria.get("startPage"), 1, 1, None, "startPage")
        start = (page - 1) * size
        if start >= MAX_RESULTS:
            raise api_error(400, f"startPage: no result after the first {MAX_RESULTS}", "SEARCH-400")
        features = [self._feature(p, base) for p in self._live_products()]
        selected = [f for f in features if _matches(criteria, f["properties"])]
        selected = _sorted(selected, str(criteria.get("sortBy") or "-publicationDate"))
        total = min(len(selected), MAX_RESULTS)
        return JSONResponse(
            {
                "error": False,
                "itemsPerPage": size,
                "startIndex": start,
                "totalResults": total,
                "type": "FeatureCollection",
                "features": selected[start : min(start + size, total)],
            }
        )

    def _feature(self, product: SimProduct, base: str) -> dict[str, Any]:
        order = next(o for o in self.orders if o.seq == product.order_seq)
        a = next(x for x in order.acquisitions if x.id == product.acquisition_id)
        neo = order.backend == "neo"
        access = f"{base.rstrip('/')}/api/v1/items/{product.id}"
        published = iso(product.published_at)
        props: dict[str, Any] = {
            "id": product.id,
            "acquisitionDate": iso(a.acquired_at),
            "constellation": SATELLITE[order.mission],
            "platform": self._platform(order, a),
            "processingLevel": "ORTHO",
            "productType": "bundle",
            "format": "SAFIR" if neo else "application/octet-stream",
            "cloudCover": round(100.0 - a.clear_sky, 2),
            "snowCover": 0,
            "incidenceAngle": a.incidence,
            "resolution": 0.3 if neo else (0.5 if order.mission == "PLEIADES" else 1.5),
            "productionStatus": "IN_CLOUD",
            "customerReference": order.customer_ref,
            "internalReference": order.sales_order_id,
            "internalLine": "1",
            "commercialReference": f"WO_{order.seq:09d}_1" if neo else order.so,
            "contractId": order.contract_id,
            "correlationId": f"PWOI_{order.seq:09d}_1_1_I_1" if neo else product.id,
            "acquisitionIdentifier": None if neo else a.catalog_id,
            "sourceIdentifier": None if neo else a.catalog_id,
            "publicationDate": published,
            "lastUpdateDate": published,
            "expirationDate": iso(product.expires_at),
            "workspaceId": product.workspace.workspace,
            "workspaceName": product.workspace.workspace_name or None,
        }
        if not neo:
            props["parentIdentifier"] = a.catalog_id
        download = {
            "href": f"{access}/download",
            "name": "Download",
            "type": "HTTP",
            "resourceId": product.file_name,
        }
        ftpes = {**download, "href": f"ftpes://ftp.sim.invalid/{product.file_name}", "type": "FTPES"}
        images = [
            {
                "href": f"{access}/images/{product.id[:8]}-{k}/metadata",
                "name": name,
                "type": "application/geo+json",
                "resourceId": f"{product.id[:8]}-{k}",
            }
            for k, name in enumerate(("panchromatic", "multispectral"))
        ]
        return {
            "type": "Feature",
            "geometry": a.footprint,
            "properties": props,
            "_links": {
                "download": [ftpes, download] if neo else download,
                "quicklook": {"href": f"{access}/quicklook", "name": "QuickLook", "type": "HTTP"},
                "thumbnail": {"href": f"{access}/thumbnail", "name": "Thumbnail", "type": "HTTP"},
                "imagesMetadata": images,
                "self": {
                    "href": f"{base.rstrip('/')}/api/v1/opensearch?id={product.id}",
                    "method": "GET",
                    "name": "self",
                },
            },
            "rights": {"browse": {}, "download": {}, "wms": {}, "wmts": {}},
        }

    # ------------------------------------------------------------------ access host

    def _download(self, request: Request, raw: bytes) -> Response:
        product = self._live_product(request.path_params["item"])
        body = product.content()
        digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
        headers = {
            "X-Ads-Checksum-Method": "md5",
            "X-Ads-Checksum-Value": digest,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{product.file_name}"',
        }
        if request.method == "HEAD":
            return Response(
                headers={**headers, "Content-Length": str(len(body))}, media_type="application/zip"
            )
        start, end = _byte_range(request.headers.get("range"), len(body))
        status = 200
        if (start, end) != (0, len(body)):
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(body)}"
        part = body[start:end]
        fault = self._take_download_fault(product.id)
        if fault is not None and fault.kind == "corrupt" and part:
            part = bytes([part[0] ^ 0xFF]) + part[1:]
        cut = fault.after_bytes if fault is not None and fault.kind == "cut" else None
        headers["Content-Length"] = str(len(part))
        return StreamingResponse(
            _chunks(part, cut), status_code=status, headers=headers, media_type="application/zip"
        )

    def _quicklook(self, request: Request, raw: bytes) -> Response:
        """A small JPEG-typed preview (seeded bytes) of a delivered item."""
        product = self._live_product(request.path_params["item"])
        preview = random.Random(f"quicklook|{product.id}").randbytes(2048)
        return Response(preview, media_type="image/jpeg")

    def _image_metadata(self, request: Request, raw: bytes) -> Response:
        """The GeoJSON metadata of one image of a delivered item."""
        product = self._live_product(request.path_params["item"])
        order = next(o for o in self.orders if o.seq == product.order_seq)
        return JSONResponse(
            {
                "type": "Feature",
                "geometry": order.aoi,
                "properties": {"id": request.path_params["image"], "itemId": product.id},
            },
            media_type="application/geo+json",
        )

    def _live_product(self, item_id: str) -> SimProduct:
        self._deliver_due()
        product = self.products.get(item_id)
        if product is None or product.expires_at <= self._now():
            raise api_error(404, f"Item {item_id} not found", "NOT-FOUND")
        return product

    def _take_download_fault(self, item_id: str) -> DownloadFault | None:
        for fault in self._download_faults:
            if fault.item_id in (None, item_id):
                fault.times -= 1
                if fault.times <= 0:
                    self._download_faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ operator controls

    def plan_delivery(
        self,
        key: str,
        *,
        delay: float | None = None,
        withhold: list[str] | None = None,
        withhold_all: bool | None = None,
        release: bool | None = None,
    ) -> None:
        """Change how one order's products are delivered: ``delay`` (simulated seconds after
        validation), ``withhold`` acquisition ids (a partial delivery), ``withhold_all`` (nothing
        is delivered), ``release`` (every validated acquisition is delivered now)."""
        with self._lock:
            self._advance_all()
            order = self.order(key)
            plan = self._plans.setdefault(order.seq, DeliveryPlan())
            plan.changed_at = self._now()
            if delay is not None:
                plan.delay = delay
            if withhold is not None:
                plan.withheld = set(withhold)
            if withhold_all is not None:
                plan.withhold_all = withhold_all
            if release is not None:
                plan.release = release
            self._deliver_due()

    def expire_product(self, item_id: str) -> None:
        """Make a delivered product expire now (gone from searches; its download answers 404)."""
        with self._lock:
            self.products[item_id].expires_at = self._now()

    def inject_download_fault(self, fault: DownloadFault | Mapping[str, Any]) -> None:
        """Answer the next download(s) wrongly (:class:`DownloadFault`)."""
        with self._lock:
            if not isinstance(fault, DownloadFault):
                fault = DownloadFault(
                    kind=fault["kind"],
                    after_bytes=int(fault.get("afterBytes", 0)),
                    times=int(fault.get("times", 1)),
                    item_id=fault.get("itemId"),
                )
            if fault.kind not in ("cut", "corrupt"):
                raise ValueError(f"unknown download fault {fault.kind!r}")
            self._download_faults.append(fault)

    def delivered(self, key: str | None = None) -> list[dict[str, Any]]:
        """The delivered products (of one order when ``key`` names it)."""
        with self._lock:
            self._advance_all()
            self._deliver_due()
            seq = self.order(key).seq if key is not None else None
            return [
                {
                    "id": p.id,
                    "acquisitionId": p.acquisition_id,
                    "fileName": p.file_name,
                    "size": p.size,
                    "publishedAt": iso(p.published_at),
                    "expiresAt": iso(p.expires_at),
                }
                for p in self.products.values()
                if seq is None or p.order_seq == seq
            ]


# ----------------------------------------------------------------------------- helpers


def _chunks(body: bytes, cut: int | None) -> Iterator[bytes]:
    """The body in chunks; with ``cut`` the stream fails after that many bytes (a dropped transfer)."""
    sent = 0
    for offset in range(0, len(body), CHUNK):
        chunk = body[offset : offset + CHUNK]
        if cut is not None and sent + len(chunk) > cut:
            yield chunk[: cut - sent]
            raise ConnectionResetError("simulated cut download")
        sent += len(chunk)
        yield chunk


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """``(start, end)`` (end exclusive) of a ``Range: bytes=a-b`` header; the whole body without one.

    Raises:
        SimError: 416 for a range that is malformed or outside the body.
    """
    if not header:
        return 0, size
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or (match.group(1) == "" and match.group(2) == ""):
        raise _unsatisfiable(size)
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> Exception:
    error = api_error(416, "Range not satisfiable", "RANGE-416")
    error.headers["Content-Range"] = f"bytes */{size}"
    return error


def _bounded(value: Any, default: int, low: int, high: int | None, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise api_error(400, f"{name} must be an integer", "SEARCH-400") from None
    if number < low or (high is not None and number > high):
        raise api_error(400, f"{name} must be in {low}..{high or 'inf'}", "SEARCH-400")
    return number


def _matches(criteria: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    """Every criterion the simulator models must match (case sensitive, as the real search)."""
    workspace = criteria.get("workspace")
    if workspace and workspace not in (props.get("workspaceId"), props.get("workspaceName")):
        return False
    for name in ("internalReference", "customerReference", "constellation", "id"):
        value = criteria.get(name)
        if value and str(value) != str(props.get(name)):
            return False
    for name in ("lastUpdateDate", "publicationDate"):
        value = criteria.get(name)
        if value and not _in_range(str(value), str(props.get(name) or "")):
            return False
    return True


def _in_range(expression: str, value: str) -> bool:
    """``[a,b]`` (a bound may be omitted) or one exact value, on ISO times."""
    match = _RANGE.fullmatch(expression.strip())
    moment = _parse(value)
    if moment is None:
        return False
    if match is None:
        exact = _parse(expression)
        if exact is None:
            raise api_error(400, f"cannot read the date {expression!r}", "SEARCH-400")
        return moment == exact
    low, high = (_parse(part) if part else None for part in match.groups())
    if (match.group(1) and low is None) or (match.group(2) and high is None):
        raise api_error(400, f"cannot read the range {expression!r}", "SEARCH-400")
    return (low is None or moment >= low) and (high is None or moment <= high)


def _parse(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _sorted(features: list[dict[str, Any]], sort_by: str) -> list[dict[str, Any]]:
    """``attr[,attr]`` with ``-`` for descending (stable sorts, last key first)."""
    result = list(features)
    for part in reversed([p.strip() for p in sort_by.split(",") if p.strip()]):
        name = part.lstrip("-+")

        def key(feature: dict[str, Any], name: str = name) -> tuple[int, Any]:
            return _sort_key(as_dict(feature["properties"]).get(name))

        result.sort(key=key, reverse=part.startswith("-"))
    return result


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, int | float):
        return (1, float(value))
    return (2, str(value))
