"""Airbus OneAtlas tasking adapter (SPOT / Pléiades on the ``legacy`` backend, Pléiades Neo on ``neo``).

It speaks the real API (Airbus's published tasking API, summarised in
``docs/providers/oneatlas.md``) and nothing else: every call goes through :class:`ProviderHttp`
(``read`` for calls without side effects, ``write`` for the ones that create or decide something),
with a bearer token obtained from the API key (1 h, no refresh token, renewed 60 s early and once on
401).

The two backends differ after the order is placed:

* legacy (SPOT, PLEIADES): ``POST /api/v1/orders`` answers a ``salesOrderId`` (the tracking key);
  the order becomes an ICR ("tasking") listed under ``/api/v1/contracts/{cid}/taskings`` with its
  segments (acquisitions).
* neo (PLEIADESNEO): ``POST /api/v1/orders`` answers a ``quotationId`` (the tracking key); the order
  line is found with ``POST /api/v2/orders/search`` and its acquisitions ("coverage items") with
  ``POST /api/v1/coverages/search``.

Provider quirks handled here: ``progCapacities`` as an object or an array, ``mission`` or
``missions``, the ``MAUAL`` typo, WKT footprints in ``/attempts``, camel-case ICR ``progTypeName``,
``token_type`` in either case, 201 on prices and orders, and three error body families.
The API key and the token never appear in an exception message or a log line.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import httpx
import orjson
import structlog

from worker.config import HttpClientSettings, OneAtlasSettings
from worker.errors import (
    InvalidOrderParams,
    NotFeasible,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderError,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from worker.events.models import (
    AcquisitionMode,
    AcquisitionStatus,
    Automation,
    Classification,
    Mission,
    OneAtlasProduct,
    OrderRequest,
    ProgrammingType,
    Provider,
)
from worker.providers.auth import TokenSource
from worker.providers.base import (
    Acquisition,
    AcquisitionCounts,
    Attempt,
    FeasibilityResult,
    OrderContext,
    OrderSnapshot,
    PlacedOrder,
    PolledOrder,
    PriceQuote,
    Quotation,
    QuotationDecision,
    RemotePhase,
    stable_fingerprint,
)
from worker.providers.http import (
    NullMetrics,
    ProviderHttp,
    ProviderMetrics,
    build_client,
    http_policy,
    json_body,
)
from worker.providers.wkt import area_km2, extent_km, utm_epsg, wkt_to_geojson
from worker.runtime import cooperative

log = structlog.get_logger(__name__)

PROVIDER: Final = Provider.ONEATLAS.value
TOKEN_MARGIN_SECONDS: Final = 60.0
DEFAULT_MAX_CLOUD_COVER: Final = 20.0
DEFAULT_MAX_INCIDENCE_ANGLE: Final = 30.0
DEFAULT_BH: Final = (0.2, 0.8)
AOI_ID: Final = 1

LEGACY_MISSIONS: Final = frozenset({Mission.SPOT, Mission.PLEIADES})
ATTEMPT_TYPES: Final = frozenset(
    {ProgrammingType.ONEDAY, ProgrammingType.ONENOW, ProgrammingType.ONENOWATTEMPTS}
)
_PRODUCT_PREFIX: Final = {
    Mission.PLEIADES: "PleiadesTasking",
    Mission.SPOT: "SpotTasking",
    Mission.PLEIADESNEO: "PleiadesNeo",
}
_PROG_SUFFIX: Final = {
    ProgrammingType.ONEPLAN: "OnePlan",
    ProgrammingType.ONEDAY: "OneDay",
    ProgrammingType.ONENOW: "OneNow",
    ProgrammingType.ONESERIES: "OneSeries",
    ProgrammingType.ONENOWATTEMPTS: "OneNowAttempts",
    ProgrammingType.ONENOWWEATHER: "OneNowWeather",
}
_SPECTRAL: Final = {
    "legacy": frozenset(
        {
            "pansharpened_natural_color",
            "panchromatic",
            "pansharpened",
            "multispectral",
            "pansharpened_false_color",
            "bundle",
        }
    ),
    "neo": frozenset(
        {"panchromatic", "pansharpened", "multispectral", "bundle", "full_bundle", "full_pms", "full_ms"}
    ),
}
# §6 AOI limits for automatic OneDay/OneNow tasking: (min km², max km²); OnePlan: min 5 km².
_ATTEMPT_AOI_KM2: Final = {
    Mission.PLEIADESNEO: (24.5, 400.0),
    Mission.PLEIADES: (25.0, 800.0),
    Mission.SPOT: (100.0, 7200.0),
}
_ONEPLAN_MIN_AOI_KM2: Final = 5.0
# Item properties a caller may set through ``providerOptions`` (everything else is an option key).
ITEM_PROPERTY_KEYS: Final = frozenset(
    {
        "acquisitionMode",
        "maxCloudCover",
        "notificationThreshold",
        "maxIncidenceAngle",
        "acqPeriod",
        "feasibilityAutomation",
        "feasibilityAutomationName",
        "classification",
        "acquisitionModeMinBH",
        "acquisitionModeMaxBH",
        "extendedAngle",
    }
)
# Operations that change something at the provider: a 5xx there means "outcome unknown".
WRITE_OPERATIONS: Final = frozenset(
    {
        "place_order",
        "decide_quotation",
        "decide_acquisition",
        "cancel",
    }
)
# Error codes (``errors[].code``) that say "no capacity": the request is valid but cannot be tasked.
_CAPACITY_CODES: Final = frozenset({"ERR_NO_SENSOR_AVAILABLE", "ERR_OTHER", "ERR_NO_CAPACITY"})

ICR_FEASIBILITY = "feasibility study in progress"
ICR_ACTIVE = frozenset({"in progress", "paused"})
ICR_CANCELLED = frozenset({"canceled", "cancelled"})
ICR_COMPLETED = "completed"

_SEGMENT_STATUS: Final = {
    "proposed": AcquisitionStatus.PROPOSED,
    "validated": AcquisitionStatus.VALIDATED,
    "accepted": AcquisitionStatus.ACCEPTED,
    "refused": AcquisitionStatus.REFUSED,
    "rejected": AcquisitionStatus.REJECTED,
    "pending": AcquisitionStatus.PENDING,
    "delivered": AcquisitionStatus.DELIVERED,
}

Sleep = Callable[[float], Awaitable[None]]


# ----------------------------------------------------------------------------- small helpers


def iso_millis(value: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``, the only date format OneAtlas accepts."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """A provider timestamp as an aware datetime; ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any) -> int:
    number = _float(value)
    return int(number) if number is not None else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A list from a list, or a one-element list from an object (``progCapacities`` quirk)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    return []


def product_type_id(mission: Mission, programming_type: ProgrammingType) -> str:
    """The ``productTypeId`` for a mission and programming type (``PleiadesTaskingOneDay``...)."""
    return _PRODUCT_PREFIX[mission] + _PROG_SUFFIX[programming_type]


def backend_of(mission: Mission) -> str:
    """``legacy`` (SPOT, Pléiades) or ``neo`` (Pléiades Neo)."""
    return "legacy" if mission in LEGACY_MISSIONS else "neo"


def parse_automation(value: Any) -> Automation:
    """``AUTOMATIC``/``MANUAL``; the spec's ``MAUAL`` typo and anything unknown count as MANUAL.

    Unknown values map to MANUAL on purpose: a manual study only delays the order, while treating
    a manual request as automatic would place an order the provider will not run as expected.
    """
    text = str(value or "").strip().upper()
    if text == "AUTOMATIC":
        return Automation.AUTOMATIC
    if text not in ("MANUAL", "MAUAL"):
        log.warning("oneatlas_unknown_automation", value=text)
    return Automation.MANUAL


def parse_classification(value: Any) -> Classification | None:
    text = str(value or "").strip().upper()
    return Classification(text) if text in Classification.__members__ else None


def lucene_escape(value: str) -> str:
    """Escape a value for ``criteria.q`` (Lucene-like syntax)."""
    return re.sub(r'([+\-!(){}\[\]^"~*?:\\/&| ])', r"\\\1", value)


# ----------------------------------------------------------------------------- error bodies


def provider_error_fields(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` from any of OneAtlas's error body families.

    * ApiError ``{correlationId, hint, internalCode, message, timestamp}``
    * ``{errorCode, message}`` (order.api 4xx, e.g. ``E2203``)
    * ``{errors: [{code, locator, message}]}`` (feasibility, attempts)
    * ``{code: "UNEXPECTED_SERVER_ERROR"}`` and ``{message}`` (expired token)
    """
    if isinstance(body, str):
        return None, body[:200] or None
    if not isinstance(body, dict):
        return None, None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        first = _dict(errors[0])
        message = "; ".join(
            f"{_dict(e).get('code')} ({_dict(e).get('locator')}): {_dict(e).get('message') or ''}".rstrip(
                ": "
            )
            for e in errors
        )
        return _str_or_none(first.get("code")), message
    code = body.get("errorCode") or body.get("internalCode") or body.get("code")
    return _str_or_none(code), _str_or_none(body.get("message") or body.get("hint"))


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def translate_error(response: httpx.Response, operation: str) -> ProviderError | None:
    """The ``translate`` hook of :class:`ProviderHttp` for order.api answers.

    ``ERR_NO_SENSOR_AVAILABLE`` (a 500!) is :class:`NotFeasible`; other 4xx carry the provider's code
    and message in a :class:`ProviderRejected`; 401/403 are :class:`ProviderAuthError`; 5xx keep
    the default semantics (retriable on reads, :class:`OutcomeUnknown` on writes) but name the
    provider's code. 429 is left to the default (``RateLimited`` with ``Retry-After``).
    """
    status = response.status_code
    if status == 429:
        return None
    code, message = provider_error_fields(json_body(response))
    text = f"{operation}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if code == "ERR_NO_SENSOR_AVAILABLE":
        return NotFeasible(text, provider_code=code)
    if status >= 500:
        if operation in WRITE_OPERATIONS:
            return OutcomeUnknown(text + "; outcome unknown", provider_code=code)
        return ProviderUnavailable(text, provider_code=code)
    if status in (401, 403):
        return ProviderAuthError(text, provider_code=code)
    return ProviderRejected(text, provider_code=code, details={"message": message} if message else None)


def _auth_translate(api_key: str) -> Callable[[httpx.Response, str], ProviderError | None]:
    """Token endpoint errors: 400/401/403 mean the API key was refused (never echo the key)."""

    def translate(response: httpx.Response, operation: str) -> ProviderError | None:
        status = response.status_code
        if status not in (400, 401, 403):
            return None
        code, message = provider_error_fields(json_body(response))
        text = f"{operation}: API key refused (HTTP {status}" + (f" {code}" if code else "") + ")"
        if message:
            text += ": " + (message.replace(api_key, "[REDACTED]") if api_key else message)
        return ProviderAuthError(text, provider_code=code)

    return translate


# ----------------------------------------------------------------------------- status mapping


def icr_phase(status: str, has_acquisitions: bool) -> RemotePhase:
    """Map an ICR (SPOT/Pléiades tasking) status to a :class:`RemotePhase`.

    ``Completed`` is COMPLETED even with nothing validated: the domain core turns "completed with
    0 % coverage" into EXPIRED. Unknown statuses are logged and treated as ACTIVE, which keeps the
    order tracked instead of ending it on a guess.
    """
    text = status.strip().lower()
    if text == ICR_FEASIBILITY:
        return RemotePhase.FEASIBILITY_STUDY
    if text in ICR_ACTIVE:
        return RemotePhase.ACQUIRING if has_acquisitions else RemotePhase.ACTIVE
    if text in ICR_CANCELLED:
        return RemotePhase.CANCELLED
    if text == ICR_COMPLETED:
        return RemotePhase.COMPLETED
    log.warning("oneatlas_unknown_icr_status", status=status)
    return RemotePhase.ACQUIRING if has_acquisitions else RemotePhase.ACTIVE


def neo_phase(status: str, quotation_status: str, has_acquisitions: bool) -> RemotePhase:
    """Map a Pléiades Neo order line (``status``, ``quotationStatus``) to a :class:`RemotePhase`.

    Terminal statuses win over the quotation status. Unknown combinations are logged and mapped to
    the waiting phase that matches the quotation (AWAITING_QUOTATION before acceptance, ACTIVE after).
    """
    s, q = status.strip().upper(), quotation_status.strip().upper()
    if q in ("REFUSED", "REJECTED", "EXPIRED") or s in ("REFUSED", "REJECTED"):
        return RemotePhase.REJECTED
    if s in ("CANCELLED", "CANCELED", "STOPPED"):
        return RemotePhase.CANCELLED
    if s == "FAILED":
        return RemotePhase.FAILED
    if s in ("COMPLETED", "DELIVERED", "CLOSED"):
        return RemotePhase.COMPLETED
    if q == "SENT":
        return RemotePhase.QUOTATION_READY
    accepted = q == "ACCEPTED" or (not q and s == "IN_PROGRESS")
    if accepted:
        if s not in ("IN_PROGRESS", ""):
            log.warning("oneatlas_unknown_neo_status", status=s, quotation_status=q)
        return RemotePhase.ACQUIRING if has_acquisitions else RemotePhase.ACTIVE
    if q not in ("", "PENDING", "REQUESTED", "IN_PROGRESS", "DRAFT", "TO_BE_SENT", "CREATED"):
        log.warning("oneatlas_unknown_neo_status", status=s, quotation_status=q)
    return RemotePhase.AWAITING_QUOTATION


def segment_status(status: str) -> AcquisitionStatus:
    """Map a segment / coverage item status (any case); unknown ones are PENDING (and logged)."""
    mapped = _SEGMENT_STATUS.get(status.strip().lower())
    if mapped is None:
        log.warning("oneatlas_unknown_acquisition_status", status=status)
        return AcquisitionStatus.PENDING
    return mapped


def _quotation_decision(quotation_status: str) -> QuotationDecision:
    q = quotation_status.upper()
    if q == "ACCEPTED":
        return QuotationDecision.ACCEPTED
    if q in ("REFUSED", "REJECTED", "EXPIRED"):
        return QuotationDecision.REJECTED
    return QuotationDecision.NOT_DECIDED


def legacy_snapshot(item: Mapping[str, Any], contract_id: str) -> OrderSnapshot:
    """An :class:`OrderSnapshot` from one ``/taskings`` list item (``{sal, so, icr}``)."""
    icr = _dict(item.get("icr"))
    status = str(icr.get("status") or "")
    proposed, total = _int(icr.get("nbProposedSegments")), _int(icr.get("nbTotalSegments"))
    progress = _dict(icr.get("taskingProgress"))
    validated_area = _float(progress.get("validatedArea")) or 0.0
    ordered_area = _float(progress.get("orderedArea")) or 0.0
    coverage = min(100.0, 100.0 * validated_area / ordered_area) if ordered_area > 0 else None
    refs = _refs(
        salesOrderId=item.get("sal"),
        so=item.get("so"),
        taskingId=icr.get("id"),
        contractId=contract_id,
        customerReference=icr.get("customerRef"),
    )
    return OrderSnapshot(
        tracking_key=str(item.get("sal") or ""),
        refs=refs,
        provider_status=status,
        phase=icr_phase(status, total > 0 or validated_area > 0),
        # The ICR gives totals only: "validated" is every segment no longer proposed; the exact
        # split (validated / refused) comes from list_acquisitions.
        counts=AcquisitionCounts(proposed=proposed, validated=max(0, total - proposed)),
        coverage_pct=coverage,
        change_marker=f"{status}|{proposed}|{total}|{validated_area:g}",
    )


def neo_snapshot(line: Mapping[str, Any]) -> OrderSnapshot:
    """An :class:`OrderSnapshot` from one ``/api/v2/orders/search`` order line."""
    status = str(line.get("status") or "")
    quotation_status = str(line.get("quotationStatus") or "")
    tasking = _dict(line.get("tasking"))
    proposed = _int(tasking.get("nbProposedCoverageItems"))
    total = _int(tasking.get("totalCoverageItems"))
    pct = _float(tasking.get("validatedAreaPct"))
    key = neo_quotation_id(line) or ""
    quotation = None
    amount = _float(line.get("orderLineAmount"))
    if key and amount is not None and quotation_status:
        quotation = Quotation(
            id=key,
            amount=amount,
            currency=str(line.get("currency") or "EUR"),
            decision=_quotation_decision(quotation_status),
            valid_until=parse_time(line.get("quotationEndOfValidityDate")),
        )
    return OrderSnapshot(
        tracking_key=key,
        refs=_refs(
            quotationId=key,
            salesOrderId=line.get("salesOrderId"),
            orderItemId=line.get("orderItemId"),
            contractId=line.get("contractId"),
            customerReference=line.get("customerReference"),
        ),
        provider_status=f"{status}/{quotation_status}" if quotation_status else status,
        phase=neo_phase(status, quotation_status, total > 0 or bool(pct)),
        quotation=quotation,
        counts=AcquisitionCounts(proposed=proposed, validated=max(0, total - proposed)),
        coverage_pct=min(100.0, max(0.0, pct)) if pct is not None else None,
        change_marker=f"{status}|{quotation_status}|{proposed}|{total}|{pct or 0:g}",
    )


def _from_raw(parse: Callable[..., OrderSnapshot], raw: bytes, *args: Any) -> OrderSnapshot:
    """``parse`` of a list item kept as the bytes its fingerprint was taken of: a poll holds one
    item per order until the cycle decides which snapshots to build, and bytes, unlike the
    decoded item's dicts, are not tracked by the garbage collector (at 100,000 orders the dicts
    made each full collection during a cycle several times longer)."""
    return parse(orjson.loads(raw), *args)


def neo_quotation_id(line: Mapping[str, Any]) -> str | None:
    """The quotation id of an order line (``quotationId`` or the nested ``cis.quotation``)."""
    value = line.get("quotationId") or _dict(line.get("cis")).get("quotation")
    return str(value) if value else None


def _refs(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def acquisition_from(record: Mapping[str, Any], *, id_key: str, refs: Mapping[str, str]) -> Acquisition:
    """An :class:`Acquisition` from a legacy segment (``asDetail1``) or a PNEO coverage item."""
    detail = _dict(record.get("asDetail1")) or dict(record)
    clear_sky = _float(detail.get("clearSkyRate"))
    footprint = detail.get("footprint")
    status = str(record.get("status") or "")
    extra = _refs(catalogId=detail.get("catalogId"), archiveId=detail.get("archiveId"))
    return Acquisition(
        id=str(record.get(id_key) or ""),
        status=segment_status(status),
        provider_status=status,
        acquired_at=parse_time(detail.get("acquisitionDate")),
        cloud_cover=None if clear_sky is None else min(100.0, max(0.0, 100.0 - clear_sky)),
        incidence_angle=_float(detail.get("incidenceAngle")),
        footprint=footprint if isinstance(footprint, dict) else None,
        refs={**refs, **extra},
    )


# ----------------------------------------------------------------------------- the adapter


class OneAtlasProvider:
    """:class:`~worker.providers.base.TaskingProvider` for Airbus OneAtlas.

    Args:
        settings: API key, contract ids, hosts and order fields.
        http: timeouts and retry policy.
        client: an injected ``httpx.AsyncClient`` (tests pass a MockTransport or an ASGI app);
            when ``None`` the adapter builds and owns one.
        metrics: request / retry metrics sink.
        sleep: awaited between retries (tests inject a recorder).
        clock: monotonic seconds for token expiry (tests inject a fake clock).
        page_size: items per page when listing taskings or searching orders.
    """

    name = Provider.ONEATLAS

    def __init__(
        self,
        settings: OneAtlasSettings,
        http: HttpClientSettings,
        *,
        client: httpx.AsyncClient | None = None,
        metrics: ProviderMetrics | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = 100,
    ) -> None:
        self._settings = settings
        self._owns_client = client is None
        self._client = client if client is not None else build_client(http, settings.max_concurrency)
        self._page_size = page_size
        self._base = str(settings.base_url).rstrip("/")
        policy = http_policy(http, settings.rate_limit_per_second, settings.max_concurrency)
        sink = metrics if metrics is not None else NullMetrics()
        renewed = getattr(sink, "token_renewed", None)
        self._tokens = TokenSource(
            self._fetch_token,
            margin=TOKEN_MARGIN_SECONDS,
            clock=clock,
            on_renewal=(lambda ok: renewed(PROVIDER, ok)) if callable(renewed) else None,
        )
        self._http = ProviderHttp(
            PROVIDER,
            self._client,
            self._tokens,
            policy=policy,
            metrics=sink,
            translate=translate_error,
            sleep=sleep,
        )
        self._auth_http = ProviderHttp(
            PROVIDER,
            self._client,
            None,
            policy=policy,
            metrics=sink,
            translate=_auth_translate(self._api_key_or_empty()),
            sleep=sleep,
        )
        # Which backend a tracking key belongs to, learnt when this process placed or found it.
        self._backends: dict[str, str] = {}

    # ------------------------------------------------------------------ configuration and auth

    def _api_key_or_empty(self) -> str:
        key = self._settings.api_key
        return key.get_secret_value() if key is not None else ""

    def _contract(self, backend: str) -> str:
        """The contract for a backend (PNEO: the neo contract, falling back to ``contract_id``)."""
        if not self._settings.configured:
            raise ProviderNotConfigured("OneAtlas API key is not configured", provider=PROVIDER)
        contract = self._settings.contract_id
        if backend == "neo":
            contract = self._settings.neo_contract_id or contract
        if not contract:
            raise ProviderNotConfigured(f"no OneAtlas {backend} contract configured", provider=PROVIDER)
        return contract

    async def _fetch_token(self) -> tuple[str, float]:
        """Exchange the API key for a token (form POST); returns ``(token, expires_in)``."""
        api_key = self._api_key_or_empty()
        if not api_key:
            raise ProviderNotConfigured("OneAtlas API key is not configured", provider=PROVIDER)
        body = await self._auth_http.read(
            "authenticate",
            "POST",
            str(self._settings.auth_url),
            data={"apikey": api_key, "grant_type": "api_key", "client_id": "IDP"},
        )
        body = _dict(body)
        token, token_type = body.get("access_token"), str(body.get("token_type") or "bearer")
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise ProviderProtocolError(
                "authenticate: no bearer access_token in the answer",
                provider=PROVIDER,
                operation="authenticate",
            )
        return token, _float(body.get("expires_in")) or 3600.0

    def _url(self, path: str) -> str:
        return self._base + path

    async def _read(self, operation: str, method: str, path: str, **kw: Any) -> Any:
        return await self._http.read(operation, method, self._url(path), **kw)

    async def _write(self, operation: str, method: str, path: str, **kw: Any) -> Any:
        return await self._http.write(operation, method, self._url(path), **kw)

    # ------------------------------------------------------------------ validation

    async def validate(self, request: OrderRequest) -> None:
        """Check mission/type, configuration, options and the AOI size rules of §6.

        Raises:
            ProviderNotConfigured: no API key, or no contract for the request's backend.
            InvalidOrderParams: the message names the offending field.
        """
        product = self._product(request)
        self._contract(backend_of(product.mission))
        self._check_processing(request, product)
        self._check_aoi_size(request, product)
        for key, value in request.provider_options.items():
            if not isinstance(value, str | int | float | bool):
                raise InvalidOrderParams(
                    f"providerOptions.{key}: must be a scalar", provider=PROVIDER, operation="validate"
                )

    def _product(self, request: OrderRequest) -> OneAtlasProduct:
        if request.provider is not Provider.ONEATLAS or not isinstance(request.product, OneAtlasProduct):
            raise InvalidOrderParams("product: not a OneAtlas product", provider=PROVIDER)
        return request.product

    def _check_processing(self, request: OrderRequest, product: OneAtlasProduct) -> None:
        processing = request.processing
        allowed = _SPECTRAL[backend_of(product.mission)]
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

    def _check_aoi_size(self, request: OrderRequest, product: OneAtlasProduct) -> None:
        aoi = request.aoi.model_dump(mode="json")
        area = area_km2(aoi)
        if product.programming_type in ATTEMPT_TYPES:
            low, high = _ATTEMPT_AOI_KM2[product.mission]
        else:
            low, high = _ONEPLAN_MIN_AOI_KM2, float("inf")
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

    # ------------------------------------------------------------------ feasibility and attempts

    def _search_body(self, request: OrderRequest, prog_type: str) -> dict[str, Any]:
        product = self._product(request)
        constraints = request.constraints
        return {
            "progTypeNames": [prog_type],
            "mission": product.mission.value,
            "contractId": self._contract(backend_of(product.mission)),
            "acquisitionDate": {
                "startDate": iso_millis(request.window.start),
                "endDate": iso_millis(request.window.end),
            },
            "optical": {
                "acquisitionMode": constraints.acquisition_mode.value,
                "maxCloudCover": _max_cloud(request),
                "maxIncidenceAngle": _max_incidence(request),
            },
            "aoi": request.aoi.model_dump(mode="json"),
        }

    async def check_feasibility(self, request: OrderRequest) -> FeasibilityResult:
        """``POST /api/v1/feasibility`` for the request's programming type.

        Raises:
            NotFeasible: ``available: false`` or a capacity error code.
            ProviderRejected: a per-progType AOI error (e.g. ``ERR_MIN_AOI_AREA``) or a 4xx.
        """
        product = self._product(request)
        prog = product.programming_type.value
        body = await self._read(
            "feasibility", "POST", "/api/v1/feasibility", json=self._search_body(request, prog)
        )
        entry = _prog_type_entry(body, prog, "feasibility")
        feasibility = _dict(entry.get("feasibility"))
        return FeasibilityResult(
            programming_type=prog,
            automation=parse_automation(feasibility.get("automation")),
            classification=parse_classification(feasibility.get("classification")),
            automation_name=_str_or_none(feasibility.get("automationName")),
            available=True,
            expires_at=parse_time(entry.get("expirationDate") or feasibility.get("expirationDate")),
        )

    async def find_attempts(self, request: OrderRequest) -> list[Attempt]:
        """``POST /api/v1/attempts``: the acquisition slots of a ONEDAY/ONENOW(ATTEMPTS) request.

        Returns the attempts soonest first, footprints converted from WKT to GeoJSON.

        Raises:
            NotFeasible: ``ERR_NO_SENSOR_AVAILABLE`` (HTTP 500) or no segment at all.
            InvalidOrderParams: the programming type has no attempts.
        """
        product = self._product(request)
        if product.programming_type not in ATTEMPT_TYPES:
            raise InvalidOrderParams(
                f"product.programmingType: {product.programming_type} has no attempts",
                provider=PROVIDER,
                operation="attempts",
            )
        prog = product.programming_type.value
        body = await self._read("attempts", "POST", "/api/v1/attempts", json=self._search_body(request, prog))
        entry = _prog_type_entry(body, prog, "attempts")
        attempts = [a for a in (_attempt(s) for s in _list(entry.get("segments"))) if a is not None]
        if not attempts:
            raise NotFeasible(
                "attempts: no acquisition attempt offered", provider=PROVIDER, operation="attempts"
            )
        return sorted(attempts, key=_soonest)

    # ------------------------------------------------------------------ price and order

    def order_body(self, request: OrderRequest, context: OrderContext) -> dict[str, Any]:
        """The body shared by ``POST /api/v1/prices`` and ``POST /api/v1/orders`` (§3.3)."""
        product = self._product(request)
        backend = backend_of(product.mission)
        options = dict(request.provider_options)
        ptype = str(
            options.pop("productTypeId", None) or product_type_id(product.mission, product.programming_type)
        )
        prop_overrides = {k: options.pop(k) for k in list(options) if k in ITEM_PROPERTY_KEYS}
        item: dict[str, Any] = {
            "productTypeId": ptype,
            "aoiId": AOI_ID,
            "properties": _kv({**self._item_properties(request, context), **prop_overrides}),
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
            "contractId": self._contract(backend),
            "customerReference": request.reference,
            "primaryMarket": self._settings.primary_market,
            "endUsers": [u.model_dump() for u in self._settings.end_users],
            "items": [item],
            "optionsPerProductType": [
                {
                    "productTypeId": ptype,
                    "options": _kv({**self._default_options(request, backend), **options}),
                }
            ],
        }
        body.update(self._delivery(backend))
        return body

    def _item_properties(self, request: OrderRequest, context: OrderContext) -> dict[str, Any]:
        constraints = request.constraints
        cloud = _max_cloud(request)
        stereo = constraints.acquisition_mode is not AcquisitionMode.MONO
        feasibility = context.feasibility
        manual = stereo or (feasibility is not None and feasibility.automation is Automation.MANUAL)
        props: dict[str, Any] = {
            "acquisitionMode": constraints.acquisition_mode.value,
            "maxCloudCover": cloud,
            "notificationThreshold": cloud,
            "maxIncidenceAngle": _max_incidence(request),
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

    def _default_options(self, request: OrderRequest, backend: str) -> dict[str, Any]:
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
            options[f"projection_{AOI_ID}"] = str(
                p.projection or utm_epsg(request.aoi.model_dump(mode="json"))
            )
        if level == "ortho":
            options[f"dem_{AOI_ID}"] = p.dem or "best_available"
        return options

    def _delivery(self, backend: str) -> dict[str, Any]:
        settings = self._settings
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

    async def price(self, request: OrderRequest, context: OrderContext) -> PriceQuote:
        """``POST /api/v1/prices`` (answers 201) with the order body.

        Raises:
            ProviderRejected: the provider refused to price it (4xx, provider code attached).
        """
        body = await self._read("price", "POST", "/api/v1/prices", json=self.order_body(request, context))
        body = _dict(body)
        amount = _float(body.get("totalAmount"))
        if amount is None:
            raise ProviderProtocolError(
                "price: no totalAmount in the answer", provider=PROVIDER, operation="price"
            )
        areas = [_float(_dict(p).get("areaKm2")) for p in _list(body.get("productTypes"))]
        known = [a for a in areas if a is not None]
        return PriceQuote(
            amount=amount, currency=str(body.get("currency") or "EUR"), area_km2=sum(known) if known else None
        )

    async def place_order(self, request: OrderRequest, context: OrderContext) -> PlacedOrder:
        """``POST /api/v1/orders`` (201): never retried once it may have been sent.

        Returns the legacy ``salesOrderId`` or the PNEO ``quotationId`` as tracking key.

        Raises:
            OutcomeUnknown: timeout, lost connection or 5xx; or a 2xx without the expected id
                (something was probably created): reconcile with :meth:`find_order`.
            ProviderRejected: refused, nothing created.
        """
        backend = backend_of(self._product(request).mission)
        body = self.order_body(request, context)
        answer = _dict(await self._write("place_order", "POST", "/api/v1/orders", json=body))
        key_field = "salesOrderId" if backend == "legacy" else "quotationId"
        key = answer.get(key_field)
        if not key:
            raise OutcomeUnknown(
                f"place_order: answer has no {key_field}; reconcile",
                provider=PROVIDER,
                operation="place_order",
            )
        refs = _refs(
            salesOrderId=answer.get("salesOrderId"),
            quotationId=answer.get("quotationId"),
            contractId=body["contractId"],
            customerReference=request.reference,
        )
        self._backends[str(key)] = backend
        return PlacedOrder(
            tracking_key=str(key),
            refs=refs,
            amount=_float(answer.get("totalAmount")),
            currency=_str_or_none(answer.get("currency")),
        )

    # ------------------------------------------------------------------ reconciliation

    async def find_order(self, request: OrderRequest) -> PlacedOrder | None:
        """Find the order placed for ``request.reference`` (after a crash or OutcomeUnknown)."""
        backend = backend_of(self._product(request).mission)
        contract = self._contract(backend)
        ref = request.reference
        if backend == "legacy":
            async for item in self._taskings(contract, {"customerRef": ref}):
                if str(_dict(item.get("icr")).get("customerRef")) == ref and item.get("sal"):
                    return self._placed(legacy_snapshot(item, contract), backend)
            return None
        query = f"(customerReference:{lucene_escape(ref)}) AND (contractId:{lucene_escape(contract)})"
        async for line in self._search("find_order", "/api/v2/orders/search", query):
            if str(line.get("customerReference")) == ref and neo_quotation_id(line):
                return self._placed(neo_snapshot(line), backend)
        return None

    def _placed(self, snapshot: OrderSnapshot, backend: str) -> PlacedOrder:
        self._backends[snapshot.tracking_key] = backend
        return PlacedOrder(tracking_key=snapshot.tracking_key, refs=snapshot.refs)

    # ------------------------------------------------------------------ tracking

    def _backend_for_key(self, key: str, refs: Mapping[str, str] | None = None) -> str:
        """Which backend a tracking key belongs to: learnt, else from refs, else by id shape."""
        known = self._backends.get(key)
        if known is not None:
            return known
        if refs is not None and refs.get("quotationId") == key:
            return "neo"
        return "neo" if key.upper().startswith("QUO") else "legacy"

    async def get_order(self, placed: PlacedOrder) -> OrderSnapshot:
        """The current state of one order.

        Raises:
            ProviderRejected: the provider does not know the order (any more).
        """
        key = placed.tracking_key
        if self._backend_for_key(key, placed.refs) == "neo":
            contract = placed.refs.get("contractId") or self._contract("neo")
            query = f"(cis.quotation:{lucene_escape(key)}) AND (contractId:{lucene_escape(contract)})"
            async for line in self._search("get_order", "/api/v2/orders/search", query):
                if neo_quotation_id(line) == key:
                    return neo_snapshot(line)
        else:
            contract = placed.refs.get("contractId") or self._contract("legacy")
            item = await self._find_tasking(contract, placed)
            if item is not None:
                return legacy_snapshot(item, contract)
        raise ProviderRejected(
            f"get_order: order {key} not found",
            provider=PROVIDER,
            operation="get_order",
            provider_code="NOT_FOUND",
        )

    async def _find_tasking(self, contract: str, placed: PlacedOrder) -> dict[str, Any] | None:
        """The ``{sal, so, icr}`` item of a legacy order (one GET when the ICR id is known)."""
        tasking_id = placed.refs.get("taskingId")
        if tasking_id:
            item = _dict(
                await self._read("get_order", "GET", f"/api/v1/contracts/{contract}/taskings/{tasking_id}")
            )
            return item if item.get("icr") else None
        ref = placed.refs.get("customerReference")
        params = {"customerRef": ref} if ref else {}
        async for item in self._taskings(contract, params):
            if str(item.get("sal")) == placed.tracking_key:
                return item
        return None

    async def poll(self, keys: Collection[str]) -> dict[str, PolledOrder]:
        """The orders in ``keys``, by listing pages (calls grow with pages, not keys).

        Legacy keys are matched against ``GET …/taskings`` pages (``sal``), PNEO keys against
        ``POST /api/v2/orders/search`` pages (``quotationId``). Listing stops early once every
        key was seen. Each order's fingerprint is that of its raw list item; its snapshot is
        parsed only if the caller asks for it.
        """
        wanted = set(keys)
        neo: set[str] = set()
        slicer = cooperative.Slicer()  # ~0.3 µs a key: 30 ms of the loop at 100,000 keys
        for key in wanted:
            if self._backend_for_key(key) == "neo":
                neo.add(key)
            if slicer.used_up():
                await slicer.rest()
        legacy = wanted - neo
        result = await self._poll_legacy(legacy) if legacy else {}
        if neo:
            result.update(await self._poll_neo(neo))
        return result

    async def _poll_legacy(self, keys: set[str]) -> dict[str, PolledOrder]:
        contract = self._contract("legacy")
        found: dict[str, PolledOrder] = {}
        async for item in self._taskings(contract, {}, until=lambda: len(found) == len(keys)):
            sal = str(item.get("sal") or "")
            if sal in keys:
                raw = orjson.dumps(item)
                found[sal] = PolledOrder(
                    stable_fingerprint(raw), partial(_from_raw, legacy_snapshot, raw, contract)
                )
        return found

    async def _poll_neo(self, keys: set[str]) -> dict[str, PolledOrder]:
        contract = self._contract("neo")
        found: dict[str, PolledOrder] = {}
        query = f"(contractId:{lucene_escape(contract)})"
        async for line in self._search(
            "poll", "/api/v2/orders/search", query, until=lambda: len(found) == len(keys)
        ):
            key = neo_quotation_id(line)
            if key in keys:
                raw = orjson.dumps(line)
                found[key] = PolledOrder(stable_fingerprint(raw), partial(_from_raw, neo_snapshot, raw))
        return found

    async def _taskings(
        self, contract: str, filters: Mapping[str, str], until: Callable[[], bool] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every tasking item matching ``filters``, page by page (``count``/``startPage`` from 1)."""
        page = 1
        while True:
            params = {**filters, "count": str(self._page_size), "startPage": str(page)}
            body = _dict(
                await self._read("poll", "GET", f"/api/v1/contracts/{contract}/taskings", params=params)
            )
            items = [i for i in _list(body.get("taskings")) if isinstance(i, dict)]
            for item in items:
                yield item
            if len(items) < self._page_size or (until is not None and until()):
                return
            page += 1

    async def _search(
        self, operation: str, path: str, query: str, until: Callable[[], bool] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every feature of a PNEO search (``paging`` with ``pagingMode: item``, 0-based index)."""
        start = 0
        while True:
            request = {
                "paging": {"itemsPerPage": self._page_size, "startIndex": start, "pagingMode": "item"},
                "criteria": {"q": query},
            }
            body = _dict(await self._read(operation, "POST", path, json=request))
            features = [f for f in _list(body.get("features")) if isinstance(f, dict)]
            for feature in features:
                yield _dict(feature.get("properties")) or feature
            start += len(features)
            total = _float(_dict(body.get("paging")).get("totalResults"))
            done = len(features) < self._page_size or (total is not None and start >= total)
            if done or (until is not None and until()):
                return

    # ------------------------------------------------------------------ acquisitions

    async def list_acquisitions(self, placed: PlacedOrder) -> list[Acquisition]:
        """Segments (legacy) or coverage items (PNEO) of one order; ``[]`` before there is any."""
        if self._backend_for_key(placed.tracking_key, placed.refs) == "neo":
            item_id = await self._order_item_id(placed, required=False)
            if item_id is None:
                return []
            refs = _refs(orderItemId=item_id, quotationId=placed.tracking_key)
            query = f"(orderItemId:{lucene_escape(item_id)})"
            return [
                acquisition_from(c, id_key="coverageItemId", refs=refs)
                async for c in self._search("list_acquisitions", "/api/v1/coverages/search", query)
            ]
        contract, tasking_id = await self._tasking_id(placed, required=False)
        if tasking_id is None:
            return []
        body = _dict(
            await self._read(
                "list_acquisitions", "GET", f"/api/v1/contracts/{contract}/taskings/{tasking_id}/segments"
            )
        )
        refs = _refs(taskingId=tasking_id, salesOrderId=placed.tracking_key)
        return [
            acquisition_from(s, id_key="id", refs=refs)
            for s in _list(body.get("segments"))
            if isinstance(s, dict)
        ]

    async def _tasking_id(self, placed: PlacedOrder, *, required: bool) -> tuple[str, str | None]:
        contract = placed.refs.get("contractId") or self._contract("legacy")
        tasking_id = placed.refs.get("taskingId")
        if not tasking_id:
            item = await self._find_tasking(contract, placed)
            tasking_id = _str_or_none(_dict(_dict(item).get("icr")).get("id"))
        if tasking_id is None and required:
            raise ProviderRejected(
                f"no tasking (ICR) exists yet for {placed.tracking_key}",
                provider=PROVIDER,
                provider_code="NOT_FOUND",
            )
        return contract, tasking_id

    async def _order_item_id(self, placed: PlacedOrder, *, required: bool) -> str | None:
        item_id = placed.refs.get("orderItemId")
        if not item_id:
            item_id = (await self.get_order(placed)).refs.get("orderItemId")
        if item_id is None and required:
            raise ProviderRejected(
                f"quotation {placed.tracking_key} has no order item yet",
                provider=PROVIDER,
                provider_code="NOT_FOUND",
            )
        return item_id

    async def decide_acquisition(self, placed: PlacedOrder, acquisition_id: str, accept: bool) -> None:
        """Accept or refuse a proposed segment / coverage item (a write)."""
        verb = "accept" if accept else "refuse"
        if self._backend_for_key(placed.tracking_key, placed.refs) == "neo":
            path = f"/api/v1/coverages/{acquisition_id}/{verb}"
        else:
            contract, tasking_id = await self._tasking_id(placed, required=True)
            path = f"/api/v1/contracts/{contract}/taskings/{tasking_id}/segments/{acquisition_id}/{verb}"
        await self._write("decide_acquisition", "POST", path, json={})

    async def decide_quotation(self, placed: PlacedOrder, quotation_id: str, accept: bool) -> None:
        """PNEO: ``PUT /api/v1/contracts/{cid}/quotations/{id}/accept|refuse`` (a write)."""
        contract = placed.refs.get("contractId") or self._contract("neo")
        verb = "accept" if accept else "refuse"
        await self._write(
            "decide_quotation", "PUT", f"/api/v1/contracts/{contract}/quotations/{quotation_id}/{verb}"
        )

    async def choose_option(self, placed: PlacedOrder, study_id: str, option_id: str) -> None:
        """OneAtlas has no feasibility-study options to choose from.

        Raises:
            ProviderRejected: always.
        """
        raise ProviderRejected(
            "OneAtlas does not offer feasibility study options: a manual study ends in a tasking "
            "(SPOT/Pléiades) or a quotation (Pléiades Neo)",
            provider=PROVIDER,
            operation="choose_option",
        )

    async def cancel(self, placed: PlacedOrder) -> None:
        """Cancel the order.

        Legacy: ``POST …/taskings/{taskingId}/cancel`` with ``{}``. PNEO: before acceptance the
        quotation is refused; after, ``POST /api/v1/orders/{orderItemId}/cancel``, or ``/stop``
        when acquisitions already exist (what was acquired is kept).

        Raises:
            ProviderRejected: the provider refused; the message carries its reason.
        """
        if self._backend_for_key(placed.tracking_key, placed.refs) == "legacy":
            contract, tasking_id = await self._tasking_id(placed, required=True)
            await self._write(
                "cancel", "POST", f"/api/v1/contracts/{contract}/taskings/{tasking_id}/cancel", json={}
            )
            return
        snapshot = await self.get_order(placed)
        item_id = snapshot.refs.get("orderItemId")
        if item_id is None:
            await self.decide_quotation(placed, placed.tracking_key, accept=False)
            return
        has_acquisitions = (
            snapshot.counts is not None and (snapshot.counts.proposed + snapshot.counts.validated) > 0
        )
        verb = "stop" if has_acquisitions else "cancel"
        await self._write("cancel", "POST", f"/api/v1/orders/{item_id}/{verb}", json={})

    async def refresh_token(self) -> bool:
        """Renew the API-key token when it is within its renewal margin (see the protocol)."""
        return await self._tokens.refresh_if_due()

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter created it."""
        if self._owns_client:
            await self._client.aclose()


# ----------------------------------------------------------------------------- parsing helpers


def _max_cloud(request: OrderRequest) -> float:
    value = request.constraints.max_cloud_cover
    return float(value) if value is not None else DEFAULT_MAX_CLOUD_COVER


def _max_incidence(request: OrderRequest) -> float:
    value = request.constraints.max_incidence_angle
    return float(value) if value is not None else DEFAULT_MAX_INCIDENCE_ANGLE


def _kv(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def _prog_type_entry(body: Any, prog: str, operation: str) -> dict[str, Any]:
    """The ``progTypes`` entry for ``prog`` in a feasibility/attempts answer.

    Accepts ``progCapacities`` as an array or an object. A per-progType ``errors`` list or
    ``available: false`` raises.

    Raises:
        NotFeasible: no capacity (``available: false``, ``ERR_NO_SENSOR_AVAILABLE``, ``ERR_OTHER``).
        ProviderRejected: an AOI error (``ERR_MIN_AOI_AREA``...), with the provider code.
        ProviderProtocolError: no entry for the programming type.
    """
    entries = [
        _dict(t)
        for cap in _list(_dict(body).get("progCapacities"))
        for t in _list(_dict(cap).get("progTypes"))
    ]
    matching = [e for e in entries if str(e.get("name") or "").upper() == prog.upper()]
    if not matching:
        raise ProviderProtocolError(
            f"{operation}: no progTypes entry for {prog}", provider=PROVIDER, operation=operation
        )
    entry = matching[0]
    errors = [_dict(e) for e in _list(entry.get("errors"))]
    if errors:
        raise _capability_error(errors, operation)
    if entry.get("available") is False:
        raise NotFeasible(
            f"{operation}: {prog} is not available for this request", provider=PROVIDER, operation=operation
        )
    return entry


def _capability_error(errors: list[dict[str, Any]], operation: str) -> ProviderRejected:
    first = errors[0]
    code = _str_or_none(first.get("code"))
    _, message = provider_error_fields({"errors": errors})
    text = f"{operation}: {message}"
    if code in _CAPACITY_CODES or str(first.get("locator") or "").upper() != "AOI":
        return NotFeasible(text, provider=PROVIDER, operation=operation, provider_code=code)
    return ProviderRejected(text, provider=PROVIDER, operation=operation, provider_code=code)


def _soonest(attempt: Attempt) -> tuple[bool, float]:
    start = attempt.acquisition_start
    return start is None, start.timestamp() if start is not None else 0.0


def _attempt(segment: Any) -> Attempt | None:
    """An :class:`Attempt` from an ``/attempts`` segment (WKT footprint), or None if unusable."""
    seg = _dict(segment)
    key = seg.get("segmentKey")
    if not isinstance(key, str) or not key:
        log.warning("oneatlas_attempt_without_segment_key", segment_id=seg.get("id"))
        return None
    footprint: dict[str, Any] | None = None
    wkt = _dict(seg.get("footprint")).get("geometry")
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
        incidence_angle=_float(seg.get("incidenceAngle")),
        footprint=footprint,
    )
