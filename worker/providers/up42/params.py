"""UP42 order ``params``: built from the product's JSON Schema and validated locally before
anything is sent; tags and display names derived from the request. No I/O."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError

from worker.errors import (
    InvalidOrderParams,
)
from worker.events.models import OrderRequest
from worker.providers.up42.mapping import MAX_DISPLAY_NAME, MAX_TAG, PROVIDER

log = structlog.get_logger(__name__)

_CLOUD_NAMES = ("cloudCoverage", "maxCloudCover")
_INCIDENCE_NAMES = ("incidenceAngle", "maxIncidenceAngle")
_SPECTRAL_NAMES = ("spectralProcessing", "spectralBands")
_NOT_PARAMS = frozenset({"geometry", "displayName"})


@dataclass(frozen=True)
class _Wanted:
    """One value the request asks for, the schema names it may take, and where it came from."""

    names: tuple[str, ...]
    value: Any
    source: str
    # A default rather than a customer choice: dropped when the product has no such parameter or
    # no such value (BlackSky modes are Standard/Burst/...; the schema's default applies instead).
    optional: bool = False


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wanted(request: OrderRequest) -> list[_Wanted]:
    c, p = request.constraints, request.processing
    mode = c.acquisition_mode.value.lower()
    items = [
        _Wanted(("acquisitionStart",), _iso(request.window.start), "window.start"),
        _Wanted(("acquisitionEnd",), _iso(request.window.end), "window.end"),
        _Wanted(("acquisitionMode",), mode, "constraints.acquisitionMode", optional=mode == "mono"),
        _Wanted(_CLOUD_NAMES, c.max_cloud_cover, "constraints.maxCloudCover"),
        _Wanted(_INCIDENCE_NAMES, c.max_incidence_angle, "constraints.maxIncidenceAngle"),
        _Wanted(("minBH",), c.min_bh, "constraints.minBH"),
        _Wanted(("maxBH",), c.max_bh, "constraints.maxBH"),
        _Wanted(("geometricProcessing",), p.processing_level, "processing.processingLevel"),
        _Wanted(_SPECTRAL_NAMES, p.spectral_processing, "processing.spectralProcessing"),
        _Wanted(("pixelCoding",), p.pixel_coding, "processing.pixelCoding"),
        _Wanted(("radiometricProcessing",), p.radiometric_processing, "processing.radiometricProcessing"),
        _Wanted(("deliveredAs",), p.image_format, "processing.imageFormat"),
        _Wanted(("projection",), p.projection, "processing.projection"),
        _Wanted(("priority",), p.priority, "processing.priority"),
        _Wanted(("extraDescription",), request.comments, "comments", optional=True),
    ]
    return [item for item in items if item.value is not None]


def _resolve(schema: Mapping[str, Any], node: Any) -> dict[str, Any]:
    """Follow local ``$ref`` pointers (``#/definitions/x``) to the schema they name."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 16:
        target: Any = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node if isinstance(node, dict) else {}


def _consts(prop: Mapping[str, Any]) -> list[Any]:
    """The allowed values of an enum-like property (``const``, ``enum``, ``anyOf``/``oneOf``)."""
    if "const" in prop:
        return [prop["const"]]
    if isinstance(prop.get("enum"), list):
        return list(prop["enum"])
    for key in ("anyOf", "oneOf"):
        options = prop.get(key)
        if (
            isinstance(options, list)
            and options
            and all(isinstance(o, dict) and "const" in o for o in options)
        ):
            return [o["const"] for o in options]
    return []


def _coerce(value: Any, prop: Mapping[str, Any]) -> Any:
    """Give ``value`` the JSON type the schema asks for (integer limits, string EPSG codes)."""
    kind = prop.get("type")
    consts = _consts(prop)
    if consts and all(isinstance(c, str) for c in consts) and not isinstance(value, str):
        return str(value)
    if kind == "integer" and isinstance(value, float):
        # A maximum (cloud cover, incidence) rounds down so UP42 never exceeds the customer's limit.
        return math.floor(value)
    if kind == "integer" and isinstance(value, str) and value.isdigit():
        return int(value)
    if consts and all(isinstance(c, int) for c in consts) and isinstance(value, str):
        return int(value) if value.isdigit() else value
    return value


def _unsupported(item: _Wanted, product: str) -> InvalidOrderParams:
    names = ", ".join(item.names)
    return InvalidOrderParams(
        f"{item.source}: UP42 product {product} has no such parameter (its schema declares none of: {names})",
        provider=PROVIDER,
        operation="validate",
        provider_code="UNSUPPORTED_PARAMETER",
        details={"field": item.source, "rule": "unsupported"},
    )


@dataclass(frozen=True)
class BuiltParams:
    """``params`` for one request, and which contract field each parameter came from."""

    params: dict[str, Any]
    sources: dict[str, str]


def build_params(request: OrderRequest, schema: Mapping[str, Any]) -> BuiltParams:
    """Build the order ``params`` for ``request`` from the product's JSON Schema.

    Each contract field goes to whichever of its candidate names the schema declares; required
    fields the request leaves open are filled when the schema allows a single value or gives a
    default; ``request.provider_options`` win over everything. Geometry and displayName are never
    params.

    Raises:
        InvalidOrderParams: a set contract field has no counterpart in this product, or
            ``providerOptions`` tries to set the geometry or displayName.
    """
    product = request.up42_product().data_product_id
    props = schema.get("properties")
    declared: dict[str, Any] = props if isinstance(props, dict) else {}
    params: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for item in _wanted(request):
        name = next((n for n in item.names if n in declared), None)
        if name is None and not declared:
            name = item.names[0]  # a schema without properties accepts anything
        if name is None:
            if item.optional:
                continue
            raise _unsupported(item, product)
        prop = _resolve(schema, declared.get(name, {}))
        value = _coerce(item.value, prop)
        if item.optional and (allowed := _consts(prop)) and value not in allowed:
            continue  # a contract default (MONO) the product words differently: use the schema's
        params[name], sources[name] = value, item.source
    _fill_required(schema, declared, params, sources)
    for key, value in request.provider_options.items():
        if key in _NOT_PARAMS:
            raise InvalidOrderParams(
                f"providerOptions.{key}: not allowed; UP42 takes "
                + ("the AOI in featureCollection" if key == "geometry" else "displayName at top level"),
                provider=PROVIDER,
                operation="validate",
                details={"field": f"providerOptions.{key}"},
            )
        params[key] = value
        sources[key] = f"providerOptions.{key}"
    return BuiltParams(params, sources)


def _fill_required(
    schema: Mapping[str, Any],
    declared: Mapping[str, Any],
    params: dict[str, Any],
    sources: dict[str, str],
) -> None:
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if name in params or name in _NOT_PARAMS:
            continue
        prop = _resolve(schema, declared.get(name, {}))
        if "default" in prop:
            params[name], sources[name] = prop["default"], "schema default"
        elif len(consts := _consts(prop)) == 1:
            params[name], sources[name] = consts[0], "schema (single allowed value)"


def _schema_error_text(error: SchemaError) -> tuple[str, str]:
    """``(field path, explanation)`` of one jsonschema error, naming the field even for
    ``required`` and ``additionalProperties`` (whose path is the object holding the field)."""
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [n for n in error.validator_value if n not in error.instance]
        path = ".".join(filter(None, [path, missing[0] if missing else ""]))
        return path, "required: missing and no single allowed value or default to fill it"
    if error.validator in ("anyOf", "oneOf"):
        allowed = _consts(error.schema) if isinstance(error.schema, dict) else []
        if allowed:
            return path, f"{error.validator}: {error.instance!r} is not one of {allowed}"
    return path, f"{error.validator}: {error.message}"


def validate_params(
    schema: Mapping[str, Any],
    instance: Mapping[str, Any],
    sources: Mapping[str, str],
    *,
    operation: str = "validate",
) -> None:
    """Validate ``instance`` with ``Draft7Validator``; the first error names its field and rule.

    Raises:
        InvalidOrderParams: ``params.<field> (from <contract field>): <rule>: <why>``.
    """
    validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    field, why = _schema_error_text(errors[0])
    origin = sources.get(field.split(".")[0]) if field else None
    label = "params" + (f".{field}" if field else "") + (f" (from {origin})" if origin else "")
    raise InvalidOrderParams(
        f"{label}: {why}",
        provider=PROVIDER,
        operation=operation,
        provider_code="SCHEMA_VIOLATION",
        details={
            "field": field,
            "rule": str(errors[0].validator),
            "errors": [_schema_error_text(e)[0] for e in errors[:10]],
        },
    )


# ---------------------------------------------------------------------------------- tags

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9 ._/:-]")


def reference_tags(reference: str) -> list[str]:
    """The tags that identify ``reference``: itself when tag-safe, else a sanitised form plus a
    digest tag (so two references sanitised alike are still told apart)."""
    tag = _TAG_UNSAFE.sub("_", reference)[:MAX_TAG].strip() or "ref"
    if tag == reference:
        return [tag]
    digest = hashlib.sha256(reference.encode()).hexdigest()[:32]
    return [tag, f"ref-sha256:{digest}"]


def display_name(request: OrderRequest) -> str:
    """``displayName``: the request's, else the exact reference (1..200 characters)."""
    return (request.display_name or request.reference)[:MAX_DISPLAY_NAME]


# ---------------------------------------------------------------------------------- payload mapping
