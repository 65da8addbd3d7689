"""Sizes of the reliability suite: small in ``make test``, large in ``make soak``.

Every size is an environment variable so a run can be made larger or smaller without editing
code (see ``docs/reliability.md``). Soak tests are marked ``@pytest.mark.soak`` and excluded by
the default ``-m 'not soak'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def env_int(name: str, default: int) -> int:
    """An integer from the environment, or ``default`` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


@dataclass(frozen=True)
class Sizes:
    """How much one run does."""

    requests: int  # random-kill run: requests across both providers
    kills: int  # random-kill run: SIGKILLs
    fuzz: int  # hostile-input stream through the broker
    concurrency: int  # crash-boundary cases run at once
    handover_orders: int  # open orders restored by a group member before three poll cycles


DEFAULT = Sizes(
    requests=env_int("RELIABILITY_REQUESTS", 20),
    kills=env_int("RELIABILITY_KILLS", 3),
    fuzz=env_int("RELIABILITY_FUZZ", 300),
    concurrency=env_int("RELIABILITY_CONCURRENCY", 4),
    handover_orders=env_int("RELIABILITY_HANDOVER_ORDERS", 2000),
)
SOAK = Sizes(
    requests=env_int("SOAK_REQUESTS", 500),
    kills=env_int("SOAK_KILLS", 50),
    fuzz=env_int("SOAK_FUZZ", 10_000),
    concurrency=env_int("RELIABILITY_CONCURRENCY", 4),
    handover_orders=env_int("SOAK_HANDOVER_ORDERS", 100_000),
)
