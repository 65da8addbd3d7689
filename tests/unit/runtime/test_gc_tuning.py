"""The service process freezes its startup objects and collects the young generation less often."""

from __future__ import annotations

import gc

from worker.app import GC_THRESHOLD, tune_gc


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        tune_gc()
        assert gc.get_freeze_count() > 1000  # modules, classes, models: everything alive so far
        assert gc.get_threshold()[0] == GC_THRESHOLD
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made after the freeze is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
