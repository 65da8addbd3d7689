"""The UP42 simulator's catalogue and order endpoints: collections, product schemas, estimate,
create, read, list, merge-patch and cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from jsonschema import Draft7Validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.up42.responses import (
    Json,
    _error,
    _parse_time,
    _tasking_error,
    area_km2,
    spring_page,
)
from worker.simulators.up42.state import CANCELLABLE, TAG_PATTERN, SimOrder, Up42State
from worker.simulators.up42_schemas import COLLECTIONS


class OrderRoutes(Up42State):
    """``/v2/collections``, ``/orders/schema/...`` and ``/v2/orders...``."""

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
