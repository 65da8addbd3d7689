"""Pure helpers of the OneAtlas simulator: query parsing, geometry, option records."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shapely.geometry import shape

from worker.simulators.oneatlas.model import ATTEMPT_AOI_KM2, ATTEMPT_TYPES, CAMEL, api_error, errors_error
from worker.wkt import area_km2


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def to_millis(value: datetime) -> datetime:
    """``value`` truncated to what the wire format carries (milliseconds)."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def multi_values(values: list[str]) -> set[str]:
    """Array query parameters: repeated (``a=1&a=2``) or comma-separated (``a=1,2``)."""
    return {part for value in values for part in value.split(",") if part}


def positive_int(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise api_error(400, f"{name} must be an integer", "QUERY-400") from None
    if number < 1:
        raise api_error(400, f"{name} must be at least 1", "QUERY-400")
    return number


def parse_time(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise errors_error(
            400, "ERR_INVALID_PARAMETER", name, "expected yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
        ) from None
    if parsed.tzinfo is None:
        raise errors_error(400, "ERR_INVALID_PARAMETER", name, "a UTC time ending in Z is required")
    return parsed


def parse_aoi(value: Any) -> dict[str, Any]:
    """A GeoJSON Polygon from an object or a bare coordinate array (both are seen)."""
    geometry = value if isinstance(value, dict) else {"type": "Polygon", "coordinates": value}
    if geometry.get("type") != "Polygon":
        raise api_error(400, "aoi must be a GeoJSON Polygon", "AOI-400")
    try:
        polygon = shape(geometry)
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise api_error(400, f"invalid aoi: {exc}", "AOI-400") from exc
    if not polygon.is_valid or len(geometry["coordinates"]) != 1:
        raise api_error(400, "aoi must be one simple ring without holes", "AOI-400")
    return {"type": "Polygon", "coordinates": geometry["coordinates"]}


def envelope(geometry: Mapping[str, Any]) -> dict[str, Any]:
    minx, miny, maxx, maxy = shape(dict(geometry)).bounds
    ring = [[minx, maxy], [minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy]]
    return {"type": "Polygon", "coordinates": [ring]}


def to_wkt(polygon: Mapping[str, Any]) -> str:
    """WKT as OneAtlas writes it: ``POLYGON((x y, ...))``, no space, 6 decimals."""
    ring = ", ".join(f"{x:.6f} {y:.6f}" for x, y in polygon["coordinates"][0])
    return f"POLYGON(({ring}))"


def intersects_any(aoi: Mapping[str, Any], blocked: list[dict[str, Any]]) -> bool:
    polygon = shape(dict(aoi))
    return any(polygon.intersects(shape(b)) for b in blocked)


def aoi_size_error(mission: str, prog: str, aoi: Mapping[str, Any]) -> dict[str, Any] | None:
    """The §6 AOI limits, answered as a per-progType error (``ERR_MIN_AOI_AREA``...)."""
    area = area_km2(aoi)
    low, high = ATTEMPT_AOI_KM2[mission] if prog in ATTEMPT_TYPES else (5.0, float("inf"))
    if area < low:
        return {"code": "ERR_MIN_AOI_AREA", "locator": "AOI", "message": f"{low:g}"}
    if area > high:
        return {"code": "ERR_MAX_AOI_AREA", "locator": "AOI", "message": f"{high:g}"}
    return None


def query_match(body: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Evaluate ``criteria.q`` (``(field:value) AND (field:value)``, ``*`` wildcards)."""
    query = str(as_dict(body.get("criteria")).get("q") or "")
    for name, raw in re.findall(r"\(\s*([\w.]+)\s*:\s*((?:\\.|[^\\)])*)\)", query):
        value = record_field(record, name)
        if value is _UNKNOWN_FIELD:
            continue  # fields the simulator does not model never exclude a record
        if not value_match(raw.strip(), "" if value is None else str(value)):
            return False
    return True


_UNKNOWN_FIELD = object()
_FIELDS = {"cis.quotation": "quotationId", "technicalProduct.source.id": "source"}


def record_field(record: Mapping[str, Any], name: str) -> Any:
    key = _FIELDS.get(name, name)
    return record.get(key, _UNKNOWN_FIELD)


def value_match(pattern: str, value: str) -> bool:
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(re.sub(r"\\(.)", r"\1", p)) for p in parts)
    return re.fullmatch(regex, value) is not None


def option_record(
    name: str, default: str, values: list[str], mandatory: str = "true", condition: str | None = None
) -> dict[str, Any]:
    return {
        "category": "production_option",
        "label": name.replace("_", " ").title(),
        "name": name,
        "mandatory": mandatory,
        "defaultValue": default,
        "constraint": {"condition": condition} if condition else None,
        "values": [{"id": v, "label": v} for v in values],
        "type": "list",
        "hidden": False,
        "property": True,
    }


def sensor_of(product_type: str) -> str:
    return (
        "pleiadesneo"
        if "Neo" in product_type
        else ("spot" if product_type.startswith("Spot") else "pleiades")
    )


def target_of(product_type: str) -> str:
    base = product_type.removesuffix("Vrs")
    return next((p.lower() for p, camel in CAMEL.items() if base.endswith(camel)), "oneplan")
