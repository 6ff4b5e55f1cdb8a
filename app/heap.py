"""The worker's garbage collector: the start-up heap frozen, and its longer pauses measured.

A worker starts with ~120,000 objects of its own and its libraries' (Sanic, sanic-ext's
OpenAPI models, Piccolo, pydantic) that live as long as it does. CPython's full
collection walked all of them every time the young objects' churn triggered one, every
10-20 s under load: 80-120 ms with the event loop stopped, every socket of the worker
waiting (the `steps` benchmark's 100-300 ms stalls of issue 15 fell on those pauses).
`gc.freeze()` once the worker is set up moves them out of the collector's sight, so a
full collection walks only what was made since (~7,000 objects: 5-6 ms).

The pauses of generations 1 and 2 are observed in `helpline_gc_pause_seconds`, so an
operator sees a latency spike that is the collector's.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from app import metrics


def freeze_startup_heap() -> int:
    """Collect what start-up left behind, then freeze the rest; the objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class PauseMeter:
    """A `gc.callbacks` entry timing the collections of generations 1 and 2. Generation
    0's, the most frequent (a few per message) and well under a millisecond, are not
    timed: an observation costs ~5 µs, more than such a collection."""

    def __init__(self) -> None:
        self._started = 0.0
        self._by_generation = [None, *(metrics.GC_PAUSE.labels(str(g)) for g in (1, 2))]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        meter = self._by_generation[info["generation"]]
        if meter is None:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            meter.observe(time.perf_counter() - self._started)


def settle() -> None:
    """A worker set up: freeze its heap and time its collections from now on."""
    metrics.GC_FROZEN.set(freeze_startup_heap())
    measure_pauses()


def measure_pauses() -> None:
    """Time the collections of generations 1 and 2 from now on (once per process)."""
    if not any(isinstance(cb, PauseMeter) for cb in gc.callbacks):
        gc.callbacks.append(PauseMeter())
