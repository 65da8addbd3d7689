"""A :class:`worker.runtime.probes.StepProbe` that keeps every step's timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    kind: str
    phases: dict[str, float]
    total: float
    ended: float  # perf_counter() when the step ended


@dataclass
class StepRecorder:
    """Records steps that wrote state (steps that changed nothing are counted apart)."""

    steps: list[Step] = field(default_factory=list)
    unchanged: int = 0

    def step(self, kind: str, phases: dict[str, float], total: float) -> None:
        if "persist" not in phases:
            self.unchanged += 1
            return
        self.steps.append(Step(kind, dict(phases), total, time.perf_counter()))

    def clear(self) -> None:
        self.steps.clear()
        self.unchanged = 0
