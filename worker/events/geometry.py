"""AOI validity rules shared by the request model and the providers (CONTRACT §3.1).

Shapely decides simplicity (no self-intersection); the other rules are checked first so each
failure names exactly what is wrong. An AOI that crosses the antimeridian is refused at intake
with a reason that says how to send it (CONTRACT §3.1): one request per side. :func:`normalized`
gives a delivered product's geometry the form STAC items carry (counter-clockwise, split at the
antimeridian, tight bbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

# shapely, numpy and antimeridian are imported by the functions that build a geometry, not here:
# the models import this module, and a reader of status events never validates an AOI.
if TYPE_CHECKING:
    from shapely.geometry import MultiPolygon, Polygon

MIN_POSITIONS = 4
MAX_POSITIONS = 999


def validate_polygon_rings(rings: Sequence[Sequence[tuple[float, float]]]) -> None:
    """Raise ``ValueError`` with a precise message unless ``rings`` is one valid WGS84 ring.

    Rules: exactly one ring (no holes); 4..999 positions; first equals last; lon in [-180, 180]
    and lat in [-90, 90]; not across the antimeridian (which also refuses a ring around a pole);
    not self-intersecting.
    """
    if len(rings) != 1:
        raise ValueError(
            "aoi must have exactly one ring (holes are not allowed)" if len(rings) > 1 else "aoi has no ring"
        )
    ring = rings[0]
    if not MIN_POSITIONS <= len(ring) <= MAX_POSITIONS:
        raise ValueError(f"aoi ring must have {MIN_POSITIONS}..{MAX_POSITIONS} positions")
    for lon, lat in ring:
        if not -180.0 <= lon <= 180.0:
            raise ValueError(f"longitude {lon} is outside [-180, 180]")
        if not -90.0 <= lat <= 90.0:
            raise ValueError(f"latitude {lat} is outside [-90, 90]")
    if tuple(ring[0]) != tuple(ring[-1]):
        raise ValueError("aoi ring is not closed (first and last positions differ)")
    if crosses_antimeridian(ring):
        raise ValueError(
            "aoi crosses the antimeridian (two consecutive positions are more than 180 degrees of "
            "longitude apart); send one request for each side, split at longitude 180 / -180 "
            "(RFC 7946 section 3.1.9)"
        )
    from shapely.geometry import LinearRing

    if not LinearRing(ring).is_simple:
        raise ValueError("aoi ring intersects itself")


def crosses_antimeridian(ring: Sequence[Sequence[float]]) -> bool:
    """Whether ``ring`` crosses the antimeridian: two consecutive positions more than 180° of
    longitude apart, the rule of RFC 7946 §3.1.9 and of the ``antimeridian`` package, which
    splits such a ring (a ring around a pole crosses too)."""
    return any(abs(float(b[0]) - float(a[0])) > 180.0 for a, b in pairwise(ring))


def normalized(geometry: Mapping[str, Any]) -> tuple[dict[str, Any], list[float]]:
    """A GeoJSON (Multi)Polygon as STAC items carry it, and its bbox.

    Exterior rings counter-clockwise and holes clockwise (RFC 7946 §3.1.6); a geometry that crosses
    the antimeridian is split there into a MultiPolygon (RFC 7946 §3.1.9, ``antimeridian``
    package), and its bbox then has west > east. The bbox is the tight bounds of the result,
    never the provider's. Positions of the same geometry come out the same whether it was read
    from GeoJSON or from WKT (:func:`worker.wkt.wkt_to_geojson`).

    Raises:
        ValueError: not a valid GeoJSON geometry.
    """
    import antimeridian
    from shapely.errors import ShapelyError
    from shapely.geometry import MultiPolygon, Polygon, mapping, shape

    try:
        parsed = shape(dict(geometry))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, ShapelyError) as exc:
        raise ValueError(f"not a GeoJSON geometry: {exc}") from exc
    if isinstance(parsed, Polygon | MultiPolygon) and _crosses(parsed):
        # Straight lines in longitude/latitude, as RFC 7946 reads them (no great circles); a
        # clockwise ring is a winding mistake (UP42), not a polygon around both poles.
        if isinstance(parsed, Polygon):
            fixed = antimeridian.fix_polygon(parsed, fix_winding=True, great_circle=False)
        else:
            fixed = antimeridian.fix_multi_polygon(parsed, fix_winding=True, great_circle=False)
        oriented = _oriented(fixed)
        return _plain(mapping(oriented)), [float(v) for v in antimeridian.bbox(oriented)]
    oriented = _oriented(parsed)
    return _plain(mapping(oriented)), [float(v) for v in oriented.bounds]


def _crosses(value: Polygon | MultiPolygon) -> bool:
    from shapely.geometry import MultiPolygon

    polygons = value.geoms if isinstance(value, MultiPolygon) else [value]
    return any(crosses_antimeridian(list(p.exterior.coords)) for p in polygons)


def _oriented(value: Any) -> Any:
    from shapely.geometry import MultiPolygon, Polygon
    from shapely.geometry.polygon import orient

    if isinstance(value, Polygon):
        return orient(value, 1.0)
    if isinstance(value, MultiPolygon):
        return MultiPolygon([orient(p, 1.0) for p in value.geoms])
    return value


def _plain(value: Any) -> Any:
    """Tuples (as shapely's ``mapping`` returns them) to lists of floats: plain JSON."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
