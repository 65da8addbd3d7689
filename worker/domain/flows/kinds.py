"""Which flow a request follows, from its provider, mission and programming type."""

from __future__ import annotations

from enum import StrEnum

from worker.domain.model import Op, OrderState
from worker.events.models import (
    AcquisitionMode,
    Automation,
    Mission,
    OrderRequest,
    ProgrammingType,
    Provider,
)


class FlowKind(StrEnum):
    ONEATLAS_FEASIBILITY = "oneatlas-feasibility"  # SPOT/PLEIADES ONEPLAN, ONESERIES
    ONEATLAS_ATTEMPTS = "oneatlas-attempts"  # SPOT/PLEIADES ONEDAY, ONENOW
    PNEO_FEASIBILITY = "pneo-feasibility"  # PLEIADESNEO ONEPLAN, ONENOWWEATHER
    PNEO_ATTEMPTS = "pneo-attempts"  # PLEIADESNEO ONEDAY, ONENOWATTEMPTS
    UP42 = "up42"


_ATTEMPT_TYPES = frozenset({ProgrammingType.ONEDAY, ProgrammingType.ONENOW, ProgrammingType.ONENOWATTEMPTS})
FEASIBILITY_FLOWS = frozenset({FlowKind.ONEATLAS_FEASIBILITY, FlowKind.PNEO_FEASIBILITY})
PNEO_FLOWS = frozenset({FlowKind.PNEO_FEASIBILITY, FlowKind.PNEO_ATTEMPTS})


def flow_of(request: OrderRequest) -> FlowKind:
    """The flow of ``request`` (a pure function of its product)."""
    if request.provider is Provider.UP42:
        return FlowKind.UP42
    product = request.oneatlas_product()
    neo = product.mission is Mission.PLEIADESNEO
    if product.programming_type in _ATTEMPT_TYPES:
        return FlowKind.PNEO_ATTEMPTS if neo else FlowKind.ONEATLAS_ATTEMPTS
    return FlowKind.PNEO_FEASIBILITY if neo else FlowKind.ONEATLAS_FEASIBILITY


def first_read(request: OrderRequest) -> Op:
    """The first provider read after validation: feasibility, attempts, or a price (UP42)."""
    kind = flow_of(request)
    if kind is FlowKind.UP42:
        return Op.PRICE
    return Op.FEASIBILITY if kind in FEASIBILITY_FLOWS else Op.ATTEMPTS


def is_manual(state: OrderState) -> bool:
    """A OneAtlas feasibility flow whose study is manual: the provider said MANUAL, or the request
    asks for stereo/tristereo (always studied by hand). No price exists before the study."""
    if flow_of(state.request) not in FEASIBILITY_FLOWS or state.feasibility is None:
        return False
    stereo = state.request.constraints.acquisition_mode is not AcquisitionMode.MONO
    return stereo or state.feasibility.automation is Automation.MANUAL
