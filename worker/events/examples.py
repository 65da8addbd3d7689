"""Example messages of the contract, one per message type and case: they go into ``schemas/examples/``
and into the AsyncAPI document, and every one is validated against its schema by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from worker.events.codec import DEFAULT_SOURCE, EventType, rfc3339
from worker.events.delivery import DeliveryEvent
from worker.events.models import AcquisitionEvent, ContractModel, DeadLetter, OrderStatusEvent, Provider
from worker.events.schemas import SchemaSpec, spec_for
from worker.events.status import OrderStatus, stapi_status

# --------------------------------------------------------------------------- examples
_T0: Final = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


TOULOUSE: Final = [
    [[1.3600, 43.5700], [1.5000, 43.5700], [1.5000, 43.6700], [1.3600, 43.6700], [1.3600, 43.5700]]
]


PANAMA: Final = [
    [[-79.5800, 8.9300], [-79.4500, 8.9300], [-79.4500, 9.0500], [-79.5800, 9.0500], [-79.5800, 8.9300]]
]


UP42_PLEIADES_PRODUCT: Final = "bd102407-1814-4f92-8b5a-7697b7a73f5a"


def _window(days: int) -> dict[str, str]:
    return {"start": "2025-06-02T00:00:00Z", "end": f"2025-06-{2 + days:02d}T00:00:00Z"}


def input_examples() -> dict[str, dict[str, Any]]:
    """Example inputs as a sender writes them (file stem -> message)."""
    requests: dict[str, dict[str, Any]] = {
        "order-request.oneatlas-oneplan-toulouse": {
            "requestId": "req-toulouse-2025-06-001",
            "provider": "oneatlas",
            "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"},
            "aoi": {"type": "Polygon", "coordinates": TOULOUSE},
            "window": _window(28),
            "constraints": {"maxCloudCover": 20, "maxIncidenceAngle": 30},
            "processing": {
                "processingLevel": "ortho",
                "spectralProcessing": "bundle",
                "pixelCoding": "12bits",
                "imageFormat": "image/jp2",
                "projection": "32631",
            },
            "budget": {"maxAmount": 2500, "currency": "EUR"},
            "customerReference": "toulouse-urban-2025",
            "acquisitionPolicy": {"autoAccept": {"maxCloudCover": 15}, "autoRefuse": False},
            "displayName": "Toulouse city centre",
        },
        "order-request.up42-pleiades-panama": {
            "requestId": "req-panama-2025-06-001",
            "provider": "up42",
            "product": {"dataProductId": UP42_PLEIADES_PRODUCT},
            "aoi": {"type": "Polygon", "coordinates": PANAMA},
            "window": _window(21),
            "constraints": {"maxCloudCover": 10, "maxIncidenceAngle": 25},
            "budget": {"maxAmount": 400000, "currency": "CREDITS"},
            "autoApprove": False,
            "displayName": "Panama City port",
        },
        "order-request.oneatlas-pneo-stereo-dry-run": {
            "requestId": "req-toulouse-2025-06-002",
            "provider": "oneatlas",
            "product": {"mission": "PLEIADESNEO", "programmingType": "ONEDAY"},
            "aoi": {"type": "Polygon", "coordinates": TOULOUSE},
            "window": _window(7),
            "constraints": {"acquisitionMode": "STEREO", "minBH": 0.25, "maxBH": 0.6},
            "dryRun": True,
        },
        "order-request.auto-pleiades-toulouse": {
            "requestId": "req-toulouse-2025-06-003",
            "provider": "auto",
            "candidates": [
                {"provider": "oneatlas", "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"}},
                {"provider": "up42", "product": {"dataProductId": UP42_PLEIADES_PRODUCT}},
            ],
            "routing": {"prefer": "cheapest", "fallback": True},
            "aoi": {"type": "Polygon", "coordinates": TOULOUSE},
            "window": _window(28),
            "constraints": {"maxCloudCover": 20},
            "budget": {"maxAmount": 2500, "currency": "EUR"},
        },
    }
    commands = {
        f"command.{name}": _command(name, extra)
        for name, extra in (
            ("approve", {"reason": "price within the project budget", "issuedBy": "ops@example.org"}),
            ("reject", {"reason": "too expensive"}),
            ("cancel", {"reason": "no longer needed", "issuedBy": "ops@example.org"}),
            ("select-feasibility-option", {"optionId": "attempt-2"}),
            ("select-offer", {"optionId": "up42-2", "issuedBy": "ops@example.org"}),
            ("accept-acquisition", {"acquisitionId": "DS_PHR1A_202506101045"}),
            ("refuse-acquisition", {"acquisitionId": "DS_PHR1A_202506081052", "reason": "haze over the AOI"}),
        )
    }
    return {**requests, **commands}


def _command(name: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestId": "req-toulouse-2025-06-001",
        "commandId": f"cmd-{name}-0001",
        "command": name,
        **extra,
    }


def output_examples() -> dict[str, ContractModel]:
    """Example outputs as the worker publishes them (file stem -> model)."""
    return {
        "order-status-event": OrderStatusEvent.model_validate(
            {
                "requestId": "req-toulouse-2025-06-001",
                "provider": "oneatlas",
                "sequence": 4,
                "status": "ORDERED",
                "previousStatus": "QUOTED",
                "stapiStatus": stapi_status(OrderStatus.ORDERED),
                "occurredAt": _T0,
                "providerRefs": {
                    "quotationId": "Q-20250602-0042",
                    "salesOrderId": "SO-771203",
                    "taskingId": "ICR-0063311",
                },
                "feasibility": {
                    "automation": "AUTOMATIC",
                    "classification": "EASY",
                    "programmingType": "ONEPLAN",
                },
                "price": {"amount": 1830.5, "currency": "EUR", "areaKm2": 125.4},
            }
        ),
        "order-status-event.decision-required": OrderStatusEvent.model_validate(
            {
                "requestId": "req-panama-2025-06-001",
                "provider": "up42",
                "sequence": 3,
                "status": "DECISION_REQUIRED",
                "previousStatus": "QUOTED",
                "stapiStatus": stapi_status(OrderStatus.DECISION_REQUIRED),
                "occurredAt": _T0,
                "providerRefs": {"orderId": "b0f3c5d2-4a51-4c4e-9d2b-3f3c2e0a9e11"},
                "price": {"amount": 312000, "currency": "CREDITS", "areaKm2": 171.6},
                "decision": {
                    "kind": "approve-price",
                    "options": [{"id": "approve", "description": "order at 312000 CREDITS"}],
                    "deadline": "2025-06-04T08:00:00Z",
                },
            }
        ),
        # A request without a budget, priced above the deployment's ceiling (ADR 0007).
        "order-status-event.no-budget": OrderStatusEvent.model_validate(
            {
                "requestId": "req-toulouse-2025-06-002",
                "provider": "oneatlas",
                "sequence": 4,
                "status": "DECISION_REQUIRED",
                "previousStatus": "QUOTED",
                "stapiStatus": stapi_status(OrderStatus.DECISION_REQUIRED),
                "occurredAt": _T0,
                "price": {"amount": 6120.0, "currency": "EUR", "areaKm2": 125.4},
                "decision": {
                    "kind": "approve-price",
                    "options": [
                        {"id": "approve", "description": "order at 6120 EUR"},
                        {"id": "reject", "description": "decline the order"},
                    ],
                    "deadline": "2025-06-04T08:00:00Z",
                },
                "reason": {
                    "code": "NO_BUDGET",
                    "message": "the request has no budget; the price 6120 EUR is above the "
                    "deployment's ceiling of 5000 EUR: approve it by command",
                    "details": {"amount": 6120.0, "currency": "EUR", "ceiling": 5000},
                },
            }
        ),
        "order-status-event.offers": OrderStatusEvent.model_validate(
            {
                "requestId": "req-toulouse-2025-06-003",
                "provider": "auto",
                "sequence": 2,
                "status": "QUOTED",
                "previousStatus": "RECEIVED",
                "stapiStatus": stapi_status(OrderStatus.QUOTED),
                "occurredAt": _T0,
                "offers": [
                    {
                        "id": "up42-2",
                        "provider": "up42",
                        "product": {"dataProductId": UP42_PLEIADES_PRODUCT},
                        "price": {"amount": 98000, "currency": "CREDITS", "areaKm2": 125.4},
                        "comparablePrice": {"amount": 980, "currency": "EUR"},
                        "status": "OFFERED",
                    },
                    {
                        "id": "oneatlas-1",
                        "provider": "oneatlas",
                        "product": {"mission": "PLEIADES", "programmingType": "ONEPLAN"},
                        "price": {"amount": 1830.5, "currency": "EUR", "areaKm2": 125.4},
                        "comparablePrice": {"amount": 1830.5, "currency": "EUR"},
                        "feasibility": {
                            "automation": "AUTOMATIC",
                            "classification": "EASY",
                            "programmingType": "ONEPLAN",
                        },
                        "status": "OFFERED",
                    },
                ],
            }
        ),
        "acquisition-event": AcquisitionEvent.model_validate(
            {
                "requestId": "req-toulouse-2025-06-001",
                "provider": "oneatlas",
                "acquisitionId": "DS_PHR1A_202506101045",
                "status": "PROPOSED",
                "decidedBy": "provider",
                "acquiredAt": "2025-06-10T10:45:12Z",
                "cloudCover": 8.5,
                "incidenceAngle": 14.2,
                "footprint": {"type": "Polygon", "coordinates": TOULOUSE},
                "providerRefs": {"taskingId": "ICR-0063311", "satellite": "PHR1A"},
                "occurredAt": "2025-06-10T12:00:00Z",
            }
        ),
        "dead-letter": DeadLetter.model_validate(
            {
                "error": {
                    "code": "SCHEMA_VIOLATION",
                    "message": "invalid request: window: Value error, window.end must be after window.start",
                    "details": {
                        "errorCount": 1,
                        "errors": [
                            {
                                "field": "window",
                                "type": "value_error",
                                "message": "Value error, window.end must be after window.start",
                            }
                        ],
                    },
                },
                "source": {
                    "topic": "tasking.order-requests",
                    "partition": 3,
                    "offset": 1204,
                    "key": "req-bad-window-1",
                    "headers": {"ce_type": EventType.ORDER_REQUESTED.value},
                },
                "payload": '{"requestId":"req-bad-window-1","provider":"up42","window":{"start":'
                '"2025-06-10T00:00:00Z","end":"2025-06-01T00:00:00Z"}}',
                "receivedAt": _T0,
            }
        ),
    }


def delivery_example() -> DeliveryEvent:
    """An UP42 delivery as the worker publishes it (a CNAM item of the reference)."""
    from worker.events.products import DeliveredProduct, ProductAsset

    api = "https://api.up42.com/v2/assets"
    product = DeliveredProduct(
        item_id="363e7831-48ff-4311-83c1-a37d3ef54b66",
        tracking_key="b0f3c5d2-4a51-4c4e-9d2b-3f3c2e0a9e11",
        geometry={"type": "Polygon", "coordinates": PANAMA},
        bbox=[-79.6418, 8.8703, -79.4387, 9.0727],
        datetime=datetime(2025, 6, 12, 15, 30, 26, 600000, tzinfo=UTC),
        properties={
            "platform": "pleiades-1a",
            "constellation": "pleiades",
            "instruments": ["hiri"],
            "up42:platform": "PHR-1A",
            "up42:constellation": "PHR",
            "gsd": 0.5,
            "eo:cloud_cover": 3.5,
            "view:incidence_angle": 12.4,
            "proj:code": "EPSG:32617",
        },
        refs={
            "orderId": "b0f3c5d2-4a51-4c4e-9d2b-3f3c2e0a9e11",
            "assetId": "22d0b8e9-b649-4971-8adc-1a5eac1fa6f3",
            "collectionId": "7947d269-117a-4954-8cab-adf6be623ca9",
        },
        source_ids=["363e7831-48ff-4311-83c1-a37d3ef54b66"],
        assets=[
            ProductAsset(
                key="multispectral",
                href=f"{api}/e4a15000-890b-445c-82bb-e4364baac40b",
                media_type="image/tiff; application=geotiff; profile=cloud-optimized",
                roles=["data", "multispectral"],
                title="Multispectral data",
                size=73400320,
                checksum="d501104b2c7e5e8a7c3c1a2a6f0a3b1c9d8e7f",
                fields={
                    "proj:code": "EPSG:32617",
                    "proj:shape": [11254, 11170],
                    "proj:transform": [2.0, 0.0, 620000.0, 0.0, -2.0, 1003400.0],
                },
            ),
            ProductAsset(
                key="archive",
                href=f"{api}/22d0b8e9-b649-4971-8adc-1a5eac1fa6f3",
                media_type="application/zip",
                roles=["data", "original"],
                title="Original Delivery",
            ),
        ],
        via=f"{api}/stac/collections/7947d269-117a-4954-8cab-adf6be623ca9/items/363e7831-48ff-4311-83c1-a37d3ef54b66",
    )
    return DeliveryEvent(
        request_id="req-panama-2025-06-001",
        provider=Provider.UP42,
        product=product,
        acquisition_ids=["363e7831-48ff-4311-83c1-a37d3ef54b66"],
        occurred_at=datetime(2025, 6, 13, 8, 0, tzinfo=UTC),
    )


def example_payloads() -> dict[str, dict[str, Any]]:
    """Every example as JSON (file stem -> payload); inputs are validated on the way."""
    payloads: dict[str, dict[str, Any]] = {}
    for stem, message in input_examples().items():
        model = spec_for(stem).model
        assert issubclass(model, ContractModel)
        model.model_validate(message)  # an invalid example is a bug here
        payloads[stem] = message
    for stem, model_instance in output_examples().items():
        payloads[stem] = model_instance.to_json_dict()
    payloads["delivery-event"] = delivery_example().stac_item()
    return payloads


_CE_ID: Final = {
    "order-request": "Any unique id chosen by the sender",
    "command": "Any unique id chosen by the sender",
    "order-status-event": "{requestId}:{sequence}, deterministic",
    "acquisition-event": "{requestId}:{acquisitionId}:{n}, deterministic",
    "delivery-event": "{requestId}:delivery:{itemId}, deterministic",
    "dead-letter": "{sourceTopic}:{partition}:{offset}, deterministic",
}


def _message_examples(spec: SchemaSpec) -> list[dict[str, Any]]:
    examples = []
    for stem, payload in sorted(example_payloads().items()):
        if spec_for(stem) is spec:
            name = stem.split(".", 1)[1] if "." in stem else stem
            examples.append({"name": name, "headers": _example_headers(spec, payload), "payload": payload})
    return examples


def _example_headers(spec: SchemaSpec, payload: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        "ce_specversion": "1.0",
        "ce_id": _example_ce_id(spec, payload),
        "ce_source": DEFAULT_SOURCE,
        "ce_type": spec.ce_type.value,
        "ce_time": payload.get("occurredAt") or payload.get("receivedAt") or rfc3339(_T0),
    }
    if spec.model is DeliveryEvent:
        headers["ce_time"] = rfc3339(delivery_example().occurred_at)
        headers["ce_subject"] = payload["properties"]["tasking:request_id"]
    if "requestId" in payload:
        headers["ce_subject"] = payload["requestId"]
    headers["content-type"] = "application/json"
    return headers


def _example_ce_id(spec: SchemaSpec, payload: Mapping[str, Any]) -> str:
    """The ``ce_id`` the codec gives such an event (senders of inputs choose their own)."""
    if spec.model is OrderStatusEvent:
        return f"{payload['requestId']}:{payload['sequence']}"
    if spec.model is AcquisitionEvent:
        return f"{payload['requestId']}:{payload['acquisitionId']}:1"
    if spec.model is DeliveryEvent:
        return f"{payload['properties']['tasking:request_id']}:delivery:{payload['id']}"
    if spec.model is DeadLetter:
        src = payload["source"]
        return f"{src['topic']}:{src['partition']}:{src['offset']}"
    return str(payload.get("commandId", payload["requestId"]))
