"""The UP42 adapter's tracking: an order's snapshot from the order, its study, quotation and
coverage (``get_order``, ``poll``), and its acquisitions."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import aclosing
from typing import Any

import structlog

from worker.domain.ports import (
    Acquisition,
    FeasibilityStudy,
    Known,
    OrderSnapshot,
    PlacedOrder,
    PolledOrder,
    Quotation,
    RemotePhase,
)
from worker.errors import (
    ProviderProtocolError,
    ProviderRejected,
)
from worker.providers.up42.client import Up42Client
from worker.providers.up42.mapping import (
    _READ_QUOTATION,
    _READ_STUDY,
    _STATUS_PHASE,
    _WITH_COVERAGE,
    CREATED,
    PROVIDER,
    _latest,
    _number,
    _page_items,
    _Seen,
    _sub_status,
    order_phase,
    to_acquisition,
    to_quotation,
    to_study,
)

# The adapter's lines keep the provider module's logger name (log filters rely on it).
log = structlog.get_logger("worker.providers.up42.provider")


class Up42Tracking(Up42Client):
    """The tracking calls of :class:`~.provider.Up42Provider`."""

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
        """The order's covered percentage, or ``None`` when UP42 does not serve it.

        Optional (it only enriches ``progress``): a definitive refusal (404 for an order without
        coverage data, or any other 4xx) means "not available" and the order's status still
        advances. A transient failure (5xx, timeout, 429) is raised as usual."""
        try:
            body = await self._http.read("get_coverage", "GET", self._url(f"/v2/coverage/orders/{order_id}"))
        except ProviderRejected as exc:
            log.info("up42_coverage_unavailable", order_id=order_id, status_code=exc.status_code)
            return None
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

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        """Snapshots of the tasking orders in ``keys`` by walking ``GET /v2/orders`` pages.

        Calls grow with pages, not orders: a study or quotation is read only for orders waiting
        on one, and coverage only for acquiring orders that changed. Stops early once every key
        was seen. An order ``known`` with its snapshot's fingerprint is left out of the result
        (built all the same: its fingerprint is that of the snapshot).
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
                    found[order_id] = await self._polled(order)
                    if len(found) == len(wanted):
                        break
        if known is not None:
            found = {key: p for key, p in found.items() if not known(key, p.fingerprint)}
        return found

    async def _polled(self, order: dict[str, Any]) -> PolledOrder:
        """One listed order's snapshot. A failure of its own reads (study, quotation) or of its
        parsing is carried by the result (``PolledOrder.failed``) and stays this order's: the
        rest of the listing is still delivered."""
        try:
            return PolledOrder.of(await self._snapshot(order))
        except Exception as exc:
            return PolledOrder.failed(exc)

    async def list_acquisitions(self, placed: PlacedOrder) -> list[Acquisition]:
        """Deliveries of the order: ``POST /v2/assets/stac/search`` filtered on ``up42-order:id``
        (CQL2 JSON; not ``up42-order:order_id``, an old SDK key that matches nothing), following
        ``next`` links."""
        order_id = placed.tracking_key
        cql2 = {"op": "=", "args": [{"property": "up42-order:id"}, order_id]}
        features = await self._deliveries.search(cql2, "list_acquisitions")
        return [to_acquisition(f, order_id) for f in features]

    async def decide_acquisition(self, placed: PlacedOrder, acquisition_id: str, accept: bool) -> None:
        """UP42 delivers what it acquires: there is nothing to accept or refuse."""
        raise ProviderRejected(
            "UP42 has no per-acquisition decision",
            provider=PROVIDER,
            operation="decide_acquisition",
            provider_code="UNSUPPORTED",
        )
