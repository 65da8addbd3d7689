"""Response bodies and small helpers shared by the UP42 simulator's handlers: the four error
envelopes of the reference, the Spring page, the area of a geometry."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from shapely.geometry import shape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Json = dict[str, Any]
Endpoint = Callable[[Request], Awaitable[Response]]
KM_PER_DEGREE = 111.32


def _error(status: int, message: str, details: Any = None) -> JSONResponse:
    """``BasicErrorResponse`` (orders, collections, schemas)."""
    return JSONResponse({"code": status, "message": message, "details": details}, status_code=status)


def _tasking_error(status: int, title: str) -> JSONResponse:
    """The tasking services' body (studies, quotations; cancellation [I])."""
    return JSONResponse({"status": status, "title": title, "detail": {}}, status_code=status)


def _legacy_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": None}, "data": None}, status_code=status
    )


def _keycloak_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def spring_page(items: list[Json], page: int, size: int) -> Json:
    """A Spring-Data page exactly shaped like the recorded UP42 envelope."""
    total_pages = math.ceil(len(items) / size) if size else 0
    content = items[page * size : (page + 1) * size]
    sort = {"sorted": True, "unsorted": False, "empty": False}
    return {
        "content": content,
        "pageable": {
            "sort": sort,
            "pageNumber": page,
            "pageSize": size,
            "offset": page * size,
            "paged": True,
            "unpaged": False,
        },
        "totalPages": total_pages,
        "totalElements": len(items),
        "last": page >= total_pages - 1,
        "first": page == 0,
        "numberOfElements": len(content),
        "size": size,
        "number": page,
        "sort": sort,
        "empty": not content,
    }


def area_km2(geometry: Mapping[str, Any]) -> float:
    """Approximate area of a WGS84 geometry (equirectangular at the centroid latitude)."""
    geom = shape(geometry)
    scale = KM_PER_DEGREE**2 * math.cos(math.radians(geom.centroid.y))
    return float(geom.area) * scale


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
