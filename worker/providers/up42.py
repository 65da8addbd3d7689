"""UP42 adapter: the v2 tasking API (``docs/providers/up42.md``) behind :class:`TaskingProvider`.

Flow at UP42: ``POST /v2/orders`` creates an order in ``CREATED``; UP42 Operations upload a
feasibility study (``AUTO``: accepted by itself; ``MANUAL``: the customer chooses an option), then a
quotation in credits; accepting the quotation activates the order and spends the credits; the
order is then placed, fulfilled, and its deliveries appear as STAC items in UP42 storage.

What this module handles on purpose (see ``docs/providers/up42.md``):

* ``params`` are built from the product's JSON Schema (``GET /orders/schema/{id}``, cached) and
  validated locally with ``jsonschema`` before anything is sent; parameter names differ per
  product (``cloudCoverage`` vs ``maxCloudCover``...). The geometry only ever goes in
  ``featureCollection``; ``displayName`` is top level; ``tags`` is omitted rather than empty.
* Create and estimate answer HTTP 200 even when an item failed: per-item ``errors[]`` are refusals.
* ``POST /v2/orders`` has no idempotency key: it is sent once through ``ProviderHttp.write``; a lost
  answer raises ``OutcomeUnknown`` and :meth:`Up42Provider.find_order` reconciles by tag.
* ``subStatus`` goes stale once ``status`` moves on: it is read only while ``status == CREATED``.
* Studies and quotations are decided GET-then-PATCH, only while ``NOT_DECIDED`` (UP42 answers 405
  "write-protected" otherwise), so a repeated command is a no-op, never a second charge.
* Error bodies come in four shapes (tasking, ``BasicErrorResponse``, legacy ``{data,error}``,
  Keycloak); :func:`translate_error` reads them all.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError

from worker.config import HttpClientSettings, Up42Settings
from worker.errors import (
    InvalidOrderParams,
    ProviderAuthError,
    ProviderError,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderRejected,
)
from worker.events.models import AcquisitionStatus, Automation, OrderRequest, Provider
from worker.providers.auth import TokenSource
from worker.providers.base import (
    Acquisition,
    Attempt,
    DeliveryHarvest,
    FeasibilityResult,
    FeasibilityStudy,
    OrderContext,
    OrderSnapshot,
    PlacedOrder,
    PolledOrder,
    PriceQuote,
    Quotation,
    QuotationDecision,
    RemotePhase,
    StudyDecision,
    StudyOption,
)
from worker.providers.http import (
    NullMetrics,
    ProviderHttp,
    ProviderMetrics,
    build_client,
    http_policy,
    json_body,
)

log = structlog.get_logger(__name__)

PROVIDER = Provider.UP42.value
CREDITS = "CREDITS"
TOKEN_MARGIN_SECONDS = 30.0
PAGE_SIZE = 100
MAX_DISPLAY_NAME = 200
MAX_TAG = 128

# ---------------------------------------------------------------------------------- statuses

CREATED = "CREATED"
CANCELLABLE = frozenset({"CREATED", "PLACEMENT_FAILED"})

_STATUS_PHASE: dict[str, RemotePhase] = {
    "BEING_PLACED": RemotePhase.ACTIVE,
    "PLACED": RemotePhase.ACTIVE,
    "PLACEMENT_FAILED": RemotePhase.ACTIVE,  # "wait until it is resolved": not terminal
    "BEING_FULFILLED": RemotePhase.ACQUIRING,
    "DOWNLOADED": RemotePhase.ACQUIRING,
    "DELIVERY_INITIALIZATION_FAILED": RemotePhase.ACQUIRING,  # recoverable delivery errors
    "DOWNLOAD_FAILED": RemotePhase.ACQUIRING,
    "FULFILLED": RemotePhase.COMPLETED,
    "FAILED_PERMANENTLY": RemotePhase.FAILED,
    "FAILED": RemotePhase.FAILED,
    "CANCELED": RemotePhase.CANCELLED,
}

_SUB_PHASE: dict[str, RemotePhase] = {
    "FEASIBILITY_WAITING_UPLOAD": RemotePhase.FEASIBILITY_STUDY,
    "FEASIBILITY_WAITING_RESPONSE": RemotePhase.AWAITING_OPTION,
    "QUOTATION_WAITING_UPLOAD": RemotePhase.AWAITING_QUOTATION,
    "QUOTATION_WAITING_RESPONSE": RemotePhase.QUOTATION_READY,
    "QUOTATION_ACCEPTED": RemotePhase.ACTIVE,
    "QUOTATION_REJECTED": RemotePhase.REJECTED,
}

# While CREATED, which sub-statuses make the study / the quotation worth reading.
_READ_STUDY = frozenset(
    {"FEASIBILITY_WAITING_RESPONSE", "QUOTATION_WAITING_UPLOAD", "QUOTATION_WAITING_RESPONSE"}
)
_READ_QUOTATION = frozenset({"QUOTATION_WAITING_RESPONSE", "QUOTATION_REJECTED"})
_WITH_COVERAGE = frozenset({RemotePhase.ACQUIRING, RemotePhase.COMPLETED})


def _sub_status(order: Mapping[str, Any]) -> str | None:
    details = order.get("orderDetails")
    value = details.get("subStatus") if isinstance(details, dict) else None
    return value if isinstance(value, str) else None


def order_phase(
    status: str,
    sub_status: str | None,
    study: FeasibilityStudy | None = None,
    quotation: Quotation | None = None,
    previous: RemotePhase | None = None,
) -> RemotePhase:
    """Map an order's ``status`` (and, only while ``CREATED``, its ``subStatus``) to a phase.

    The study and quotation, when read, correct a ``subStatus`` that lags behind them. Unknown
    values never raise: they keep ``previous`` (else ``ACTIVE``, or ``FEASIBILITY_STUDY`` while
    ``CREATED``).
    """
    if status == CREATED:
        if sub_status is None:
            return RemotePhase.FEASIBILITY_STUDY
        phase = _SUB_PHASE.get(sub_status, previous or RemotePhase.FEASIBILITY_STUDY)
        return _refine(phase, study, quotation)
    if status == "FAILED_PERMANENTLY" and sub_status == "QUOTATION_REJECTED":
        # Nothing follows a refused quotation, so this subStatus cannot be a stale leftover.
        return RemotePhase.REJECTED
    return _STATUS_PHASE.get(status, previous or RemotePhase.ACTIVE)


def _refine(phase: RemotePhase, study: FeasibilityStudy | None, quotation: Quotation | None) -> RemotePhase:
    if phase is RemotePhase.AWAITING_OPTION:
        if study is None:
            return RemotePhase.FEASIBILITY_STUDY
        if study.decision is StudyDecision.ACCEPTED:
            return RemotePhase.AWAITING_QUOTATION
    if phase is RemotePhase.QUOTATION_READY:
        if quotation is None:
            return RemotePhase.AWAITING_QUOTATION
        if quotation.decision is QuotationDecision.ACCEPTED:
            return RemotePhase.ACTIVE
        if quotation.decision is QuotationDecision.REJECTED:
            return RemotePhase.REJECTED
    return phase


# ---------------------------------------------------------------------------------- errors


def _envelope(body: Any) -> tuple[str | None, str | None, Any]:
    """``(message, code, details)`` from any of UP42's error bodies (``None`` when unknown)."""
    if isinstance(body, str):
        return body[:300] or None, None, None
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    if isinstance(error, dict):  # legacy {"data": null, "error": {code, message, details}}
        code = error.get("code")
        return _text(error.get("message")), None if code is None else str(code), error.get("details")
    if isinstance(error, str):  # Keycloak {"error", "error_description"}
        return _text(body.get("error_description")) or error, error, None
    if "title" in body:  # tasking {"status", "title", "detail"}
        return _text(body.get("title")), None, body.get("detail") or None
    if "message" in body:  # BasicErrorResponse {"code", "message", "details"}
        code = body.get("code")
        return _text(body.get("message")), None if code is None else str(code), body.get("details")
    return None, None, None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:300]


def translate_error(response: httpx.Response, operation: str) -> ProviderError | None:
    """The ``ProviderHttp`` hook: a specific error for UP42's documented 4xx bodies.

    5xx (including Cloudflare's 524) and 429 return ``None`` so the shared layer applies its
    read/write rules (retry a read; ``OutcomeUnknown`` for a write; honour ``Retry-After``).
    Messages carry UP42's explanation but never the request's credentials or token.
    """
    status = response.status_code
    if status >= 500 or status == 429:
        return None
    message, code, details = _envelope(json_body(response))
    text = f"{operation}: HTTP {status}" + (f": {message}" if message else "")
    extra = {"details": details} if details not in (None, {}, []) else {}
    if operation == "token" or status == 401:
        return ProviderAuthError(
            f"{text} (UP42 refused the credentials or token)", provider_code=code, details=extra
        )
    if status == 403:
        hint = (
            "only an admin-type role may decide quotations (Viewer and Member may not)"
            if operation == "decide_quotation"
            else "the account's role or plan does not allow this"
        )
        return ProviderRejected(f"{text} ({hint})", provider_code=code or "FORBIDDEN", details=extra)
    if status == 405:
        return ProviderRejected(
            f"{text} (already decided: write-protected)",
            provider_code=code or "WRITE_PROTECTED",
            details=extra,
        )
    return ProviderRejected(text, provider_code=code, details=extra)


# ---------------------------------------------------------------------------------- params

# Contract field -> the names products use for it, in order of preference.
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


def _page_items(body: Any, operation: str) -> tuple[list[dict[str, Any]], int]:
    """``(content, totalPages)`` of a Spring page; the SDK reads nothing else."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise ProviderProtocolError(
            f"{operation}: answer is not a page", provider=PROVIDER, operation=operation
        )
    total = body.get("totalPages")
    return [i for i in body["content"] if isinstance(i, dict)], total if isinstance(total, int) else 1


def _latest(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest item (an order may be re-studied or re-quoted); ISO times sort as text."""
    return max(items, key=lambda i: str(i.get("createdAt") or ""), default=None)


def to_study(raw: Mapping[str, Any]) -> FeasibilityStudy:
    """A UP42 feasibility study as the project's type (``AUTO`` studies have no options)."""
    decision = raw.get("decision")
    chosen = raw.get("decisionOption")
    return FeasibilityStudy(
        id=str(raw["id"]),
        automation=Automation.AUTOMATIC if raw.get("type") == "AUTO" else Automation.MANUAL,
        decision=StudyDecision.ACCEPTED if decision == "ACCEPTED" else StudyDecision.NOT_DECIDED,
        options=[
            StudyOption(id=str(o["id"]), description=str(o.get("description") or ""))
            for o in raw.get("options") or []
            if isinstance(o, dict) and "id" in o
        ],
        chosen_option_id=str(chosen["id"]) if isinstance(chosen, dict) and "id" in chosen else None,
    )


def to_quotation(raw: Mapping[str, Any]) -> Quotation:
    """A UP42 quotation (price in credits) as the project's type."""
    decision = raw.get("decision")
    known = {d.value for d in QuotationDecision}
    return Quotation(
        id=str(raw["id"]),
        amount=float(raw.get("creditsPrice") or 0),
        currency=CREDITS,
        decision=QuotationDecision(decision) if decision in known else QuotationDecision.NOT_DECIDED,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def to_acquisition(item: Mapping[str, Any], order_id: str) -> Acquisition:
    """One delivered STAC item as an acquisition (status ``DELIVERED``)."""
    raw = item.get("properties")
    props: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    refs = {"orderId": order_id}
    asset_id = props.get("up42-system:asset_id")
    if asset_id:
        refs["assetId"] = str(asset_id)
    geometry = item.get("geometry")
    return Acquisition(
        id=str(item["id"]),
        status=AcquisitionStatus.DELIVERED,
        provider_status="DELIVERED",
        acquired_at=_parse_time(props.get("datetime")),
        cloud_cover=_number(props.get("eo:cloud_cover")),
        incidence_angle=_number(props.get("view:incidence_angle")),
        footprint=geometry if isinstance(geometry, dict) else None,
        refs=refs,
    )


@dataclass
class _Seen:
    """What the last look at one order found (to skip unchanged coverage, keep unknown phases)."""

    updated_at: str | None
    coverage: float | None
    phase: RemotePhase


# ---------------------------------------------------------------------------------- adapter


class Up42Provider:
    """The UP42 v2 tasking API as a :class:`~worker.providers.base.TaskingProvider`.

    Args:
        settings: credentials (password grant), hosts, workspace, pacing.
        http: timeouts and retry policy.
        client: an ``httpx.AsyncClient`` to use (tests inject a transport); one is built otherwise.
        metrics: provider call metrics.
        sleep: the backoff sleep (tests pass a no-op).
        clock: monotonic seconds for token expiry (tests pass a fake clock).

    Raises:
        ProviderNotConfigured: no username or password.
    """

    name = Provider.UP42

    def __init__(
        self,
        settings: Up42Settings,
        http: HttpClientSettings,
        *,
        client: httpx.AsyncClient | None = None,
        metrics: ProviderMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.configured:
            raise ProviderNotConfigured(
                "UP42 username/password are not configured", provider=PROVIDER, operation="configure"
            )
        self._settings = settings
        self._base = str(settings.base_url).rstrip("/")
        self._owns_client = client is None
        self._client = client or build_client(http, settings.max_concurrency)
        sink: ProviderMetrics = metrics or NullMetrics()
        policy = http_policy(http, settings.rate_limit_per_second, settings.max_concurrency)
        renewed = getattr(sink, "token_renewed", None)
        self.tokens = TokenSource(
            self._fetch_token,
            margin=TOKEN_MARGIN_SECONDS,
            clock=clock,
            on_renewal=(lambda ok: renewed(PROVIDER, ok)) if callable(renewed) else None,
        )
        common: dict[str, Any] = {
            "policy": policy,
            "metrics": sink,
            "translate": translate_error,
            "sleep": sleep,
        }
        self._auth = ProviderHttp(PROVIDER, self._client, None, **common)
        self._http = ProviderHttp(PROVIDER, self._client, self.tokens, **common)
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schema_lock = asyncio.Lock()
        self._workspace: str | None = settings.workspace_id
        self._workspace_lock = asyncio.Lock()
        self._seen: dict[str, _Seen] = {}

    # ------------------------------------------------------------------ auth and workspace

    async def _fetch_token(self) -> tuple[str, float]:
        """Password grant; the form carries the secret, so it is never logged or echoed."""
        password = self._settings.password
        assert password is not None  # checked in __init__
        form = {
            "grant_type": "password",
            "username": self._settings.username or "",
            "password": password.get_secret_value(),
            "client_id": self._settings.client_id,
        }
        body = await self._auth.read("token", "POST", str(self._settings.auth_url), data=form)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderAuthError("token: answer has no access_token", provider=PROVIDER, operation="token")
        expires_in = _number(body.get("expires_in")) or 300.0
        return token, expires_in

    async def workspace_id(self) -> str:
        """The configured workspace, else the ``sub`` claim of the user-info endpoint (cached)."""
        if self._workspace is not None:
            return self._workspace
        async with self._workspace_lock:
            if self._workspace is None:
                body = await self._http.read("userinfo", "GET", self._settings.resolved_userinfo_url())
                sub = body.get("sub") if isinstance(body, dict) else None
                if not isinstance(sub, str) or not sub:
                    raise ProviderProtocolError(
                        "userinfo: no sub claim", provider=PROVIDER, operation="userinfo"
                    )
                self._workspace = sub
            return self._workspace

    def _url(self, path: str) -> str:
        return f"{self._base}{path}"

    # ------------------------------------------------------------------ params

    async def product_schema(self, product_id: str) -> dict[str, Any]:
        """The product's params JSON Schema, fetched once per product."""
        if product_id in self._schemas:
            return self._schemas[product_id]
        async with self._schema_lock:
            if product_id not in self._schemas:
                body = await self._http.read(
                    "product_schema", "GET", self._url(f"/orders/schema/{product_id}")
                )
                if not isinstance(body, dict):
                    raise ProviderProtocolError(
                        "product_schema: not a JSON Schema", provider=PROVIDER, operation="product_schema"
                    )
                self._schemas[product_id] = body
            return self._schemas[product_id]

    async def _params(self, request: OrderRequest, operation: str) -> dict[str, Any]:
        schema = await self.product_schema(request.up42_product().data_product_id)
        built = build_params(request, schema)
        props = schema.get("properties")
        declared: Mapping[str, Any] = props if isinstance(props, dict) else {}
        instance = dict(built.params)
        # The server validates the AOI and displayName against the same schema (when declared).
        if "geometry" in declared:
            instance["geometry"] = request.aoi.to_json_dict()
        if "displayName" in declared:
            instance["displayName"] = display_name(request)
        validate_params(schema, instance, built.sources, operation=operation)
        return built.params

    async def _order_body(self, request: OrderRequest, operation: str) -> dict[str, Any]:
        feature = {"type": "Feature", "properties": {}, "geometry": request.aoi.to_json_dict()}
        body: dict[str, Any] = {
            "dataProduct": request.up42_product().data_product_id,
            "displayName": display_name(request),
            "params": await self._params(request, operation),
            "featureCollection": {"type": "FeatureCollection", "features": [feature]},
        }
        tags = reference_tags(request.reference)
        if tags:  # UP42 answered 400 to an empty list: omit the key rather than send [] or null
            body["tags"] = tags
        return body

    async def validate(self, request: OrderRequest) -> None:
        """Build ``params`` from the product schema and validate them locally.

        Raises:
            InvalidOrderParams: names the parameter, the contract field it came from and the rule.
        """
        await self._params(request, "validate")

    # ------------------------------------------------------------------ no synchronous feasibility

    async def check_feasibility(self, request: OrderRequest) -> FeasibilityResult:
        """UP42 has no synchronous feasibility: studies arrive after the order is created."""
        raise ProviderRejected(
            "UP42 has no synchronous feasibility check; a study follows order creation",
            provider=PROVIDER,
            operation="check_feasibility",
            provider_code="UNSUPPORTED",
        )

    async def find_attempts(self, request: OrderRequest) -> list[Attempt]:
        """UP42 offers no acquisition attempts to choose from."""
        raise ProviderRejected(
            "UP42 has no acquisition attempts",
            provider=PROVIDER,
            operation="find_attempts",
            provider_code="UNSUPPORTED",
        )

    # ------------------------------------------------------------------ price and order

    @staticmethod
    def _item_error(body: Any, operation: str) -> ProviderRejected | None:
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors or not isinstance(errors, list) or not isinstance(errors[0], dict):
            return None
        first = errors[0]
        message = _text(first.get("message")) or "Failed"
        details = _text(first.get("details"))
        return ProviderRejected(
            f"{operation}: UP42 refused the order item: {message}" + (f" ({details})" if details else ""),
            provider=PROVIDER,
            operation=operation,
            status_code=200,
            details={"index": first.get("index"), "details": details},
        )

    async def price(self, request: OrderRequest, context: OrderContext) -> PriceQuote:
        """``POST /v2/orders/estimate``: indicative credits (the quotation is the binding price).

        Raises:
            InvalidOrderParams: the params do not fit the product schema (nothing sent).
            ProviderRejected: the estimate has a per-item error (HTTP 200) or a 4xx.
        """
        body = await self._order_body(request, "estimate")
        answer = await self._http.read("estimate", "POST", self._url("/v2/orders/estimate"), json=body)
        if (error := self._item_error(answer, "estimate")) is not None:
            raise error
        summary = answer.get("summary") if isinstance(answer, dict) else None
        credits = _number(summary.get("totalCredits")) if isinstance(summary, dict) else None
        if not isinstance(summary, dict) or credits is None:
            raise ProviderProtocolError(
                "estimate: answer has no summary.totalCredits", provider=PROVIDER, operation="estimate"
            )
        area = _number(summary.get("totalSize")) if summary.get("unit") == "SQ_KM" else None
        return PriceQuote(amount=credits, currency=CREDITS, area_km2=area, indicative=True)

    async def place_order(self, request: OrderRequest, context: OrderContext) -> PlacedOrder:
        """``POST /v2/orders?workspaceId=…``, sent once (no idempotency key at UP42).

        Raises:
            OutcomeUnknown: no answer (timeout, lost connection, 5xx): reconcile with find_order.
            ProviderRejected: a per-item error (HTTP 200) or a 400; nothing was created.
            InvalidOrderParams: the params do not fit the product schema (nothing sent).
        """
        body = await self._order_body(request, "place_order")
        workspace = await self.workspace_id()
        answer = await self._http.write(
            "place_order", "POST", self._url("/v2/orders"), params={"workspaceId": workspace}, json=body
        )
        if (error := self._item_error(answer, "place_order")) is not None:
            raise error
        results = answer.get("results") if isinstance(answer, dict) else None
        first = results[0] if isinstance(results, list) and results else None
        if not isinstance(first, dict) or not first.get("id"):
            raise ProviderProtocolError(
                "place_order: answer has neither results nor errors",
                provider=PROVIDER,
                operation="place_order",
            )
        order_id = str(first["id"])
        log.info("up42_order_created", order_id=order_id)
        return PlacedOrder(tracking_key=order_id, refs={"orderId": order_id})

    async def _orders(
        self,
        operation: str,
        query: list[tuple[str, str]],
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Walk ``GET /v2/orders`` page by page (0-based) in creation order.

        Ascending ``createdAt`` keeps pages stable while new orders are created meanwhile.
        """
        workspace = await self.workspace_id()
        page, total = 0, 1
        while page < total:
            params = [
                ("workspaceId", workspace),
                *query,
                ("sort", "createdAt,asc"),
                ("page", str(page)),
                ("size", str(PAGE_SIZE)),
            ]
            body = await self._http.read(operation, "GET", self._url("/v2/orders"), params=params)
            items, total = _page_items(body, operation)
            for item in items:
                yield item
            page += 1

    async def find_order(self, request: OrderRequest) -> PlacedOrder | None:
        """The order already placed for ``request.reference``, found by its tag(s).

        When the display name is the reference itself, orders whose tags were since removed are
        still found by ``displayName`` (exact match; UP42 may filter by substring).
        """
        tags = reference_tags(request.reference)
        name = display_name(request)
        found = await self._first(
            "find_order", [("tags", tags[0])], lambda o: all(t in (o.get("tags") or []) for t in tags)
        )
        if found is None and name == request.reference:
            found = await self._first(
                "find_order", [("displayName", name)], lambda o: o.get("displayName") == name
            )
        if found is None:
            return None
        order_id = str(found["id"])
        return PlacedOrder(tracking_key=order_id, refs={"orderId": order_id})

    async def _first(
        self,
        operation: str,
        query: list[tuple[str, str]],
        match: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any] | None:
        async with aclosing(self._orders(operation, query)) as orders:
            async for order in orders:
                if match(order) and order.get("id"):
                    return order  # the oldest one: a duplicate, if any, is newer
        return None

    # ------------------------------------------------------------------ tracking

    async def _study(self, order_id: str) -> FeasibilityStudy | None:
        body = await self._http.read(
            "get_study",
            "GET",
            self._url("/v2/tasking/feasibility-studies"),
            params={"orderId": order_id, "sort": "createdAt,desc"},
        )
        latest = _latest(_page_items(body, "get_study")[0])
        return to_study(latest) if latest else None

    async def _quotation(self, order_id: str) -> Quotation | None:
        body = await self._http.read(
            "get_quotation",
            "GET",
            self._url("/v2/tasking/quotation"),
            params={"orderId": order_id, "sort": "createdAt,desc"},
        )
        latest = _latest(_page_items(body, "get_quotation")[0])
        return to_quotation(latest) if latest else None

    async def _coverage(self, order_id: str) -> float | None:
        body = await self._http.read("get_coverage", "GET", self._url(f"/v2/coverage/orders/{order_id}"))
        covered = body.get("covered") if isinstance(body, dict) else None
        return _number(covered.get("percentage")) if isinstance(covered, dict) else None

    async def _snapshot(self, order: dict[str, Any]) -> OrderSnapshot:
        """One order as a snapshot, reading the study/quotation only while they matter."""
        order_id = str(order["id"])
        status = str(order.get("status") or "")
        sub = _sub_status(order) if status == CREATED else None
        study = await self._study(order_id) if sub in _READ_STUDY else None
        quotation = await self._quotation(order_id) if sub in _READ_QUOTATION else None
        seen = self._seen.get(order_id)
        phase = order_phase(status, _sub_status(order), study, quotation, seen.phase if seen else None)
        if status != CREATED and status not in _STATUS_PHASE:
            log.warning("up42_unknown_status", order_id=order_id, status=status, phase=phase.value)
        coverage, marker = await self._progress(order_id, order, phase, seen)
        refs = {"orderId": order_id}
        if study is not None:
            refs["feasibilityStudyId"] = study.id
        if quotation is not None:
            refs["quotationId"] = quotation.id
        return OrderSnapshot(
            tracking_key=order_id,
            refs=refs,
            provider_status=f"{status}/{sub}" if sub else status,
            phase=phase,
            study=study,
            quotation=quotation,
            coverage_pct=coverage,
            change_marker=marker,
        )

    async def _progress(
        self, order_id: str, order: Mapping[str, Any], phase: RemotePhase, seen: _Seen | None
    ) -> tuple[float | None, str | None]:
        """Coverage while acquiring, read again only when the order changed since last time."""
        updated = order.get("updatedAt")
        updated_at = str(updated) if updated is not None else None
        coverage: float | None = None
        if phase in _WITH_COVERAGE:
            unchanged = seen is not None and seen.updated_at == updated_at and seen.coverage is not None
            coverage = seen.coverage if unchanged and seen else await self._coverage(order_id)
        self._seen[order_id] = _Seen(updated_at, coverage, phase)
        marker = f"{order.get('status')}|{updated_at}|{coverage}" if phase in _WITH_COVERAGE else None
        return coverage, marker

    async def get_order(self, placed: PlacedOrder) -> OrderSnapshot:
        """``GET /v2/orders/{id}`` plus, while ``CREATED``, its study/quotation; coverage while
        acquiring."""
        order = await self._http.read("get_order", "GET", self._url(f"/v2/orders/{placed.tracking_key}"))
        if not isinstance(order, dict) or not order.get("id"):
            raise ProviderProtocolError("get_order: not an order", provider=PROVIDER, operation="get_order")
        return await self._snapshot(order)

    async def poll(self, keys: Collection[str]) -> dict[str, PolledOrder]:
        """Snapshots of the tasking orders in ``keys`` by walking ``GET /v2/orders`` pages.

        Calls grow with pages, not orders: a study or quotation is read only for orders waiting
        on one, and coverage only for acquiring orders that changed. Stops early once every key
        was seen.
        """
        wanted = set(keys)
        found: dict[str, PolledOrder] = {}
        if not wanted:
            return found
        async with aclosing(self._orders("poll", [("type", "TASKING")])) as orders:
            async for order in orders:
                order_id = str(order.get("id"))
                if order_id in wanted and order_id not in found:
                    # Built at once: a snapshot may need a study, quotation or coverage read.
                    found[order_id] = PolledOrder.of(await self._snapshot(order))
                    if len(found) == len(wanted):
                        break
        return found

    async def list_acquisitions(self, placed: PlacedOrder) -> list[Acquisition]:
        """Deliveries of the order: ``POST /v2/assets/stac/search`` filtered on
        ``up42-order:order_id`` (CQL2 JSON), following ``next`` links."""
        order_id = placed.tracking_key
        body: dict[str, Any] = {
            "filter-lang": "cql2-json",
            "filter": {"op": "=", "args": [{"property": "up42-order:order_id"}, order_id]},
            "limit": PAGE_SIZE,
        }
        url = self._url("/v2/assets/stac/search")
        acquisitions: list[Acquisition] = []
        for _ in range(1000):  # a bound against a server that links to itself forever
            answer = await self._http.read("list_acquisitions", "POST", url, json=body)
            features = answer.get("features") if isinstance(answer, dict) else None
            if not isinstance(features, list):
                raise ProviderProtocolError(
                    "list_acquisitions: not a STAC FeatureCollection",
                    provider=PROVIDER,
                    operation="list_acquisitions",
                )
            acquisitions += [
                to_acquisition(f, order_id) for f in features if isinstance(f, dict) and f.get("id")
            ]
            follow = _next_link(answer, body)
            if follow is None:
                break
            url, body = follow
        return acquisitions

    async def decide_acquisition(self, placed: PlacedOrder, acquisition_id: str, accept: bool) -> None:
        """UP42 delivers what it acquires: there is nothing to accept or refuse."""
        raise ProviderRejected(
            "UP42 has no per-acquisition decision",
            provider=PROVIDER,
            operation="decide_acquisition",
            provider_code="UNSUPPORTED",
        )

    # ------------------------------------------------------------------ decisions

    async def _find_one(self, operation: str, path: str, item_id: str, order_id: str) -> dict[str, Any]:
        body = await self._http.read(
            operation, "GET", self._url(path), params={"id": item_id, "orderId": order_id}
        )
        for item in _page_items(body, operation)[0]:
            if str(item.get("id")) == item_id:
                return item
        raise ProviderRejected(
            f"{operation}: UP42 has no {item_id!r} for order {order_id}",
            provider=PROVIDER,
            operation=operation,
            provider_code="NOT_FOUND",
        )

    async def choose_option(self, placed: PlacedOrder, study_id: str, option_id: str) -> None:
        """Choose a study option: read first, PATCH only while ``NOT_DECIDED``.

        Already decided with the same option is success (a repeated command is a no-op).

        Raises:
            ProviderRejected: decided with another option, unknown option, or 405 write-protected.
            OutcomeUnknown: the PATCH got no answer; read the study again.
        """
        raw = await self._find_one(
            "choose_option", "/v2/tasking/feasibility-studies", study_id, placed.tracking_key
        )
        study = to_study(raw)
        if study.decision is StudyDecision.ACCEPTED:
            if study.chosen_option_id == option_id:
                return
            raise ProviderRejected(
                f"choose_option: study {study_id} is already decided"
                + (
                    f" with option {study.chosen_option_id}"
                    if study.chosen_option_id
                    else " (automatic study)"
                ),
                provider=PROVIDER,
                operation="choose_option",
                provider_code="ALREADY_DECIDED",
            )
        if option_id not in {o.id for o in study.options}:
            raise ProviderRejected(
                f"choose_option: study {study_id} has no option {option_id}",
                provider=PROVIDER,
                operation="choose_option",
                provider_code="UNKNOWN_OPTION",
            )
        await self._http.write(
            "choose_option",
            "PATCH",
            self._url(f"/v2/tasking/feasibility-studies/{study_id}"),
            json={"acceptedOptionId": option_id},
        )

    async def decide_quotation(self, placed: PlacedOrder, quotation_id: str, accept: bool) -> None:
        """Accept (spends credits, irreversible) or refuse: read first, PATCH only while
        ``NOT_DECIDED``; already in the requested decision is success.

        Raises:
            ProviderRejected: decided the other way, 405 write-protected, or 403 (role).
            OutcomeUnknown: the PATCH got no answer; read the quotation again.
        """
        wanted = QuotationDecision.ACCEPTED if accept else QuotationDecision.REJECTED
        raw = await self._find_one(
            "decide_quotation", "/v2/tasking/quotation", quotation_id, placed.tracking_key
        )
        current = to_quotation(raw).decision
        if current is wanted:
            return
        if current is not QuotationDecision.NOT_DECIDED:
            raise ProviderRejected(
                f"decide_quotation: quotation {quotation_id} is already {current.value}",
                provider=PROVIDER,
                operation="decide_quotation",
                provider_code="ALREADY_DECIDED",
            )
        await self._http.write(
            "decide_quotation",
            "PATCH",
            self._url(f"/v2/tasking/quotation/{quotation_id}"),
            json={"decision": wanted.value},
        )

    async def cancel(self, placed: PlacedOrder) -> None:
        """``POST /v2/orders/{id}/cancellation``, only while ``CREATED`` or ``PLACEMENT_FAILED``
        (the SDK's rule); an order already ``CANCELED`` is success.

        Raises:
            ProviderRejected: any other status (the message names it), or UP42 refused.
            OutcomeUnknown: the POST got no answer; read the order again.
        """
        order_id = placed.tracking_key
        order = await self._http.read("cancel", "GET", self._url(f"/v2/orders/{order_id}"))
        status = str(order.get("status")) if isinstance(order, dict) else "unknown"
        if status == "CANCELED":
            return
        if status not in CANCELLABLE:
            raise ProviderRejected(
                f"UP42 allows cancellation only while CREATED or PLACEMENT_FAILED; order is {status}",
                provider=PROVIDER,
                operation="cancel",
                provider_code="NOT_CANCELLABLE",
            )
        await self._http.write("cancel", "POST", self._url(f"/v2/orders/{order_id}/cancellation"))

    async def find_deliveries(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """No delivery discovery yet: an empty harvest that keeps the caller's cursor."""
        return DeliveryHarvest(cursor=cursor)

    async def refresh_token(self) -> bool:
        """Renew the password-grant token when it is within its renewal margin (see the protocol)."""
        return await self.tokens.refresh_if_due()

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter built it."""
        if self._owns_client:
            await self._client.aclose()


def _next_link(answer: Mapping[str, Any], body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The STAC API ``next`` link of a POST search: its href and the body to send (merged)."""
    for link in answer.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            raw = link.get("body")
            extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
            merged = {**body, **extra} if link.get("merge", True) else dict(extra)
            return str(link["href"]), merged
    return None
