"""Order-parameter JSON Schemas and collections served by the UP42 simulator.

The Pléiades tasking schema is reconstructed from the provider reference (``up42-api.md`` §2.3,
itself from the SDK fixture ``data_product_schema_phr_tasking.json``): draft-07, the same required
fields, enum-like definitions written as ``anyOf`` of ``{const, title}``, the ``if/then/else`` rules
and ``additionalProperties: false``. The Maxar-like and BlackSky-like products use other parameter
names (``maxCloudCover``, ``spectralBands``...) and, for BlackSky, a ``Point`` geometry, so that
tests prove the adapter and the simulator validate from the schema, not from hard-coded fields.
"""

from __future__ import annotations

from typing import Any

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

PLEIADES_TASKING_PRODUCT_ID = "bd102407-1814-4f92-8b5a-7697b7a73f5a"
MAXAR_TASKING_PRODUCT_ID = "4f1b2a9e-7c3d-4e8f-9a6b-2c5d8e1f3a70"
BLACKSKY_TASKING_PRODUCT_ID = "9e3c1d7a-52b8-4f06-8d2e-6a1b7c9f0e45"


def _choices(title: str, *values: tuple[str, str]) -> dict[str, Any]:
    """An enum-like definition as UP42 writes them: ``anyOf`` of ``{const, title}``."""
    return {"title": title, "anyOf": [{"const": value, "title": label} for value, label in values]}


def _when(
    prop: str, value: str, then: dict[str, Any], otherwise: dict[str, Any] | None = None
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "if": {"properties": {prop: {"const": value}}, "required": [prop]},
        "then": then,
    }
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


def _bh_defaults(min_bh: float, max_bh: float) -> dict[str, Any]:
    return {"properties": {"minBH": {"default": min_bh}, "maxBH": {"default": max_bh}}}


_DATE_TIME = {"type": "string", "format": "date-time"}
_DISPLAY_NAME = {"title": "Order name", "type": "string", "minLength": 1, "maxLength": 200}


def _geometry(*types: str) -> dict[str, Any]:
    return {
        "title": "Geometry",
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {"type": {"enum": list(types)}, "coordinates": {"type": "array"}},
    }


PLEIADES_TASKING_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT_07,
    "title": "Pléiades tasking order parameters",
    "type": "object",
    "required": [
        "geometry",
        "displayName",
        "acquisitionStart",
        "acquisitionEnd",
        "acquisitionMode",
        "cloudCoverage",
        "incidenceAngle",
        "geometricProcessing",
        "spectralProcessing",
        "pixelCoding",
        "radiometricProcessing",
        "deliveredAs",
    ],
    "properties": {
        "displayName": _DISPLAY_NAME,
        "extraDescription": {"title": "Extra description", "type": "string", "maxLength": 2000},
        "acquisitionStart": {"title": "Start of the acquisition window", **_DATE_TIME},
        "acquisitionEnd": {"title": "End of the acquisition window", **_DATE_TIME},
        "geometry": _geometry("Polygon", "MultiPolygon"),
        "acquisitionMode": {"$ref": "#/definitions/acquisitionMode"},
        "cloudCoverage": {
            "title": "Maximum cloud coverage (%)",
            "type": "integer",
            "minimum": 5,
            "maximum": 20,
        },
        "incidenceAngle": {
            "title": "Maximum incidence angle (°)",
            "type": "integer",
            "minimum": 5,
            "maximum": 50,
        },
        "geometricProcessing": {"$ref": "#/definitions/geometricProcessing"},
        "projection": {"$ref": "#/definitions/projection"},
        "spectralProcessing": {"$ref": "#/definitions/spectralProcessing"},
        "pixelCoding": {"$ref": "#/definitions/pixelCoding"},
        "radiometricProcessing": {"$ref": "#/definitions/radiometricProcessing"},
        "deliveredAs": {"$ref": "#/definitions/deliveredAs"},
        "minBH": {"title": "Minimum B/H", "type": "number", "minimum": 0.2, "maximum": 0.8},
        "maxBH": {"title": "Maximum B/H", "type": "number", "minimum": 0.2, "maximum": 0.8},
    },
    "definitions": {
        "acquisitionMode": _choices(
            "Acquisition mode", ("mono", "Mono"), ("stereo", "Stereo"), ("tristereo", "Tri-stereo")
        ),
        "geometricProcessing": _choices("Geometric processing", ("ortho", "Ortho")),
        "projection": _choices("Projection", ("4326", "WGS 84 (EPSG:4326)")),
        "spectralProcessing": _choices("Spectral processing", ("bundle", "Bundle")),
        "pixelCoding": _choices("Pixel coding", ("12bits", "12 bits")),
        "radiometricProcessing": _choices("Radiometric processing", ("reflectance", "Reflectance")),
        "deliveredAs": _choices("Delivered as", ("geotiff", "GeoTIFF")),
    },
    "allOf": [
        _when("geometricProcessing", "primary", {"properties": {"projection": {"type": "null"}}}),
        _when(
            "acquisitionMode",
            "stereo",
            _bh_defaults(0.4, 0.7),
            _when("acquisitionMode", "tristereo", _bh_defaults(0.2, 0.35)),
        ),
        _when(
            "pixelCoding", "8bits", {"properties": {"radiometricProcessing": {"enum": ["basic", "display"]}}}
        ),
    ],
    "additionalProperties": False,
}

MAXAR_TASKING_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT_07,
    "title": "Maxar 30 cm tasking order parameters",
    "type": "object",
    "required": [
        "geometry",
        "displayName",
        "acquisitionStart",
        "acquisitionEnd",
        "acquisitionMode",
        "maxCloudCover",
        "maxIncidenceAngle",
        "geometricProcessing",
        "pixelCoding",
        "spectralBands",
        "priority",
        "radiometricProcessing",
    ],
    "properties": {
        "displayName": _DISPLAY_NAME,
        "extraDescription": {"type": "string", "maxLength": 2000},
        "acquisitionStart": _DATE_TIME,
        "acquisitionEnd": _DATE_TIME,
        "geometry": _geometry("Polygon"),
        "acquisitionMode": {
            **_choices("Acquisition mode", ("mono", "Mono"), ("stereo", "Stereo")),
            "default": "mono",
        },
        "maxCloudCover": {"type": "integer", "minimum": 0, "maximum": 100, "default": 20},
        "maxIncidenceAngle": {"type": "integer", "minimum": 0, "maximum": 60, "default": 30},
        "geometricProcessing": {
            **_choices(
                "Geometric processing", ("georectified", "Georectified"), ("orthorectified", "Orthorectified")
            ),
            "default": "georectified",
        },
        "pixelCoding": _choices("Pixel coding", ("16bit", "16 bit")),
        "spectralBands": _choices(
            "Spectral bands",
            ("bundle_8_band", "8-band bundle"),
            ("pansharpened_3_band_true_color", "Pansharpened true colour"),
            ("pansharpened_4_band", "Pansharpened 4 band"),
        ),
        "priority": {
            **_choices("Priority", ("standard", "Standard"), ("priority", "Priority")),
            "default": "standard",
        },
        "radiometricProcessing": {
            **_choices("Radiometric processing", ("toa", "Top of atmosphere"), ("display", "Display")),
            "default": "toa",
        },
    },
    "additionalProperties": False,
}

BLACKSKY_TASKING_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT_07,
    "title": "BlackSky tasking order parameters",
    "type": "object",
    "required": [
        "geometry",
        "displayName",
        "acquisitionStart",
        "acquisitionEnd",
        "acquisitionMode",
        "cloudCoverage",
    ],
    "properties": {
        "displayName": _DISPLAY_NAME,
        "acquisitionStart": _DATE_TIME,
        "acquisitionEnd": _DATE_TIME,
        "geometry": _geometry("Point"),
        "acquisitionMode": {
            **_choices(
                "Acquisition mode",
                ("Standard", "Standard"),
                ("Burst", "Burst"),
                ("Area", "Area"),
                ("Stereo", "Stereo"),
            ),
            "default": "Standard",
        },
        "cloudCoverage": {"type": "integer", "minimum": 30, "maximum": 100, "default": 30},
    },
    "additionalProperties": False,
}

PRODUCT_SCHEMAS: dict[str, dict[str, Any]] = {
    PLEIADES_TASKING_PRODUCT_ID: PLEIADES_TASKING_SCHEMA,
    MAXAR_TASKING_PRODUCT_ID: MAXAR_TASKING_SCHEMA,
    BLACKSKY_TASKING_PRODUCT_ID: BLACKSKY_TASKING_SCHEMA,
}

_TASKING_INTEGRATIONS = [
    "FEASIBILITY_STUDY_MAY_BE_REQUIRED",
    "QUOTATION_REQUIRED",
    "PRICE_ESTIMATION_AVAILABLE",
]

COLLECTIONS: list[dict[str, Any]] = [
    {
        "name": "phr-tasking",
        "title": "Pléiades Tasking",
        "type": "TASKING",
        "integrations": _TASKING_INTEGRATIONS,
        "providers": [{"name": "oneatlas", "title": "Airbus", "roles": ["PRODUCER", "HOST"]}],
        "dataProducts": [
            {
                "id": PLEIADES_TASKING_PRODUCT_ID,
                "name": "phr-tasking-analytic",
                "title": "Analytic",
                "productConfiguration": {"title": "Analytic"},
            }
        ],
    },
    {
        "name": "maxar-tasking",
        "title": "Maxar 30 cm Tasking",
        "type": "TASKING",
        "integrations": ["FEASIBILITY_STUDY_REQUIRED", "QUOTATION_REQUIRED"],
        "providers": [{"name": "maxar", "title": "Maxar", "roles": ["PRODUCER"]}],
        "dataProducts": [
            {
                "id": MAXAR_TASKING_PRODUCT_ID,
                "name": "maxar-tasking-30cm",
                "title": "30 cm",
                "productConfiguration": {"title": "30 cm"},
            }
        ],
    },
    {
        "name": "blacksky-tasking",
        "title": "BlackSky Tasking",
        "type": "TASKING",
        "integrations": ["QUOTATION_REQUIRED"],
        "providers": [{"name": "blacksky", "title": "BlackSky", "roles": ["PRODUCER"]}],
        "dataProducts": [
            {
                "id": BLACKSKY_TASKING_PRODUCT_ID,
                "name": "blacksky-tasking",
                "title": "Standard",
                "productConfiguration": {"title": "Standard"},
            }
        ],
    },
]
