"""The shared state and the lazy order lifecycle of the OneAtlas simulator."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from worker.simulators.common import SimulatorCore
from worker.simulators.oneatlas.model import (
    CAMEL,
    ICR_ACTIVE,
    ICR_COMPLETED,
    ICR_STUDY,
    LEGACY_PROG_TYPES,
    NEO_PROG_TYPES,
    PREFIX,
    SATELLITE,
    SimAcquisition,
    SimContract,
    SimOrder,
    api_error,
    code_error,
)


class SimulatorState:
    """The state every part of the simulator shares, the clock helpers and the order lifecycle.

    Orders are evaluated lazily: every request first advances every order to "now"
    (:meth:`_advance_all`), so a run is reproducible whatever the order of the polls.
    """

    core: SimulatorCore
    api_key: str
    contracts: dict[str, SimContract]
    seed: int
    token_lifetime: float
    auth_failure_status: int
    study_duration: float
    quotation_delay: float
    quotation_validity: float
    acquisition_interval: float
    coverage_per_acquisition: float
    min_clear_sky: float
    neo_auto_accept: bool
    raise_on_lost_response: bool
    listing_lag: float
    duplicate_reference_status: int | None
    orders: list[SimOrder]
    malformed_items: set[str]
    no_capacity_aois: list[dict[str, Any]]
    no_attempt_aois: list[dict[str, Any]]
    _segment_keys: dict[str, dict[str, Any]]
    _paid: Counter[str]
    _ids: int
    _lock: threading.RLock

    # ================================================================== helpers

    def _now(self) -> datetime:
        return self.core.clock.now()

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise api_error(400, "Malformed JSON body", "JSON-400") from exc
        if not isinstance(body, dict):
            raise api_error(400, "JSON body must be an object", "JSON-400")
        return body

    def _contract(self, cid: Any) -> SimContract:
        contract = self.contracts.get(str(cid))
        if contract is None:
            raise code_error(404, "E2203", f"CIS contract '{cid}' not found.")
        return contract

    def _rng(self, *parts: Any) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *parts))))

    def product_types(self, backend: str) -> list[str]:
        """The ``productTypeId`` values a contract of this backend can order."""
        if backend == "neo":
            base = [PREFIX["PLEIADESNEO"] + CAMEL[p] for p in NEO_PROG_TYPES]
            return base + [b + "Vrs" for b in base]
        return [PREFIX[m] + CAMEL[p] for m in ("PLEIADES", "SPOT") for p in LEGACY_PROG_TYPES]

    # ================================================================== lifecycle (lazy)

    def _advance_all(self) -> None:
        now = self._now()
        for order in self.orders:
            self._advance(order, now)

    def _advance(self, order: SimOrder, now: datetime) -> None:
        if order.status == ICR_STUDY and order.study_until is not None and now >= order.study_until:
            self._activate(order, order.study_until)
        if order.quotation_status == "PENDING" and order.quote_at is not None and now >= order.quote_at:
            self._send_quotation(order, order.quote_at, order.amount)
        if order.status in (ICR_ACTIVE, "IN_PROGRESS"):
            self._autopilot(order, now)

    def _activate(self, order: SimOrder, at: datetime) -> None:
        order.status = ICR_ACTIVE if order.backend == "legacy" else "IN_PROGRESS"
        order.last_change = at
        if order.attempt is not None:
            order.next_acq_at = order.attempt["start"]
        else:
            order.next_acq_at = max(at, order.start) + timedelta(seconds=self.acquisition_interval)

    def _autopilot(self, order: SimOrder, now: datetime) -> None:
        """Attempt acquisitions due up to ``now``; complete the order when covered or over."""
        while order.next_acq_at is not None and order.next_acq_at <= min(now, order.end):
            at = order.next_acq_at
            if order.attempt is not None:
                order.next_acq_at = None
                self._acquire(order, at, clear_sky=None, auto=True)
            else:
                order.next_acq_at = at + timedelta(seconds=self.acquisition_interval)
                self._acquire(order, at, clear_sky=None, auto=False)
            if order.validated_fraction >= 1.0 - 1e-9:
                self._complete(order, at)
                return
        if now >= order.end:
            self._complete(order, order.end)

    def _acquire(
        self,
        order: SimOrder,
        at: datetime,
        clear_sky: float | None,
        auto: bool,
        incidence: float | None = None,
        status: str | None = None,
    ) -> SimAcquisition | None:
        """One acquisition attempt: validated, proposed or (too cloudy) discarded (§4.5)."""
        clear = clear_sky if clear_sky is not None else round(order.rng.uniform(self.min_clear_sky, 100.0), 4)
        cloud = 100.0 - clear
        if status is None:
            if auto or cloud <= order.max_cloud:
                status = "Validated"
            elif cloud <= order.threshold:
                status = "Proposed"
            else:
                return None
        k = len(order.acquisitions) + 1
        neo = order.backend == "neo"
        acquisition = SimAcquisition(
            id=f"CIE_{order.seq:09d}_1_{k}_1" if neo else f"AS_FC_{order.seq:06d}_1_{k}",
            status=status.upper() if neo else status.capitalize(),
            clear_sky=clear,
            incidence=incidence
            if incidence is not None
            else round(order.rng.uniform(1.0, order.max_incidence), 4),
            acquired_at=at,
            footprint=order.aoi,
            catalog_id=(
                f"ACQ_PNEO{3 + k % 2}_{order.seq:06d}{k:03d}"
                if neo
                else f"DS_{SATELLITE[order.mission]}1B_{order.seq:06d}{k:03d}"
            ),
        )
        order.acquisitions.append(acquisition)
        order.last_change = at
        if acquisition.status.upper() == "VALIDATED":
            acquisition.validated_at = at
            self._add_coverage(order, 1.0 if auto else self.coverage_per_acquisition)
        return acquisition

    def _add_coverage(self, order: SimOrder, fraction: float) -> None:
        order.validated_fraction = min(1.0, order.validated_fraction + fraction)

    def _complete(self, order: SimOrder, at: datetime) -> None:
        order.status = ICR_COMPLETED if order.backend == "legacy" else "COMPLETED"
        order.next_acq_at = None
        order.last_change = at

    def _send_quotation(
        self, order: SimOrder, at: datetime, amount: float, currency: str | None = None
    ) -> None:
        order.quotation_status, order.amount = "SENT", amount
        order.currency = currency or order.currency
        order.quotation_valid_until = at + timedelta(seconds=self.quotation_validity)
        order.quote_at, order.last_change = None, at

    def _accept_quotation(self, order: SimOrder, at: datetime) -> None:
        order.quotation_status = "ACCEPTED"
        order.sales_order_id = f"SAL{21500000 + order.seq}"
        order.order_item_id = f"WOI_{order.seq:09d}_1"
        self._paid[order.customer_ref] += 1
        self._activate(order, at)

    def order(self, key: str) -> SimOrder:
        """The order named by any of its ids or its customer reference (KeyError if none)."""
        with self._lock:
            for order in reversed(self.orders):
                if key in order.ids():
                    return order
        raise KeyError(key)
