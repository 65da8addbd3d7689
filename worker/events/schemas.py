"""Generated contract documents: JSON Schemas, the AsyncAPI 3.0 document and example messages.

Everything under ``schemas/`` is derived from the pydantic models and the examples below, so the
committed files cannot drift from the code: :func:`render` builds every file's text, :func:`write`
writes them and :func:`differences` (``tasking-worker schemas --check``) names the files that
differ. Output is deterministic: JSON with sorted keys and a trailing newline, YAML in a fixed
order.

Inputs are described in pydantic's *validation* mode (what the worker accepts), outputs in
*serialization* mode (what it publishes; every field is always present). A few rules that the
models enforce in code are added to the schemas by hand (the polygon's ring sizes and coordinate
ranges, the provider/product pairing) so that schema validators catch them too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from worker.events.codec import DEFAULT_SOURCE, DeadLetterCode, EventType, rfc3339
from worker.events.delivery import EXTENSIONS, STAC_VERSION, DeliveryEvent
from worker.events.geometry import MAX_POSITIONS, MIN_POSITIONS
from worker.events.models import (
    OPTIONAL_OUTPUT_FIELD,
    REQUEST_ID_PATTERN,
    AcquisitionEvent,
    Command,
    ContractModel,
    DeadLetter,
    OrderRequest,
    OrderStatusEvent,
    Provider,
)
from worker.events.status import OrderStatus, stapi_status

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE: Final = "asyncapi.yaml"
EXAMPLES_DIR: Final = "examples"

Mode = Literal["validation", "serialization"]


class SchemaSpec:
    """One message of the contract: its model, file, CloudEvents type and direction.

    ``model`` is ``DeliveryEvent`` for the delivery message, whose JSON form is a STAC Item
    (:func:`delivery_schema`), not the model's own dump."""

    def __init__(
        self,
        name: str,
        model: type[ContractModel] | type[DeliveryEvent],
        ce_type: EventType,
        mode: Mode,
        title: str,
    ) -> None:
        self.name = name
        self.model = model
        self.ce_type = ce_type
        self.mode: Mode = mode
        self.title = title

    @property
    def file(self) -> str:
        return f"{self.name}.json"


SPECS: Final = (
    SchemaSpec("order-request", OrderRequest, EventType.ORDER_REQUESTED, "validation", "OrderRequest"),
    SchemaSpec("command", Command, EventType.ORDER_COMMAND, "validation", "Command"),
    SchemaSpec(
        "order-status-event", OrderStatusEvent, EventType.ORDER_STATUS, "serialization", "OrderStatusEvent"
    ),
    SchemaSpec(
        "acquisition-event",
        AcquisitionEvent,
        EventType.ACQUISITION_STATUS,
        "serialization",
        "AcquisitionEvent",
    ),
    SchemaSpec("delivery-event", DeliveryEvent, EventType.DELIVERY, "serialization", "DeliveryEvent"),
    SchemaSpec("dead-letter", DeadLetter, EventType.DEAD_LETTER, "serialization", "DeadLetter"),
)
SPEC_BY_NAME: Final = {spec.name: spec for spec in SPECS}


# --------------------------------------------------------------------------- JSON Schemas


def json_schema(spec: SchemaSpec) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one message, with the hand-added rules."""
    if spec.model is DeliveryEvent:
        return delivery_schema(spec)
    schema = spec.model.model_json_schema(by_alias=True, mode=spec.mode)
    _drop_property_titles(schema)
    if spec.mode == "serialization":
        _all_properties_required(schema)
    if spec.model is OrderRequest:
        _tighten_order_request(schema)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:tasking-worker:schema:{spec.name}:v1",
        **schema,
        "title": spec.title,
        "x-cloudevents-type": spec.ce_type.value,
    }


def delivery_schema(spec: SchemaSpec) -> dict[str, Any]:
    """The DeliveryEvent: the parts of a STAC 1.1.0 Item the contract fixes (CONTRACT §4.4).

    Self-contained on purpose (no remote ``$ref``): the complete check of an item is STAC core
    1.1.0 plus its extensions, whose schemas ship in ``worker/events/stac_schemas`` and which
    ``worker.events.stac_validation`` applies offline.
    """
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    asset = {
        "type": "object",
        "required": ["href"],
        "properties": {
            "href": {"type": "string", "format": "uri", "description": "stable provider URL, never signed"},
            "type": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "title": {"type": "string"},
            "file:size": {"type": "integer", "minimum": 0},
            "file:checksum": {"type": "string", "pattern": "^[a-f0-9]+$"},
            "auth:refs": {"type": "array", "items": {"type": "string"}},
        },
    }
    time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:tasking-worker:schema:{spec.name}:v1",
        "title": spec.title,
        "description": "A delivered product as a STAC 1.1.0 Item (CONTRACT §4.4). This schema "
        "fixes what the contract adds; validate the whole item against STAC core "
        f"{STAC_VERSION} and the listed extensions (shipped offline in "
        "worker/events/stac_schemas).",
        "type": "object",
        "required": [
            "type",
            "stac_version",
            "stac_extensions",
            "id",
            "geometry",
            "properties",
            "links",
            "assets",
        ],
        "properties": {
            "type": {"const": "Feature"},
            "stac_version": {"const": STAC_VERSION},
            "stac_extensions": {"type": "array", "items": {"enum": list(EXTENSIONS)}, "uniqueItems": True},
            "id": {"type": "string", "minLength": 1, "description": "the provider's id of the item"},
            "geometry": {"type": ["object", "null"], "description": "GeoJSON geometry, WGS84"},
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4},
            "properties": {
                "type": "object",
                "required": [
                    "datetime",
                    "tasking:request_id",
                    "tasking:provider",
                    "tasking:provider_refs",
                    "tasking:acquisition_ids",
                ],
                "properties": {
                    "datetime": time,
                    "start_datetime": time,
                    "end_datetime": time,
                    "expires": {"type": "string", "format": "date-time"},
                    "eo:cloud_cover": {"type": "number", "minimum": 0, "maximum": 100},
                    "view:incidence_angle": {"type": "number", "minimum": 0, "maximum": 90},
                    "tasking:request_id": {"type": "string", "pattern": REQUEST_ID_PATTERN},
                    "tasking:provider": {"enum": ["oneatlas", "up42"]},
                    "tasking:provider_refs": strings,
                    "tasking:acquisition_ids": {"type": "array", "items": {"type": "string"}},
                    "auth:schemes": {"type": "object"},
                },
            },
            "assets": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": asset,
                "description": "at least one asset has the role data",
            },
            "links": {
                "type": "array",
                "items": {"type": "object", "required": ["rel", "href"]},
            },
        },
        "x-cloudevents-type": spec.ce_type.value,
    }


def _objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The top-level schema and every ``$defs`` entry."""
    return [schema, *schema.get("$defs", {}).values()]


def _drop_property_titles(schema: dict[str, Any]) -> None:
    # pydantic titles every property after its Python name ("Maxcloudcover"): noise in the docs.
    for obj in _objects(schema):
        for prop in obj.get("properties", {}).values():
            prop.pop("title", None)


def _all_properties_required(schema: dict[str, Any]) -> None:
    # The worker serialises every field (nulls included), so consumers may rely on each key;
    # except fields the contract makes optional, which others may write without (they are marked
    # in the model with OPTIONAL_OUTPUT_FIELD).
    for obj in _objects(schema):
        if "properties" in obj:
            properties = obj["properties"]
            optional = {name for name, prop in properties.items() if prop.pop(OPTIONAL_OUTPUT_FIELD, False)}
            obj["required"] = [name for name in properties if name not in optional]


def _tighten_order_request(schema: dict[str, Any]) -> None:
    position = {
        "type": "array",
        "prefixItems": [
            {"type": "number", "minimum": -180, "maximum": 180},
            {"type": "number", "minimum": -90, "maximum": 90},
        ],
        "minItems": 2,
        "maxItems": 2,
    }
    ring = {"type": "array", "items": position, "minItems": MIN_POSITIONS, "maxItems": MAX_POSITIONS}
    polygon = schema["$defs"]["Polygon"]["properties"]
    polygon["coordinates"] = {
        "type": "array",
        "items": ring,
        "minItems": 1,
        "maxItems": 1,
        "description": "One closed, simple exterior ring (first position = last); no holes.",
    }
    schema["properties"]["requestId"]["pattern"] = REQUEST_ID_PATTERN
    schema["allOf"] = [
        _product_for("oneatlas", "OneAtlasProduct"),
        _product_for("up42", "Up42Product"),
    ]


def _product_for(provider: str, definition: str) -> dict[str, Any]:
    return {
        "if": {"properties": {"provider": {"const": provider}}, "required": ["provider"]},
        "then": {"properties": {"product": {"$ref": f"#/$defs/{definition}"}}},
    }


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
    from worker.providers.base import DeliveredProduct, ProductAsset

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


def spec_for(example_stem: str) -> SchemaSpec:
    """The message an example file is of, from its name (``order-request.xyz`` -> request)."""
    return SPEC_BY_NAME[example_stem.split(".", 1)[0]]


# --------------------------------------------------------------------------- AsyncAPI


class Channel:
    """A topic of CONTRACT §1 as the AsyncAPI document shows it."""

    def __init__(
        self, cid: str, address: str, spec: SchemaSpec | None, action: str, description: str
    ) -> None:
        self.cid = cid
        self.address = address
        self.spec = spec
        self.action = action
        self.description = description


CHANNELS: Final = (
    Channel(
        "orderRequests",
        "tasking.order-requests",
        SPEC_BY_NAME["order-request"],
        "receive",
        "Tasking requests. Keyed by requestId; co-partitioned with commands and worker-state.",
    ),
    Channel(
        "commands",
        "tasking.commands",
        SPEC_BY_NAME["command"],
        "receive",
        "Customer decisions about a request (approve, cancel, accept an acquisition, ...). "
        "Keyed by requestId; co-partitioned with order-requests.",
    ),
    Channel(
        "orderStatus",
        "tasking.order-status",
        SPEC_BY_NAME["order-status-event"],
        "send",
        "One event per status transition of a request, in order, sequence from 1.",
    ),
    Channel(
        "acquisitions",
        "tasking.acquisitions",
        SPEC_BY_NAME["acquisition-event"],
        "send",
        "Acquisitions (OneAtlas segments, Pléiades Neo coverage items, UP42 deliveries) "
        "when first seen and on every change of their status.",
    ),
    Channel(
        "deliveries",
        "tasking.deliveries",
        SPEC_BY_NAME["delivery-event"],
        "send",
        "One STAC Item per product the provider delivers for a request (an OneAtlas catalogue "
        "item, a UP42 STAC item), as soon as the worker sees it; exactly once per item, "
        "re-publishes keep the ce_id and the content.",
    ),
    Channel(
        "deadLetter",
        "tasking.dead-letter",
        SPEC_BY_NAME["dead-letter"],
        "send",
        "Input messages that could not be used, with the reason and the original bytes. "
        "Keyed by the original key (may be null).",
    ),
)


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the contract, from the worker's point of view."""
    channels: dict[str, Any] = {c.cid: _channel(c) for c in CHANNELS}
    channels["workerState"] = _worker_state_channel()
    operations: dict[str, Any] = {}
    for c in CHANNELS:
        operations[f"{c.action}{c.cid[0].upper()}{c.cid[1:]}"] = _operation(c.cid, c.action, c.description)
    operations["sendWorkerState"] = _operation(
        "workerState", "send", "Record the durable state of each order before acting on it."
    )
    operations["receiveWorkerState"] = _operation(
        "workerState", "receive", "Restore the state of the orders of newly assigned partitions."
    )
    return {
        "asyncapi": "3.0.0",
        "id": "urn:tasking-worker",
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Any Kafka cluster (TASKING_KAFKA__BOOTSTRAP_SERVERS). Topic names "
                "are defaults; each can be changed with TASKING_TOPICS__*.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": _components(),
    }


def _channel(channel: Channel) -> dict[str, Any]:
    assert channel.spec is not None
    return {
        "address": channel.address,
        "title": channel.address,
        "description": channel.description,
        "messages": {
            _message_id(channel.spec): {"$ref": f"#/components/messages/{_message_id(channel.spec)}"}
        },
        "bindings": {"kafka": {"topic": channel.address, "bindingVersion": "0.5.0"}},
    }


def _worker_state_channel() -> dict[str, Any]:
    return {
        "address": "tasking.worker-state",
        "title": "tasking.worker-state",
        "description": "Internal: the worker's own durable order state, one record per "
        "requestId, compacted. Co-partitioned with order-requests and commands. "
        "Its format belongs to the worker and may change without notice; other "
        "systems must not read or write it.",
        "messages": {"workerState": {"$ref": "#/components/messages/workerState"}},
        "bindings": {
            "kafka": {
                "topic": "tasking.worker-state",
                "topicConfiguration": {"cleanup.policy": ["compact"]},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _operation(cid: str, action: str, summary: str) -> dict[str, Any]:
    channel = f"#/channels/{cid}"
    message = (
        "workerState" if cid == "workerState" else _message_id(next(c for c in CHANNELS if c.cid == cid).spec)
    )
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": channel},
        "summary": summary,
        "messages": [{"$ref": f"{channel}/messages/{message}"}],
    }
    if action == "receive":
        operation["bindings"] = {
            "kafka": {
                "groupId": {
                    "type": "string",
                    "default": "tasking-worker",
                    "description": "TASKING_KAFKA__GROUP_ID",
                },
                "bindingVersion": "0.5.0",
            }
        }
    return operation


def _message_id(spec: SchemaSpec | None) -> str:
    assert spec is not None
    return spec.title[0].lower() + spec.title[1:]


def _components() -> dict[str, Any]:
    messages = {_message_id(spec): _message(spec) for spec in SPECS}
    messages["workerState"] = {
        "name": "WorkerState",
        "title": "Worker state (internal)",
        "contentType": "application/json",
        "payload": {"type": "object", "description": "Opaque to every other system."},
        "bindings": {"kafka": {"key": _key_schema(), "bindingVersion": "0.5.0"}},
    }
    schemas = {f"{_message_id(spec)}Headers": _headers_schema(spec) for spec in SPECS}
    return {"messages": messages, "schemas": schemas}


def _message(spec: SchemaSpec) -> dict[str, Any]:
    key = _key_schema()
    if spec.model is DeadLetter:
        key = {
            "type": ["string", "null"],
            "description": "The original record's key, unchanged (may be null).",
        }
    message: dict[str, Any] = {
        "name": spec.title,
        "title": spec.title,
        "summary": (spec.model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {"$ref": f"#/components/schemas/{_message_id(spec)}Headers"},
        "payload": {"$ref": f"./{spec.file}"},
        "bindings": {"kafka": {"key": key, "bindingVersion": "0.5.0"}},
        "examples": _message_examples(spec),
    }
    if spec.model is DeliveryEvent:
        message["correlationId"] = {"location": "$message.payload#/properties/tasking:request_id"}
        message["contentType"] = "application/geo+json"
    elif spec.model is not DeadLetter:
        message["correlationId"] = {"location": "$message.payload#/requestId"}
    return message


def _key_schema() -> dict[str, Any]:
    return {"type": "string", "pattern": REQUEST_ID_PATTERN, "description": "The requestId, UTF-8."}


def _headers_schema(spec: SchemaSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": _CE_ID[spec.name]},
        "ce_source": {"type": "string", "description": f"Configurable, default {DEFAULT_SOURCE}"},
        "ce_type": {"type": "string", "const": spec.ce_type.value},
        "ce_time": {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"},
        "ce_subject": {"type": "string", "description": "The requestId"},
        "content-type": {"type": "string", "const": "application/json"},
    }
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if spec.mode == "validation":
        properties["content-type"] = {
            "type": "string",
            "enum": ["application/json", "application/cloudevents+json"],
        }
        schema["description"] = (
            "Binary content mode as shown. Also accepted: structured mode (content-type "
            "application/cloudevents+json, the whole event in the value) and a bare JSON value "
            "with no ce_ headers, whose type is implied by the topic."
        )
    else:
        required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]
        schema["required"] = required if spec.model is DeadLetter else [*required, "ce_subject"]
        schema["description"] = "CloudEvents 1.0, Kafka protocol binding, binary content mode."
    return schema


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


def _info() -> dict[str, Any]:
    return {
        "title": "tasking-worker",
        "version": "1.0.0",
        "description": _DESCRIPTION + _status_table() + _dead_letter_table(),
        "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
    }


_DESCRIPTION: Final = """\
A Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42 and reports every step
as events. Every message is a CloudEvents 1.0 event over the Kafka protocol binding; outputs use
binary content mode (attributes as `ce_*` headers, the JSON data as the value). All JSON field
names are camelCase; times are RFC 3339 (UTC on output). Unknown input fields are refused
(dead-lettered). Events are delivered at least once; a re-published event keeps its `ce_id`.

"""

_STATUS_MEANING: Final = {
    OrderStatus.RECEIVED: "valid, durably accepted by the worker",
    OrderStatus.FEASIBLE: "the provider's feasibility answer is known (`feasibility` set)",
    OrderStatus.FEASIBILITY_PENDING: "a manual feasibility study runs at the provider",
    OrderStatus.QUOTED: "the price is known (`price` set); terminal for a `dryRun` request",
    OrderStatus.DECISION_REQUIRED: "waiting for a command from the customer (`decision` set)",
    OrderStatus.ORDERED: "the order is placed and activated at the provider",
    OrderStatus.IN_PROGRESS: "acquisitions are being made, or the provider finished and its "
    "products are still being delivered",
    OrderStatus.COMPLETED: "the tasking finished at the provider and its products are delivered "
    "(`reason.code` `DELIVERY_INCOMPLETE` when they did not all come in time)",
    OrderStatus.REJECTED: "invalid, infeasible, declined, over budget and refused",
    OrderStatus.CANCELLED: "cancelled by a command (`user_cancelled`) or by the provider (`cancelled`)",
    OrderStatus.FAILED: "unrecoverable provider or worker failure after retries",
    OrderStatus.EXPIRED: "the window or a decision deadline passed",
}


def _status_table() -> str:
    rows = [
        "## Order statuses and their STAPI codes",
        "",
        "| status | terminal | STAPI | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for status in OrderStatus:
        stapi = f"`{stapi_status(status).value}`"
        if status is OrderStatus.CANCELLED:
            stapi = f"`{stapi_status(status, by_user=True).value}` or {stapi}"
        terminal = "yes" if status.terminal else "no"
        rows.append(f"| `{status.value}` | {terminal} | {stapi} | {_STATUS_MEANING[status]} |")
    return "\n".join(rows) + "\n\n"


_DEAD_LETTER_MEANING: Final = {
    DeadLetterCode.MALFORMED_JSON: "the value is empty, not UTF-8 JSON, or not a JSON object",
    DeadLetterCode.SCHEMA_VIOLATION: "the JSON breaks the message schema "
    "(`error.details.errors` lists the camelCase field paths)",
    DeadLetterCode.KEY_MISMATCH: "the Kafka key is present and differs from `requestId`",
    DeadLetterCode.UNKNOWN_TYPE: "`ce_type` (or `ce_specversion`) is not the one of the topic",
    DeadLetterCode.TOO_LARGE: "the value exceeds the size limit (1 MiB by default; checked before "
    "parsing), or a request's first order state would exceed 750,000 bytes (3/4 of "
    "`TASKING_INTAKE__MAX_STATE_BYTES`; `error.details.stateSize`, `maxStateBytes`)",
    DeadLetterCode.UNKNOWN_REQUEST: "a command names a `requestId` this worker does not know",
    DeadLetterCode.REQUEST_ID_REUSED: "a request reuses a `requestId` already used by a request with "
    "other content (`error.details.firstOutcome` names the first request's latest status)",
    DeadLetterCode.INTERNAL_ERROR: "processing the message raised on each of its bounded attempts "
    "(`error.details.exception` names the class); the partition goes on",
}


def _dead_letter_table() -> str:
    rows = ["## Dead-letter codes", "", "| code | meaning |", "| --- | --- |"]
    rows += [f"| `{code.value}` | {text} |" for code, text in _DEAD_LETTER_MEANING.items()]
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- files


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml_text(value: Any) -> str:
    # Round-trip through JSON so YAML sees only plain types (no anchors, no Python tags).
    plain = json.loads(json.dumps(value))
    return yaml.dump(
        plain, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False
    )


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, so the Markdown descriptions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def render() -> dict[str, str]:
    """Every generated file (path relative to the schemas directory -> text)."""
    files = {spec.file: _json_text(json_schema(spec)) for spec in SPECS}
    files[ASYNCAPI_FILE] = _yaml_text(asyncapi_document())
    from worker.events import stac_tasking

    files[stac_tasking.FILE] = _json_text(stac_tasking.tasking_extension_schema())
    for stem, payload in example_payloads().items():
        files[f"{EXAMPLES_DIR}/{stem}.json"] = _json_text(payload)
    return files


def write(out: Path) -> list[Path]:
    """Write every generated file under ``out`` (created if needed); returns the paths written."""
    written = []
    for relative, text in render().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def differences(out: Path) -> list[str]:
    """Files under ``out`` that are missing, differ, or are stale examples (empty: up to date)."""
    expected = render()
    problems = []
    for relative, text in expected.items():
        path = out / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{relative}: differs from the models")
    examples = out / EXAMPLES_DIR
    if examples.is_dir():
        for path in sorted(examples.glob("*.json")):
            if f"{EXAMPLES_DIR}/{path.name}" not in expected:
                problems.append(f"{EXAMPLES_DIR}/{path.name}: not generated (stale)")
    return problems
