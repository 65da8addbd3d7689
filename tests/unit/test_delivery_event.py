"""The DeliveryEvent: a STAC 1.1.0 Item that validates against the shipped schemas, with only the
extensions it uses, a deterministic ce_id and identical bytes when published again."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema
import orjson
import pytest

from worker.events.codec import EventType, encode_delivery
from worker.events.delivery import AUTHENTICATION, EO, FILE, PROJECTION, TIMESTAMPS, VIEW, DeliveryEvent
from worker.events.models import Provider
from worker.events.products import DeliveredProduct, ProductAsset
from worker.events.stac_validation import UnknownExtension, validate_item

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLYGON = {"type": "Polygon", "coordinates": [[[1.0, 43.0], [1.1, 43.0], [1.1, 43.1], [1.0, 43.0]]]}


def product(**extra: object) -> DeliveredProduct:
    values: dict[str, object] = {
        "item_id": "item-1",
        "tracking_key": "SO-1",
        "geometry": POLYGON,
        "bbox": [1.0, 43.0, 1.1, 43.1],
        "datetime": AT,
        "properties": {"eo:cloud_cover": 4.0, "view:incidence_angle": 12.5, "platform": "PHR1A", "gsd": 0.5},
        "refs": {"salesOrderId": "SO-1"},
        "source_ids": ["DS_1"],
        "assets": [
            ProductAsset(
                key="data",
                href="https://provider.example/items/item-1/download",
                media_type="application/zip",
                roles=["data"],
                size=1234,
                checksum="d50110" + "1f2b" * 8,
            ),
            ProductAsset(
                key="quicklook", href="https://provider.example/ql", roles=["overview"], needs_auth=False
            ),
        ],
        "via": "https://provider.example/items/item-1",
    }
    values.update(extra)
    return DeliveredProduct.model_validate(values)


def event(p: DeliveredProduct | None = None, ids: list[str] | None = None) -> DeliveryEvent:
    return DeliveryEvent(
        request_id="req-1",
        provider=Provider.ONEATLAS,
        product=p or product(),
        acquisition_ids=ids or [],
        occurred_at=AT,
    )


def test_the_item_validates_and_carries_the_contract_fields() -> None:
    item = event(ids=["seg-1"]).stac_item()
    validate_item(item)
    assert item["stac_version"] == "1.1.0"
    assert item["id"] == "item-1"
    props = item["properties"]
    assert props["tasking:request_id"] == "req-1"
    assert props["tasking:provider"] == "oneatlas"
    assert props["tasking:provider_refs"] == {"salesOrderId": "SO-1"}
    assert props["tasking:acquisition_ids"] == ["seg-1"]
    assert props["datetime"] == "2026-03-01T12:00:00Z"
    assert item["stac_extensions"] == [EO, VIEW, FILE, AUTHENTICATION]
    assert item["assets"]["data"]["auth:refs"] == ["oneatlas"]
    assert "auth:refs" not in item["assets"]["quicklook"]
    assert item["assets"]["data"]["file:size"] == 1234
    assert props["auth:schemes"]["oneatlas"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the oneatlas access token of the account that placed the order",
    }
    assert item["collection"] == "oneatlas-pleiades"
    assert item["links"] == [
        {"rel": "collection", "href": "../collections/oneatlas-pleiades.json", "type": "application/json"},
        {"rel": "via", "href": "https://provider.example/items/item-1", "type": "application/geo+json"},
    ]


def test_a_public_base_url_adds_self_parent_and_root_links_and_via_stays() -> None:
    item = event().stac_item("https://stac.example/api/")
    validate_item(item)
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links == {
        "self": "https://stac.example/api/collections/oneatlas-pleiades/items/item-1",
        "collection": "https://stac.example/api/collections/oneatlas-pleiades",
        "parent": "https://stac.example/api/collections/oneatlas-pleiades",
        "root": "https://stac.example/api/",
        "via": "https://provider.example/items/item-1",
    }


def test_a_range_only_product_and_timestamps_and_projection() -> None:
    ranged = product(
        datetime=None,
        start_datetime=AT,
        end_datetime=AT.replace(hour=13),
        properties={
            "expires": "2027-03-01T00:00:00Z",
            "proj:code": "EPSG:32631",
            "processing:level": "ORTHO",
        },
    )
    item = event(ranged).stac_item()
    validate_item(item)
    assert item["properties"]["datetime"] is None
    assert item["properties"]["start_datetime"] == "2026-03-01T12:00:00Z"
    assert TIMESTAMPS in item["stac_extensions"]
    assert PROJECTION in item["stac_extensions"]


def test_schema_violations_are_caught_offline() -> None:
    item = event().stac_item()
    item["properties"]["eo:cloud_cover"] = 140
    with pytest.raises(jsonschema.ValidationError):
        validate_item(item)
    item = event().stac_item()
    del item["properties"]["datetime"]
    with pytest.raises(jsonschema.ValidationError):
        validate_item(item)
    item = event().stac_item()
    item["stac_extensions"].append("https://stac-extensions.github.io/sat/v1.0.0/schema.json")
    with pytest.raises(UnknownExtension):
        validate_item(item)


def test_encoded_record_has_a_deterministic_id_and_identical_bytes_when_published_again() -> None:
    first = encode_delivery(event())
    again = encode_delivery(event())
    headers = dict(first.headers)
    assert headers["ce_id"] == b"req-1:delivery:item-1"
    assert headers["ce_type"] == EventType.DELIVERY.value.encode() == b"tasking.delivery.v1"
    assert first.key == b"req-1"
    assert first.value == again.value
    validate_item(orjson.loads(first.value))


def test_the_published_example_is_a_valid_stac_item() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "delivery-event.json"
    validate_item(orjson.loads(example.read_bytes()))
