"""AOI validity rules shared by the request model and the providers (CONTRACT §3.1).

Shapely decides simplicity (no self-intersection); the other rules are checked first so each
failure names exactly what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

from shapely.geometry import LinearRing

MIN_POSITIONS = 4
MAX_POSITIONS = 999


def validate_polygon_rings(rings: Sequence[Sequence[tuple[float, float]]]) -> None:
    """Raise ``ValueError`` with a precise message unless ``rings`` is one valid WGS84 ring.

    Rules: exactly one ring (no holes); 4..999 positions; first equals last; lon in [-180, 180]
    and lat in [-90, 90]; not self-intersecting.
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
    if not LinearRing(ring).is_simple:
        raise ValueError("aoi ring intersects itself")
