"""The UP42 simulator's feasibility studies and quotations: list and decide."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.common import iso
from worker.simulators.up42.responses import Json, _tasking_error, spring_page
from worker.simulators.up42.state import DEFAULT_USER_ID, Up42State


class TaskingRoutes(Up42State):
    """``/v2/tasking/feasibility-studies...`` and ``/v2/tasking/quotation...``."""

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
