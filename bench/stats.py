"""Percentiles and process limits shared by the scenarios."""

from __future__ import annotations

import math
import resource


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list: the smallest value with at least
    q % of the values at or below it (rank ceil(q/100 * n))."""
    if not sorted_values:
        return float("nan")
    n = len(sorted_values)
    rank = max(1, min(n, math.ceil(q / 100 * n - 1e-9)))
    return sorted_values[rank - 1]


def percentile_before_fix(sorted_values: list[float], q: float) -> float:
    """The benchmark's percentile until issue 15: rank round(q/100*n + 0.5), where
    round() goes to the even neighbour, so p99 of 100 values was the maximum. Kept only
    to show the fix on the same data."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summary(seconds: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max of durations given in seconds, in milliseconds."""
    if not seconds:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    values = sorted(seconds)
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * 1000, 2),
        "p95": round(percentile(values, 95) * 1000, 2),
        "p99": round(percentile(values, 99) * 1000, 2),
        "max": round(values[-1] * 1000, 2),
    }


def p99_ms(seconds: list[float], *, before_fix: bool = False) -> float | None:
    if not seconds:
        return None
    values = sorted(seconds)
    pick = percentile_before_fix if before_fix else percentile
    return round(pick(values, 99) * 1000, 2)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def raise_nofile(wanted: int = 65536) -> int:
    """Raise the open-files soft limit towards the hard one (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)
