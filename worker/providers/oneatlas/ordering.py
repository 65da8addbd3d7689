"""OneAtlas request bodies: validation rules, feasibility/attempts searches, price and order bodies.

Pure functions of the request and the deployment's settings (no I/O): the adapter passes the
contract id it resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.config import OneAtlasSettings
from worker.domain.ports import Attempt, OrderContext
from worker.errors import InvalidOrderParams, NotFeasible, ProviderProtocolError, ProviderRejected
from worker.events.models import AcquisitionMode, Automation, OneAtlasProduct, OrderRequest, Provider
from worker.providers.oneatlas.common import (
    AOI_ID,
    ATTEMPT_AOI_KM2,
    ATTEMPT_TYPES,
    CAPACITY_CODES,
    DEFAULT_BH,
    DEFAULT_MAX_CLOUD_COVER,
    DEFAULT_MAX_INCIDENCE_ANGLE,
    ITEM_PROPERTY_KEYS,
    ONEPLAN_MIN_AOI_KM2,
    PROVIDER,
    SPECTRAL,
    as_dict,
    as_float,
    as_list,
    backend_of,
    iso_millis,
    log,
    parse_time,
    product_type_id,
    str_or_none,
)
from worker.providers.oneatlas.failures import provider_error_fields
from worker.wkt import area_km2, extent_km, utm_epsg, wkt_to_geojson


def oneatlas_product(request: OrderRequest) -> OneAtlasProduct:
    if request.provider is not Provider.ONEATLAS or not isinstance(request.product, OneAtlasProduct):
        raise InvalidOrderParams("product: not a OneAtlas product", provider=PROVIDER)
    return request.product


def check_processing(request: OrderRequest, product: OneAtlasProduct) -> None:
    processing = request.processing
    allowed = SPECTRAL[backend_of(product.mission)]
    if processing.spectral_processing and processing.spectral_processing not in allowed:
        raise InvalidOrderParams(
            f"processing.spectralProcessing: {processing.spectral_processing!r} is not offered "
            f"for {product.mission} (one of {', '.join(sorted(allowed))})",
            provider=PROVIDER,
        )
    if processing.pixel_coding == "8bits" and processing.radiometric_processing not in (None, "display"):
        raise InvalidOrderParams(
            "processing.pixelCoding: 8bits needs radiometricProcessing=display", provider=PROVIDER
        )


def check_aoi_size(request: OrderRequest, product: OneAtlasProduct) -> None:
    aoi = request.aoi.model_dump(mode="json")
    area = area_km2(aoi)
    if product.programming_type in ATTEMPT_TYPES:
        low, high = ATTEMPT_AOI_KM2[product.mission]
    else:
        low, high = ONEPLAN_MIN_AOI_KM2, float("inf")
    if not low <= area <= high:
        raise InvalidOrderParams(
            f"aoi: {area:.1f} km² is outside {low:g}..{high:g} km² for {product.mission} "
            f"{product.programming_type}",
            provider=PROVIDER,
            operation="validate",
        )
    width, height = extent_km(aoi)
    if max(width, height) > 10_000:
        raise InvalidOrderParams("aoi: wider or higher than 10000 km", provider=PROVIDER)


def search_body(request: OrderRequest, prog_type: str, contract: str) -> dict[str, Any]:
    product = oneatlas_product(request)
    constraints = request.constraints
    return {
        "progTypeNames": [prog_type],
        "mission": product.mission.value,
        "contractId": contract,
        "acquisitionDate": {
            "startDate": iso_millis(request.window.start),
            "endDate": iso_millis(request.window.end),
        },
        "optical": {
            "acquisitionMode": constraints.acquisition_mode.value,
            "maxCloudCover": max_cloud(request),
            "maxIncidenceAngle": max_incidence(request),
        },
        "aoi": request.aoi.model_dump(mode="json"),
    }


def order_body(
    settings: OneAtlasSettings, request: OrderRequest, context: OrderContext, contract: str
) -> dict[str, Any]:
    """The body shared by ``POST /api/v1/prices`` and ``POST /api/v1/orders`` (§3.3)."""
    product = oneatlas_product(request)
    backend = backend_of(product.mission)
    options = dict(request.provider_options)
    ptype = str(
        options.pop("productTypeId", None) or product_type_id(product.mission, product.programming_type)
    )
    prop_overrides = {k: options.pop(k) for k in list(options) if k in ITEM_PROPERTY_KEYS}
    item: dict[str, Any] = {
        "productTypeId": ptype,
        "aoiId": AOI_ID,
        "properties": kv({**item_properties(request, context), **prop_overrides}),
        "comments": request.comments or "",
        "dataSourceIds": [],
    }
    if product.programming_type in ATTEMPT_TYPES:
        if context.attempt is None:
            raise InvalidOrderParams(
                f"{product.programming_type} needs a chosen attempt (segmentKey)",
                provider=PROVIDER,
                operation="order",
            )
        item["segmentKey"] = context.attempt.segment_key
    body: dict[str, Any] = {
        "aoi": [
            {
                "id": AOI_ID,
                "name": request.display_name or f"AOI {request.reference}",
                "geometry": request.aoi.model_dump(mode="json"),
            }
        ],
        "contractId": contract,
        "customerReference": request.reference,
        "primaryMarket": settings.primary_market,
        "endUsers": [u.model_dump() for u in settings.end_users],
        "items": [item],
        "optionsPerProductType": [
            {
                "productTypeId": ptype,
                "options": kv({**default_options(request, backend), **options}),
            }
        ],
    }
    body.update(delivery_fields(settings, backend))
    return body


def item_properties(request: OrderRequest, context: OrderContext) -> dict[str, Any]:
    constraints = request.constraints
    cloud = max_cloud(request)
    stereo = constraints.acquisition_mode is not AcquisitionMode.MONO
    feasibility = context.feasibility
    manual = stereo or (feasibility is not None and feasibility.automation is Automation.MANUAL)
    props: dict[str, Any] = {
        "acquisitionMode": constraints.acquisition_mode.value,
        "maxCloudCover": cloud,
        "notificationThreshold": cloud,
        "maxIncidenceAngle": max_incidence(request),
        "acqPeriod": f"{iso_millis(request.window.start)} {iso_millis(request.window.end)}",
        "feasibilityAutomation": (Automation.MANUAL if manual else Automation.AUTOMATIC).value,
    }
    if feasibility is not None and feasibility.classification is not None:
        props["classification"] = feasibility.classification.value
    if feasibility is not None and feasibility.automation_name:
        props["feasibilityAutomationName"] = feasibility.automation_name
    if stereo:
        props["acquisitionModeMinBH"] = (
            constraints.min_bh if constraints.min_bh is not None else DEFAULT_BH[0]
        )
        props["acquisitionModeMaxBH"] = (
            constraints.max_bh if constraints.max_bh is not None else DEFAULT_BH[1]
        )
    return props


def default_options(request: OrderRequest, backend: str) -> dict[str, Any]:
    """Production options mapped from ``request.processing``, with §4.6-valid defaults."""
    p = request.processing
    level = p.processing_level or "ortho"
    radiometric = p.radiometric_processing or ("display" if p.pixel_coding == "8bits" else "basic")
    options: dict[str, Any] = {
        "processing_level": level,
        "spectral_processing": p.spectral_processing or ("full_bundle" if backend == "neo" else "bundle"),
        "radiometric_processing": radiometric,
        "pixel_coding": p.pixel_coding or ("8bits" if radiometric == "display" else "12bits"),
        "image_format": p.image_format or "dimap_jpeg2000_regular",
        "priority": p.priority or "standard",
        "licence": p.licence or "standard",
        "delivery_method": "on_the_flow",
    }
    if level in ("ortho", "projected"):
        options[f"projection_{AOI_ID}"] = str(p.projection or utm_epsg(request.aoi.model_dump(mode="json")))
    if level == "ortho":
        options[f"dem_{AOI_ID}"] = p.dem or "best_available"
    return options


def delivery_fields(settings: OneAtlasSettings, backend: str) -> dict[str, Any]:
    if backend == "neo":
        notifications = []
        if settings.notification_emails:
            notifications.append(
                {
                    "channels": [
                        {
                            "type": "email",
                            "addressee": {"to": list(settings.notification_emails), "cc": []},
                        }
                    ],
                    "filter": {"events": ["SALES_ORDER", "DELIVERY"]},
                }
            )
        return {"delivery": {"type": settings.delivery_type}, "notifications": notifications}
    delivery: dict[str, Any] = {"type": settings.delivery_type}
    if settings.workspace_id:
        delivery["workspace"] = settings.workspace_id
    return {"delivery": delivery, "notificationEmails": list(settings.notification_emails)}


def max_cloud(request: OrderRequest) -> float:
    value = request.constraints.max_cloud_cover
    return float(value) if value is not None else DEFAULT_MAX_CLOUD_COVER


def max_incidence(request: OrderRequest) -> float:
    value = request.constraints.max_incidence_angle
    return float(value) if value is not None else DEFAULT_MAX_INCIDENCE_ANGLE


def kv(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def prog_type_entry(body: Any, prog: str, operation: str) -> dict[str, Any]:
    """The ``progTypes`` entry for ``prog`` in a feasibility/attempts answer.

    Accepts ``progCapacities`` as an array or an object. A per-progType ``errors`` list or
    ``available: false`` raises.

    Raises:
        NotFeasible: no capacity (``available: false``, ``ERR_NO_SENSOR_AVAILABLE``, ``ERR_OTHER``).
        ProviderRejected: an AOI error (``ERR_MIN_AOI_AREA``...), with the provider code.
        ProviderProtocolError: no entry for the programming type.
    """
    entries = [
        as_dict(t)
        for cap in as_list(as_dict(body).get("progCapacities"))
        for t in as_list(as_dict(cap).get("progTypes"))
    ]
    matching = [e for e in entries if str(e.get("name") or "").upper() == prog.upper()]
    if not matching:
        raise ProviderProtocolError(
            f"{operation}: no progTypes entry for {prog}", provider=PROVIDER, operation=operation
        )
    entry = matching[0]
    errors = [as_dict(e) for e in as_list(entry.get("errors"))]
    if errors:
        raise capability_error(errors, operation)
    if entry.get("available") is False:
        raise NotFeasible(
            f"{operation}: {prog} is not available for this request", provider=PROVIDER, operation=operation
        )
    return entry


def capability_error(errors: list[dict[str, Any]], operation: str) -> ProviderRejected:
    first = errors[0]
    code = str_or_none(first.get("code"))
    _, message = provider_error_fields({"errors": errors})
    text = f"{operation}: {message}"
    if code in CAPACITY_CODES or str(first.get("locator") or "").upper() != "AOI":
        return NotFeasible(text, provider=PROVIDER, operation=operation, provider_code=code)
    return ProviderRejected(text, provider=PROVIDER, operation=operation, provider_code=code)


def soonest(attempt: Attempt) -> tuple[bool, float]:
    start = attempt.acquisition_start
    return start is None, start.timestamp() if start is not None else 0.0


def attempt_from(segment: Any) -> Attempt | None:
    """An :class:`Attempt` from an ``/attempts`` segment (WKT footprint), or None if unusable."""
    seg = as_dict(segment)
    key = seg.get("segmentKey")
    if not isinstance(key, str) or not key:
        log.warning("oneatlas_attempt_without_segment_key", segment_id=seg.get("id"))
        return None
    footprint: dict[str, Any] | None = None
    wkt = as_dict(seg.get("footprint")).get("geometry")
    if isinstance(wkt, str):
        try:
            footprint = wkt_to_geojson(wkt)
        except ValueError:
            log.warning("oneatlas_attempt_bad_footprint", segment_id=seg.get("id"))
    return Attempt(
        id=str(seg.get("id") or key[:16]),
        segment_key=key,
        acquisition_start=parse_time(seg.get("acquisitionStartDate")),
        acquisition_end=parse_time(seg.get("acquisitionEndDate")),
        order_deadline=parse_time(seg.get("orderDeadline")),
        incidence_angle=as_float(seg.get("incidenceAngle")),
        footprint=footprint,
    )
