"""UP42 payloads in the project's words: order statuses to phases, error bodies to the error
tree, studies, quotations and STAC items to the project's types. No I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from worker.domain.ports import (
    Acquisition,
    FeasibilityStudy,
    Quotation,
    QuotationDecision,
    RemotePhase,
    StudyDecision,
    StudyOption,
)
from worker.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
)
from worker.events.models import AcquisitionStatus, Automation, Provider
from worker.providers.http import (
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
    """A finite number, else ``None`` (``"inf"``, ``NaN``, overflowing integers)."""
    try:
        number = None if value is None else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


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
