"""The UP42 simulator's operator console: the ``/_sim/...`` JSON endpoints (they bypass auth,
faults and the call record), each a thin wrapper of an operator control of
:class:`~worker.simulators.up42.state.Up42State`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.simulators.common import Fault, iso, paid_write_switches
from worker.simulators.up42.responses import Endpoint

if TYPE_CHECKING:
    from worker.simulators.up42.state import Up42State


def console_routes(sim: Up42State, wrap: Callable[[Endpoint], Endpoint]) -> list[Route]:
    """The ``/_sim`` routes of ``sim``, each handler wrapped by ``wrap`` (errors → 400/404)."""
    c = Console(sim)
    return [
        Route("/_sim/deliveries/faults", wrap(c.delivery_fault), methods=["POST"]),
        Route("/_sim/orders/{order_id}/study", wrap(c.study), methods=["POST"]),
        Route("/_sim/orders/{order_id}/quotation", wrap(c.quotation), methods=["POST"]),
        Route("/_sim/orders/{order_id}/deliveries", wrap(c.deliver), methods=["POST"]),
        Route("/_sim/orders/{order_id}/status", wrap(c.status), methods=["POST"]),
        Route("/_sim/tokens/expire", wrap(c.expire), methods=["POST"]),
        Route("/_sim/faults", wrap(c.faults), methods=["POST", "DELETE"]),
        Route("/_sim/paid-write-faults", wrap(c.paid_write_faults), methods=["POST"]),
        Route("/_sim/calls", wrap(c.calls), methods=["GET"]),
        Route("/_sim/paid", wrap(c.paid), methods=["GET"]),
        Route("/_sim/clock", wrap(c.clock), methods=["POST"]),
        Route("/_sim/role", wrap(c.role), methods=["POST"]),
    ]


class Console:
    """The handlers of :func:`console_routes`."""

    def __init__(self, sim: Up42State) -> None:
        self.sim = sim

    async def _json(self, request: Request) -> Any:
        return await self.sim._json(request)

    async def study(self, request: Request) -> Response:
        body = await self._json(request) or {}
        self.sim.tick()
        study = self.sim.upload_study(
            request.path_params["order_id"],
            manual=body.get("type", "MANUAL") == "MANUAL",
            options=int(body.get("options", 2)),
        )
        return JSONResponse(study)

    async def quotation(self, request: Request) -> Response:
        body = await self._json(request) or {}
        self.sim.tick()
        return JSONResponse(
            self.sim.upload_quotation(request.path_params["order_id"], int(body["creditsPrice"]))
        )

    async def deliver(self, request: Request) -> Response:
        body = await self._json(request) or {}
        self.sim.tick()
        item = self.sim.deliver(
            request.path_params["order_id"],
            cloud_cover=float(body["cloudCover"]),
            incidence_angle=float(body.get("incidenceAngle", 10.0)),
            coverage_pct=body.get("coveragePct"),
        )
        return JSONResponse(item)

    async def delivery_fault(self, request: Request) -> Response:
        body = await self._json(request) or {}
        self.sim.fault_deliveries(str(body["reference"]), str(body.get("mode", "missing")))
        return JSONResponse({"faults": self.sim.delivery_faults})

    async def status(self, request: Request) -> Response:
        body = await self._json(request) or {}
        self.sim.tick()
        order_id = request.path_params["order_id"]
        self.sim.set_status(
            order_id, str(body["status"]), body.get("subStatus"), resume=bool(body.get("resume", False))
        )
        return JSONResponse(self.sim.order_json(self.sim.orders[order_id]))

    async def expire(self, request: Request) -> Response:
        self.sim.expire_tokens()
        return JSONResponse({"expired": len(self.sim.core.tokens)})

    async def faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sim.core.clear_faults()
            return JSONResponse({"faults": 0})
        body = await self._json(request) or {}
        self.sim.inject(Fault(**body))
        return JSONResponse({"faults": len(self.sim.core.faults)})

    async def calls(self, request: Request) -> Response:
        return JSONResponse(
            {
                "calls": self.sim.calls(
                    request.query_params.get("method"), request.query_params.get("path", ".*")
                )
            }
        )

    async def paid(self, request: Request) -> Response:
        reference = request.query_params["reference"]
        return JSONResponse(
            {
                "reference": reference,
                "paidOrderCount": self.sim.paid_order_count(reference),
                "acceptedQuotations": self.sim.accepted_quotations(reference),
            }
        )

    async def clock(self, request: Request) -> Response:
        body = await self._json(request) or {}
        if "speed" in body:
            self.sim.set_speed(float(body["speed"]))
        if "advance" in body:
            self.sim.advance(float(body["advance"]))
        return JSONResponse({"now": iso(self.sim._now()), "speed": self.sim.core.clock.speed})

    async def paid_write_faults(self, request: Request) -> Response:
        return JSONResponse(paid_write_switches(self.sim, await self._json(request) or {}))

    async def role(self, request: Request) -> Response:
        body = await self._json(request) or {}
        self.sim.role = str(body["role"]).upper()
        return JSONResponse({"role": self.sim.role})
