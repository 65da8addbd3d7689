"""The UP42 simulator's coverage, asset listing and STAC search endpoints (the rest of storage
is :mod:`.storage`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.up42.responses import Json, _error, spring_page
from worker.simulators.up42.state import Up42State


class AssetRoutes(Up42State):
    """``/v2/coverage/orders/{id}``, ``/v2/assets`` and ``/v2/assets/stac/search``."""

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
