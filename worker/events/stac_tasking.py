"""The JSON Schema of the ``tasking:*`` item fields, published as ``schemas/stac-extension-tasking.json``.

A STAC extension schema in the official layout (draft 07, fields checked in ``properties``,
undeclared ``tasking:`` fields refused). Its ``$id`` names no server (``.invalid``): the project
does not host it, so items do not list it in ``stac_extensions`` (a validator would try to fetch
it and fail); consumers validate ``tasking:*`` with the published file. The tests validate every
item the worker builds against it.

This module does no I/O.
"""

from __future__ import annotations

from typing import Any, Final

from worker.events.models import REQUEST_ID_PATTERN, Provider

SCHEMA_ID: Final = "https://tasking-worker.invalid/stac-extensions/tasking/v1.0.0/schema.json"
FILE: Final = "stac-extension-tasking.json"


def tasking_extension_schema() -> dict[str, Any]:
    """The schema (see the module docstring)."""
    fields = {
        "tasking:request_id": {
            "title": "The requestId of the order request the product was delivered for",
            "type": "string",
            "pattern": REQUEST_ID_PATTERN,
        },
        "tasking:provider": {
            "title": "The provider that delivered the product",
            "type": "string",
            "enum": [p.value for p in Provider if p.value != "auto"],
        },
        "tasking:provider_refs": {
            "title": "Provider ids that link the product to the order",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "tasking:acquisition_ids": {
            "title": "The acquisitionIds (tasking.acquisitions) the product was made from",
            "type": "array",
            "items": {"type": "string"},
            "uniqueItems": True,
        },
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "tasking-worker delivery fields",
        "description": "The tasking:* fields of the STAC Items published on tasking.deliveries.",
        "type": "object",
        "required": ["type", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "properties": {
                "type": "object",
                "required": list(fields),
                "properties": fields,
                "patternProperties": {"^(?!tasking:)": {}},
                "additionalProperties": False,
            },
        },
    }
