"""The benchmark's outputs: the JSON record and the short Markdown table."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


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


def _get(record: dict[str, Any] | None, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# (label, target, scenario, path inside the scenario's record, higher is better)
ROWS: list[tuple[str, str, str, str, bool]] = [
    ("chat: e2e p50 ms", "", "chat", "phase.e2e_ms.p50", False),
    ("chat: e2e p99 ms", "≤ 25", "chat", "phase.e2e_ms.p99", False),
    ("chat: e2e max ms", "", "chat", "phase.e2e_ms.max", False),
    ("chat: ack p99 ms", "", "chat", "phase.ack_ms.p99", False),
    ("chat: delivered msgs/s", "", "chat", "phase.delivered_msgs_per_s", True),
    ("chat: lost / duplicated / errors", "0 / 0 / 0", "chat", "phase.faults", False),
    ("chat: server CPU s per 1,000 msgs", "", "chat", "phase.server_cpu_s_per_1000_msgs", False),
    ("chat: RSS per worker MB", "", "chat", "phase.rss_per_worker_mb", False),
    ("steps: max msgs/s with p99 ≤ 100 ms", "≥ 1,000", "steps", "max_rate_p99_100", True),
    ("steps: CPU s per 1,000 msgs at that rate", "", "steps", "cpu_at_max", False),
    ("idle: connections held on 1 worker", "all", "idle", "held", True),
    ("idle: RSS per connection KB", "≤ 40", "idle", "rss_per_connection_kb", False),
    ("REST history page (50): req/s @32", "≥ 1,500", "rest", "history.req_per_s", True),
    ("REST history page: p99 ms", "", "rest", "history.latency_ms.p99", False),
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
        " and the load generator share the machine.",
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
