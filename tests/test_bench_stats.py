"""The benchmark's percentiles are nearest-rank: p99 of 100 values is the 99th, not the
maximum (the rounding the benchmark used before issue 15); the idle profile's shares."""

from __future__ import annotations

from pathlib import Path

from bench import idle_profile, stats


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


def test_the_idle_profile_shares_samples_by_frame_inclusive_and_on_top(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (a.py:1);sweep (/x/site-packages/b.py:5) 30\n"
        "run (a.py:1);sweep (/x/site-packages/b.py:6);walk (c.py:2) 10\n"
        "run (a.py:2) 60\n"
    )
    summary = idle_profile.summarize(raw)
    assert summary["samples"] == 100
    assert (100.0, "run (a.py)") in summary["inclusive"]
    assert (40.0, "sweep (b.py)") in summary["inclusive"]
    assert summary["leaf"] == [(60.0, "run (a.py)"), (30.0, "sweep (b.py)"), (10.0, "walk (c.py)")]
