"""Item geometry: tight bbox from the geometry, counter-clockwise rings, the same result from
GeoJSON or WKT, footprints across the antimeridian split as RFC 7946 says, and near the poles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from shapely.geometry import shape

from worker.events.delivery import DeliveryEvent
from worker.events.geometry import normalized
from worker.events.models import Provider
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.stac_validation import validate_item
from worker.wkt import wkt_to_geojson

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# UP42's recorded example: clockwise, and a bbox looser than the geometry.
CLOCKWISE = [[[13.3552, 52.5268], [13.3573, 52.5244], [13.3510, 52.5244], [13.3552, 52.5268]]]


def item_of(geometry: dict[str, Any], bbox: list[float] | None = None) -> dict[str, Any]:
    product = DeliveredProduct(
        item_id="i-1",
        tracking_key="o-1",
        geometry=geometry,
        bbox=bbox,
        datetime=AT,
        properties={"platform": "pleiades-1a", "constellation": "pleiades"},
        assets=[ProductAsset(key="data", href="https://p.example/d", roles=["data"])],
    )
    return DeliveryEvent(request_id="r", provider=Provider.UP42, product=product, occurred_at=AT).stac_item()


def test_rings_are_counter_clockwise_and_the_bbox_is_the_geometry_s() -> None:
    item = item_of({"type": "Polygon", "coordinates": CLOCKWISE}, bbox=[13.3, 52.5, 13.4, 52.6])
    validate_item(item)
    polygon = shape(item["geometry"])
    assert polygon.exterior.is_ccw
    assert item["bbox"] == pytest.approx([13.3510, 52.5244, 13.3573, 52.5268])


def test_the_same_footprint_from_wkt_or_geojson_gives_the_same_item() -> None:
    wkt = "POLYGON ((13.3552 52.5268, 13.3573 52.5244, 13.351 52.5244, 13.3552 52.5268))"
    from_wkt = item_of(wkt_to_geojson(wkt))
    from_geojson = item_of({"type": "Polygon", "coordinates": CLOCKWISE})
    assert from_wkt["geometry"] == from_geojson["geometry"]
    assert from_wkt["bbox"] == from_geojson["bbox"]


def test_a_footprint_across_the_antimeridian_is_split_with_a_wrapping_bbox() -> None:
    ring = [[179.8, -16.9], [-179.8, -16.9], [-179.8, -16.6], [179.8, -16.6], [179.8, -16.9]]
    item = item_of({"type": "Polygon", "coordinates": [ring]})
    validate_item(item)
    assert item["geometry"]["type"] == "MultiPolygon"
    parts = [shape({"type": "Polygon", "coordinates": c}) for c in item["geometry"]["coordinates"]]
    assert all(p.exterior.is_ccw for p in parts)
    assert sorted(round(p.bounds[0], 6) for p in parts) == [-180.0, 179.8]
    west, south, east, north = item["bbox"]
    assert west == pytest.approx(179.8)
    assert east == pytest.approx(-179.8)
    assert (south, north) == pytest.approx((-16.9, -16.6))


@pytest.mark.parametrize("lat", [89.5, -89.5])
def test_a_footprint_near_a_pole_keeps_its_shape(lat: float) -> None:
    ring = [[10.0, lat], [10.4, lat], [10.4, lat - 0.2 if lat > 0 else lat + 0.2], [10.0, lat]]
    geometry, bbox = normalized({"type": "Polygon", "coordinates": [ring]})
    assert shape(geometry).exterior.is_ccw
    assert shape(geometry).equals(shape({"type": "Polygon", "coordinates": [ring]}))
    assert bbox == pytest.approx(list(shape(geometry).bounds))
