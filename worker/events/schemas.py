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

from typing import Any, Final, Literal

from worker.events.codec import EventType
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
)

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


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


def spec_for(example_stem: str) -> SchemaSpec:
    """The message an example file is of, from its name (``order-request.xyz`` -> request)."""
    return SPEC_BY_NAME[example_stem.split(".", 1)[0]]
