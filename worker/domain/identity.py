"""What identifies an order beyond its customer reference: its product, AOI and window.

A customer reference is chosen by the producer and may be reused by another request (or another
system on the same account). Before an order found by reference is adopted, the fields the
provider's listing states about it are compared with the request (``matches``). Both sides are
reduced to the same normalised *identity*: a mapping of component names to short strings, so the
comparison is plain equality and the values fit a status event's details.

Components (each present only when the source states it; a component the listing does not carry is
not compared, because the providers' listings differ, see docs/provider-status-mapping.md):

- ``product``: UP42 ``dataProductId``;
- ``mission``, ``programmingType``: OneAtlas (``mission`` / ``progTypeName``, case and separators
  ignored, so ``OneDay`` equals ``ONEDAY`` and ``pleiadesneo`` equals ``PLEIADESNEO``);
- ``aoi``: a fingerprint of the polygon's coordinates rounded to 1e-5 degrees (about 1 m), so a
  provider that re-serialises the numbers still matches;
- ``window``: ``start/end`` at whole seconds, stated exactly (UP42 ``acquisitionStart``/``End``,
  Pléiades Neo ``tasking.period``);
- ``period``: ``start/end`` of a OneAtlas legacy ICR; the reference leaves open whether it is the
  requested window or the acquisition period, so it only has to lie within the request's window.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.events.models import OneAtlasProduct, OrderRequest, Up42Product

Identity = dict[str, str]

_DIGITS = 5


def _name(value: Any) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(value).upper())


def _rounded(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value), _DIGITS) + 0.0  # + 0.0: -0.0 and 0.0 hash alike
    return value


def aoi_fingerprint(geometry: Any) -> str | None:
    """A short fingerprint of a GeoJSON geometry's coordinates, or ``None`` when it has none."""
    coordinates = geometry.get("coordinates") if isinstance(geometry, Mapping) else None
    if not isinstance(coordinates, list) or not coordinates:
        return None
    raw = orjson.dumps([str(geometry.get("type", "")), _rounded(coordinates)])
    return hashlib.sha256(raw).hexdigest()[:16]


def instant(value: datetime) -> str:
    """A time at whole seconds in UTC (``2026-01-01T00:00:00Z``)."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(start: datetime | None, end: datetime | None) -> str | None:
    """``start/end`` at whole seconds, or ``None`` when either is unknown."""
    if start is None or end is None:
        return None
    return f"{instant(start)}/{instant(end)}"


def identity(**components: str | None) -> Identity:
    """An identity from the components known (``None`` ones are left out)."""
    return {k: v for k, v in components.items() if v}


def request_identity(request: OrderRequest) -> Identity:
    """The identity of a direct request (the fingerprint kept with its placement intent)."""
    window = span(request.window.start, request.window.end)
    aoi = aoi_fingerprint(request.aoi.model_dump(mode="json"))
    product = request.product
    if isinstance(product, Up42Product):
        return identity(product=product.data_product_id, aoi=aoi, window=window)
    if isinstance(product, OneAtlasProduct):
        return identity(
            mission=_name(product.mission.value),
            programmingType=_name(product.programming_type.value),
            aoi=aoi,
            window=window,
        )
    return identity(aoi=aoi, window=window)


def listed_identity(
    *,
    product: Any = None,
    mission: Any = None,
    programming_type: Any = None,
    geometry: Any = None,
    window: tuple[datetime | None, datetime | None] | None = None,
    period: tuple[datetime | None, datetime | None] | None = None,
) -> Identity:
    """The identity of an order as a provider's listing states it (adapters call this)."""
    return identity(
        product=str(product) if product else None,
        mission=_name(mission) if mission else None,
        programmingType=_name(programming_type) if programming_type else None,
        aoi=aoi_fingerprint(geometry),
        window=span(*window) if window else None,
        period=span(*period) if period else None,
    )


def mismatches(wanted: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """The components of ``found`` that contradict ``wanted`` (empty: the order may be adopted)."""
    wrong = [
        k for k in ("product", "mission", "programmingType", "aoi", "window") if _differs(wanted, found, k)
    ]
    period, window = found.get("period"), wanted.get("window")
    if period and window and not _within(period, window):
        wrong.append("period")
    return wrong


def _differs(wanted: Mapping[str, str], found: Mapping[str, str], key: str) -> bool:
    return key in wanted and key in found and wanted[key] != found[key]


def _within(inner: str, outer: str) -> bool:
    # ISO-8601 at whole seconds in UTC: string order is time order.
    inner_start, _, inner_end = inner.partition("/")
    outer_start, _, outer_end = outer.partition("/")
    return outer_start <= inner_start and inner_end <= outer_end


def parse_instant(value: Any) -> datetime | None:
    """An RFC 3339 time from a listing (``Z`` or an offset), or ``None`` when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
