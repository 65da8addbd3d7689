"""Tracking: PNEO order lines and coverage items, legacy taskings and segments, decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.common import iso
from worker.simulators.oneatlas.helpers import as_dict, multi_values, positive_int, query_match, target_of
from worker.simulators.oneatlas.model import (
    CAMEL,
    ICR_CANCELED,
    ICR_OPEN,
    MIN_KM2,
    SimAcquisition,
    SimOrder,
    api_error,
    code_error,
)
from worker.simulators.oneatlas.state import SimulatorState


class TrackingApi(SimulatorState):
    """Tracking: PNEO order lines and coverage items, legacy taskings and segments, decisions."""

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
            "target": target_of(order.product_type),
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
        lines = [self._order_line(o) for o in self.orders if o.backend == "neo" and o.listed()]
        return self._paged(body, [line for line in lines if query_match(body, line)])

    def _coverages_search(self, request: Request, raw: bytes) -> Response:
        body = self._json(raw)
        items = [self._coverage_item(o, a) for o in self.orders if o.backend == "neo" for a in o.acquisitions]
        return self._paged(body, [i for i in items if query_match(body, i)])

    @staticmethod
    def _paged(body: dict[str, Any], records: list[dict[str, Any]]) -> Response:
        paging = as_dict(body.get("paging"))
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
            a.validated_at = self._now()
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
        statuses = multi_values(query.getlist("status"))
        ids = multi_values(query.getlist("taskingIds"))
        progs = multi_values(query.getlist("progTypeNames"))
        has_proposed = query.get("hasProposedSegments")
        selected = [
            o
            for o in orders
            if o.listed()
            and (not query.get("customerRef") or o.customer_ref == query["customerRef"])
            and (not statuses or o.status in statuses)
            and (not ids or o.tasking_id in ids)
            and (not progs or o.prog_type in progs)
            and (not query.get("mission") or o.mission == query["mission"])
            and (
                has_proposed is None
                or any(a.status == "Proposed" for a in o.acquisitions) == (has_proposed == "true")
            )
        ]
        count = positive_int(query.get("count"), 10, "count")
        page = positive_int(query.get("startPage"), 1, "startPage")
        chosen = selected[(page - 1) * count : page * count]
        return JSONResponse({"taskings": [self._listed_item(o) for o in chosen]})

    def _listed_item(self, order: SimOrder) -> dict[str, Any]:
        if order.customer_ref in self.malformed_items:
            return {"sal": order.sales_order_id, "so": order.so, "icr": "corrupted record"}
        return self._tasking_item(order)

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
