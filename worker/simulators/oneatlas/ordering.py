"""Prices and orders: validation of the order body as the real API does it, and order creation."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.oneatlas.helpers import as_dict, as_list, parse_aoi, parse_time
from worker.simulators.oneatlas.model import (
    ATTEMPT_TYPES,
    CAMEL,
    ICR_CANCELED,
    ICR_STUDY,
    MIN_KM2,
    PREFIX,
    RATE_PER_KM2,
    SPECTRAL,
    SimContract,
    SimOrder,
    api_error,
    code_error,
    errors_error,
)
from worker.simulators.oneatlas.state import SimulatorState
from worker.wkt import area_km2


class OrderingApi(SimulatorState):
    """Prices and orders: validation of the order body as the real API does it, and order creation."""

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
        aois = {as_dict(a).get("id"): parse_aoi(as_dict(a).get("geometry")) for a in as_list(body["aoi"])}
        items = body["items"]
        if not isinstance(items, list) or len(items) != 1:
            raise api_error(400, "items must be an array with one tasking item", "ORDER-400")
        item = as_dict(items[0])
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
        props = {str(as_dict(p).get("key")): as_dict(p).get("value") for p in as_list(item.get("properties"))}
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
            "start": parse_time(period[0], "acqPeriod"),
            "end": parse_time(period[1], "acqPeriod"),
            "attempt": attempt,
            "ref": str(body["customerReference"]),
        }

    def _check_delivery(self, body: dict[str, Any], contract: SimContract) -> None:
        delivery = as_dict(body.get("delivery"))
        if delivery.get("type", "network") != "network":
            raise api_error(400, "delivery.type must be network", "ORDER-400")
        workspace = delivery.get("workspace")
        if workspace is not None and workspace != contract.workspace:
            raise code_error(400, "E2203", f"Unable to access workspace '{workspace}'")

    def _check_options(self, body: dict[str, Any], ptype: str, aoi_id: Any, backend: str) -> dict[str, Any]:
        groups = [as_dict(g) for g in as_list(body["optionsPerProductType"])]
        group = next((g for g in groups if g.get("productTypeId") == ptype), None)
        if group is None or not isinstance(group.get("options"), list):
            raise api_error(
                400,
                f"optionsPerProductType needs {{productTypeId, options:[{{key,value}}]}} for {ptype}",
                "ORDER-400",
            )
        options = {str(as_dict(o).get("key")): as_dict(o).get("value") for o in group["options"]}
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
        self._check_reference_unused(o["ref"])
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

    def _check_reference_unused(self, ref: str) -> None:
        """With ``duplicate_reference_status`` set, a reference an open order carries is refused
        (whether the listing shows that order yet or not: the order store is not the index)."""
        status = self.duplicate_reference_status
        if status is None:
            return
        closed = {ICR_CANCELED, "CANCELLED", "STOPPED"}
        if any(o.customer_ref == ref and o.status not in closed for o in self.orders):
            raise api_error(
                status, f"customerReference '{ref}' is already used by another order", "ORDER-409"
            )

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
            listed_from=time.monotonic() + self.listing_lag,
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
