"""app/heap.py: the collector's pauses are timed for generations 1 and 2 only."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from app import heap


def pauses(generation: int) -> float:
    labels = {"generation": str(generation)}
    return REGISTRY.get_sample_value("helpline_gc_pause_seconds_count", labels) or 0.0


def test_collections_of_generations_1_and_2_are_timed_and_0_is_not():
    heap.measure_pauses()
    heap.measure_pauses()  # once per process, however often it is asked
    before = [pauses(g) for g in range(3)]
    for generation in (0, 1, 2):
        gc.collect(generation)
    after = [pauses(g) for g in range(3)]
    assert after[1] == before[1] + 1 and after[2] == before[2] + 1
    assert after[0] == before[0] == 0.0
