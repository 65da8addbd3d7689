"""What the runner reports to: its metrics port and the optional per-step probe."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class RunnerMetrics(Protocol):
    def order_transition(self, provider: str, status: str) -> None: ...

    def acquisition_decision(self, provider: str, decision: str, decided_by: str) -> None: ...

    def delivery_published(self, provider: str, n: int = 1) -> None: ...
    def routing_choice(self, provider: str, prefer: str, by: str) -> None: ...


class StepProbe(Protocol):
    """Optional instrumentation, told the wall time of every applied event (benchmarks).

    ``phases`` maps ``decide``, ``persist``, ``perform`` and ``publish`` (in that order) to seconds
    (only the phases the step went through: an event that changes nothing has ``decide`` only).
    The order's next provider call starts at the end of ``perform``; ``total`` is the whole step
    under the order's lock, up to the events' acknowledgement. With ``Runner.probe`` left
    ``None`` (production) the runner reads no clock and builds nothing: the cost is one
    ``is None`` test per phase.
    """

    def step(self, kind: str, phases: dict[str, float], total: float) -> None: ...


class _Marks:
    """Phase timestamps of one step (built only when a probe is installed)."""

    __slots__ = ("last", "phases", "started")

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.started = self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = now - self.last
        self.last = now


def utc_now() -> datetime:
    return datetime.now(UTC)
