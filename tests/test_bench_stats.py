"""The benchmark's percentiles are nearest-rank: p99 of 100 values is the 99th, not the
maximum (the rounding the benchmark used before issue 15)."""

from __future__ import annotations

from bench import stats


def test_p99_of_a_hundred_values_is_the_99th_not_the_maximum() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 99) == 99.0
    assert stats.percentile_before_fix(values, 99) == 100.0


def test_nearest_rank_percentile_is_the_smallest_value_covering_q_percent() -> None:
    values = [float(v) for v in range(1, 11)]
    assert stats.percentile(values, 50) == 5.0
    assert stats.percentile(values, 95) == 10.0
    assert stats.percentile(values, 10) == 1.0
    assert stats.percentile([7.0], 99) == 7.0
