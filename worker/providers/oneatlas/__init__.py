"""Airbus OneAtlas: the tasking adapter (SPOT / Pléiades on ``legacy``, Pléiades Neo on ``neo``).

* :mod:`.provider`: :class:`OneAtlasProvider`, the :class:`~worker.domain.ports.TaskingProvider`;
* :mod:`.ordering`: validation rules and the feasibility, attempts, price and order bodies;
* :mod:`.mapping`: provider records mapped to phases, snapshots and acquisitions;
* :mod:`.failures`: the provider's error bodies mapped to the project's error tree;
* :mod:`.common`: constants and value helpers.
"""

from worker.providers.oneatlas.mapping import (
    acquisition_from,
    icr_phase,
    legacy_snapshot,
    neo_phase,
    neo_snapshot,
    segment_status,
)
from worker.providers.oneatlas.provider import OneAtlasProvider

__all__ = [
    "OneAtlasProvider",
    "acquisition_from",
    "icr_phase",
    "legacy_snapshot",
    "neo_phase",
    "neo_snapshot",
    "segment_status",
]
