"""Small geometry helpers for OneAtlas: WKT <-> GeoJSON, AOI area and the AOI's UTM zone.

OneAtlas answers ``/attempts`` footprints as WKT strings while everything else (requests, segments,
coverage items) is GeoJSON; the project speaks GeoJSON only, so adapters convert here.
Areas use a local equirectangular projection around the AOI centroid: accurate to well under 1 %
for tasking-sized AOIs (tens to thousands of km²), which is all a price minimum or a size sanity
check needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import shapely
import shapely.wkt
from shapely.errors import ShapelyError
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

_KM_PER_DEG_LAT = 110.574
_KM_PER_DEG_LON_EQUATOR = 111.320


def _lists(value: Any) -> Any:
    """Tuples (as shapely's ``mapping`` returns them) to lists, so the result is plain JSON."""
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def wkt_to_geojson(text: str) -> dict[str, Any]:
    """The GeoJSON geometry of a WKT string.

    Raises:
        ValueError: ``text`` is not valid WKT.
    """
    try:
        geometry = shapely.wkt.loads(text)
    except (ShapelyError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid WKT: {exc}") from exc
    return dict(_lists(mapping(geometry)))


def geojson_to_wkt(geometry: Mapping[str, Any]) -> str:
    """The WKT text of a GeoJSON geometry (raises ``ValueError`` when it is not one)."""
    return str(_shape(geometry).wkt)


def _shape(geometry: Mapping[str, Any]) -> BaseGeometry:
    try:
        return shape(dict(geometry))
    except (ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"invalid GeoJSON geometry: {exc}") from exc


def area_km2(geometry: Mapping[str, Any]) -> float:
    """Area of a WGS84 GeoJSON geometry in km² (local equirectangular approximation)."""
    geom = _shape(geometry)
    lat0 = geom.centroid.y
    kx = _KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))

    def to_km(coords: Any) -> Any:
        return coords * [kx, _KM_PER_DEG_LAT]

    return float(shapely.transform(geom, to_km).area)


def extent_km(geometry: Mapping[str, Any]) -> tuple[float, float]:
    """``(width, height)`` of the geometry's bounding box in km."""
    minx, miny, maxx, maxy = _shape(geometry).bounds
    lat0 = (miny + maxy) / 2
    width = (maxx - minx) * _KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))
    return width, (maxy - miny) * _KM_PER_DEG_LAT


def centroid(geometry: Mapping[str, Any]) -> tuple[float, float]:
    """``(lon, lat)`` of the geometry's centroid."""
    point = _shape(geometry).centroid
    return float(point.x), float(point.y)


def utm_epsg(geometry: Mapping[str, Any]) -> str:
    """The WGS84 UTM zone EPSG code of the geometry's centroid, as a string (``'32631'``).

    OneAtlas wants projections as EPSG code strings; its own options endpoint defaults to the
    AOI's UTM zone, so this is the natural default for ``projection_<aoiId>``.
    """
    lon, lat = centroid(geometry)
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return str((32600 if lat >= 0 else 32700) + zone)
