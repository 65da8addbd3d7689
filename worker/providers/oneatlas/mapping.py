"""OneAtlas order and acquisition records mapped to the project's types (phases, snapshots)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from worker.domain.identity import listed_identity, parse_instant
from worker.domain.ports import (
    Acquisition,
    AcquisitionCounts,
    OrderSnapshot,
    Quotation,
    QuotationDecision,
    RemotePhase,
)
from worker.events.models import AcquisitionStatus
from worker.providers.oneatlas.common import (
    ICR_ACTIVE,
    ICR_CANCELLED,
    ICR_COMPLETED,
    ICR_FEASIBILITY,
    SEGMENT_STATUS,
    as_dict,
    as_float,
    as_int,
    as_list,
    log,
    parse_time,
    refs_of,
)


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
    mapped = SEGMENT_STATUS.get(status.strip().lower())
    if mapped is None:
        log.warning("oneatlas_unknown_acquisition_status", status=status)
        return AcquisitionStatus.PENDING
    return mapped


def quotation_decision(quotation_status: str) -> QuotationDecision:
    q = quotation_status.upper()
    if q == "ACCEPTED":
        return QuotationDecision.ACCEPTED
    if q in ("REFUSED", "REJECTED", "EXPIRED"):
        return QuotationDecision.REJECTED
    return QuotationDecision.NOT_DECIDED


def legacy_snapshot(item: Mapping[str, Any], contract_id: str) -> OrderSnapshot:
    """An :class:`OrderSnapshot` from one ``/taskings`` list item (``{sal, so, icr}``)."""
    icr = as_dict(item.get("icr"))
    status = str(icr.get("status") or "")
    proposed, total = as_int(icr.get("nbProposedSegments")), as_int(icr.get("nbTotalSegments"))
    progress = as_dict(icr.get("taskingProgress"))
    validated_area = as_float(progress.get("validatedArea")) or 0.0
    ordered_area = as_float(progress.get("orderedArea")) or 0.0
    coverage = min(100.0, 100.0 * validated_area / ordered_area) if ordered_area > 0 else None
    refs = refs_of(
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
    tasking = as_dict(line.get("tasking"))
    proposed = as_int(tasking.get("nbProposedCoverageItems"))
    total = as_int(tasking.get("totalCoverageItems"))
    pct = as_float(tasking.get("validatedAreaPct"))
    key = neo_quotation_id(line) or ""
    quotation = None
    amount = as_float(line.get("orderLineAmount"))
    if key and amount is not None and quotation_status:
        quotation = Quotation(
            id=key,
            amount=amount,
            currency=str(line.get("currency") or "EUR"),
            decision=quotation_decision(quotation_status),
            valid_until=parse_time(line.get("quotationEndOfValidityDate")),
        )
    return OrderSnapshot(
        tracking_key=key,
        refs=refs_of(
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


def legacy_identity(item: Mapping[str, Any]) -> dict[str, str]:
    """What a legacy tasking item states about its order: ``icr.progTypeName`` (camel-case),
    ``icr.aoi`` and ``icr.period`` (whether that is the requested window or the acquisition
    period is not documented, so it is compared as lying within the request's window)."""
    icr = as_dict(item.get("icr"))
    period = as_dict(icr.get("period"))
    return listed_identity(
        programming_type=icr.get("progTypeName"),
        geometry=icr.get("aoi"),
        period=(parse_instant(period.get("startDate")), parse_instant(period.get("endDate"))),
    )


def neo_identity(line: Mapping[str, Any]) -> dict[str, str]:
    """What a Pléiades Neo order line states: ``mission``, ``aoi.geometry`` and the first
    ``tasking.period`` entry (the requested window)."""
    periods = as_list(as_dict(line.get("tasking")).get("period"))
    first = as_dict(periods[0]) if periods else {}
    return listed_identity(
        mission=line.get("mission"),
        geometry=as_dict(line.get("aoi")).get("geometry"),
        window=(parse_instant(first.get("startDate")), parse_instant(first.get("endDate"))),
    )


def from_raw(parse: Callable[..., OrderSnapshot], raw: bytes, *args: Any) -> OrderSnapshot:
    """``parse`` of a list item kept as the bytes its fingerprint was taken of: a poll holds one
    item per order until the cycle decides which snapshots to build, and bytes, unlike the
    decoded item's dicts, are not tracked by the garbage collector (at 100,000 orders the dicts
    made each full collection during a cycle several times longer)."""
    return parse(orjson.loads(raw), *args)


def neo_quotation_id(line: Mapping[str, Any]) -> str | None:
    """The quotation id of an order line (``quotationId`` or the nested ``cis.quotation``)."""
    value = line.get("quotationId") or as_dict(line.get("cis")).get("quotation")
    return str(value) if value else None


def acquisition_from(record: Mapping[str, Any], *, id_key: str, refs: Mapping[str, str]) -> Acquisition:
    """An :class:`Acquisition` from a legacy segment (``asDetail1``) or a PNEO coverage item."""
    detail = as_dict(record.get("asDetail1")) or dict(record)
    clear_sky = as_float(detail.get("clearSkyRate"))
    footprint = detail.get("footprint")
    status = str(record.get("status") or "")
    extra = refs_of(catalogId=detail.get("catalogId"), archiveId=detail.get("archiveId"))
    return Acquisition(
        id=str(record.get(id_key) or ""),
        status=segment_status(status),
        provider_status=status,
        acquired_at=parse_time(detail.get("acquisitionDate")),
        cloud_cover=None if clear_sky is None else min(100.0, max(0.0, 100.0 - clear_sky)),
        incidence_angle=as_float(detail.get("incidenceAngle")),
        footprint=footprint if isinstance(footprint, dict) else None,
        refs={**refs, **extra},
    )
