"""The benchmark's outputs: the JSON record and the short Markdown table."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from bench import stats


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _get_one(record: dict[str, Any] | None, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _get(runs: list[dict[str, Any]] | dict[str, Any] | None, path: str) -> Any:
    """A figure over a side's repeated runs: the median of numbers, the worst of fault
    counts (lists of numbers), the first run's anything else."""
    if not isinstance(runs, list):
        return _get_one(runs, path)
    values = [_get_one(r, path) for r in runs]
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        m = stats.median([float(v) for v in values])
        return round(m, 3) if isinstance(values[0], float) or m != int(m) else int(m)
    if path.endswith("faults"):
        return [max(column) for column in zip(*values, strict=True)]
    return values[0]


# (label, target, scenario, path inside the scenario's record, higher is better)
ROWS: list[tuple[str, str, str, str, bool]] = [
    ("chat: e2e p50 ms", "", "chat", "phase.e2e_ms.p50", False),
    ("chat: e2e p99 ms", "≤ 25", "chat", "phase.e2e_ms.p99", False),
    ("chat: e2e p99 ms customer → agent", "", "chat", "phase.e2e_ms_customer_to_agent.p99", False),
    ("chat: e2e p99 ms agent → customer", "", "chat", "phase.e2e_ms_agent_to_customer.p99", False),
    (
        "chat: e2e p99 ms, same data as before issue 15",
        "",
        "chat",
        "phase.method.p99_ms_as_before_issue_15",
        False,
    ),
    ("chat: e2e max ms", "", "chat", "phase.e2e_ms.max", False),
    ("chat: ack p99 ms", "", "chat", "phase.ack_ms.p99", False),
    ("chat: delivered msgs/s", "", "chat", "phase.delivered_msgs_per_s", True),
    ("chat: lost / duplicated / errors", "0 / 0 / 0", "chat", "phase.faults", False),
    ("chat: CPU s per 1,000 msgs, workers", "", "chat", "phase.cpu_s_per_1000_msgs.workers", False),
    (
        "chat: CPU s per 1,000 msgs, PostgreSQL",
        "",
        "chat",
        "phase.cpu_s_per_1000_msgs.postgres",
        False,
    ),
    ("chat: CPU s per 1,000 msgs, Redis", "", "chat", "phase.cpu_s_per_1000_msgs.redis", False),
    ("chat: CPU s per 1,000 msgs, all", "", "chat", "phase.cpu_s_per_1000_msgs.all", False),
    ("chat: RSS per worker MB", "", "chat", "phase.rss_per_worker_mb", False),
    (
        "steps: max msgs/s with p99 ≤ 100 ms (2 workers)",
        "≥ 2,500",
        "steps",
        "max_rate_p99_100",
        True,
    ),
    (
        "steps: the same on 1 worker",
        "",
        "steps",
        "max_rate_p99_100_one_worker",
        True,
    ),
    ("steps: rates 1 worker holds and 2 do not", "none", "steps", "two_workers_worse_at", False),
    ("steps: CPU s per 1,000 msgs at that rate, workers", "", "steps", "cpu_at_max", False),
    ("steps: CPU s per 1,000 msgs at that rate, all", "", "steps", "cpu_all_at_max", False),
    (
        "scaleout: CPU s per 1,000 msgs, all processes, 1 worker",
        "",
        "scaleout",
        "cpu_all_first",
        False,
    ),
    (
        "scaleout: CPU s per 1,000 msgs, all processes, 4 workers",
        "",
        "scaleout",
        "cpu_all_last",
        False,
    ),
    ("scaleout: 4 workers / 1 worker", "≤ 1.15", "scaleout", "cpu_ratio_last_to_first", False),
    (
        "scaleout: CPU s per 1,000 msgs, all, 1 worker at a quarter of the rate",
        "",
        "scaleout",
        "cpu_all_first_equal_load",
        False,
    ),
    (
        "scaleout: 4 workers / 1 worker, equal load per worker",
        "",
        "scaleout",
        "cpu_ratio_last_to_first_equal_load",
        False,
    ),
    (
        "scaleout: decoded but undelivered, % (4 workers)",
        "≤ 5",
        "scaleout",
        "decoded_undelivered_pct_last",
        False,
    ),
    ("scaleout: lost / duplicated / errors", "0 / 0 / 0", "scaleout", "faults", False),
    ("idle: connections held on 1 worker", "all", "idle", "held", True),
    ("idle: connections pinged and answering", "all", "idle", "pinged", True),
    ("idle: RSS per connection KB", "≤ 20", "idle", "rss_per_connection_kb", False),
    ("idle: worker CPU % of a core while idle", "< 5", "idle", "idle_cpu_percent", False),
    (
        "idle: RSS per connection KB read 3 s in (before issue 15)",
        "",
        "idle",
        "rss_per_connection_kb_read_early",
        False,
    ),
    ("REST history page (50): req/s @32", "≥ 1,500", "rest", "history.req_per_s", True),
    ("REST history page: p99 ms", "", "rest", "history.latency_ms.p99", False),
    ("REST inbox page (50): req/s @32", "", "rest", "inbox.req_per_s", True),
    ("REST inbox page: p99 ms", "", "rest", "inbox.latency_ms.p99", False),
    ("REST session creation: req/s @32", "", "rest", "session_create.req_per_s", True),
    ("REST login: req/s @32", "", "rest", "login.req_per_s", True),
]


def rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per figure: before, after, and after/before."""
    out = []
    for label, target, scenario, path, higher in ROWS:
        sides = results.get(scenario)
        if not sides:
            continue
        before = _get(sides.get("baseline"), path)
        after = _get(sides.get("current"), path)
        ratio = None
        if isinstance(before, int | float) and isinstance(after, int | float) and before:
            ratio = round(after / before, 2)
        out.append(
            {
                "figure": label,
                "target": target,
                "before": before,
                "after": after,
                "ratio": ratio,
                "higher_is_better": higher,
            }
        )
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return " / ".join(_cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    has_baseline = any(r["before"] is not None for r in record["summary"])
    lines = [
        f"Run {record['date']} ({record['mode']}), commit {record['commit']}"
        + (f" vs baseline {record['baseline']}" if has_baseline else ""),
        f"on {m['cores']} cores, {m['cpu_model']}; load average at start"
        f" {record['load_start']}, at end {record['load_end']}; server, PostgreSQL, Redis"
        " and the load generator share the machine (absolute figures are depressed by"
        " whatever else runs on it: compare ratios). Each figure is the median of"
        f" {record.get('repeat', 1)} run(s) per side, sides alternated.",
        "",
        f"Scenarios: {record['scenarios']}.",
        "",
    ]
    if has_baseline:
        lines += [
            "| figure | target | before | after | after/before |",
            "|---|---|---|---|---|",
        ]
        for r in record["summary"]:
            lines.append(
                f"| {r['figure']} | {r['target']} | {_cell(r['before'])} | {_cell(r['after'])}"
                f" | {_cell(r['ratio'])} |"
            )
    else:
        lines += ["| figure | target | result |", "|---|---|---|"]
        for r in record["summary"]:
            lines.append(f"| {r['figure']} | {r['target']} | {_cell(r['after'])} |")
    return "\n".join(lines) + "\n"
