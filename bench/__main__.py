"""`python -m bench`: run the scenarios against real server processes, write the report.

Every scenario gets its own throwaway database and server. With a baseline (the default
in full mode) each scenario runs on the baseline checkout and on this one, alternating
(baseline, current, current, baseline, ...) `--repeat` times, and the report quotes the
median of each figure, so the ratios compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import chat, idle, report, rest, stack, stats

# The commit before the hot-path work: what "before" means in the full report.
DEFAULT_BASELINE = "f4b1fba"
RESULTS = Path(__file__).resolve().parent / "results"
LOGS = Path(tempfile.gettempdir()) / "helpline-bench-logs"
P99_BOUND_MS = 100.0
PING_INTERVAL = 25  # the server's Engine.IO ping interval (app/realtime/server.py)


@dataclass(frozen=True)
class Mode:
    chat_plan: chat.Plan
    steps_plan: chat.Plan | None
    idle_connections: int
    rest_seconds: float
    login_seconds: float
    # Idle memory is read once every connection has been through a ping cycle.
    idle_settle: float = PING_INTERVAL + 3
    repeat: int = 1


MODES = {
    "full": Mode(
        chat_plan=chat.Plan(customers=495, agents=5, phases=(chat.Phase(200, 20, 2),)),
        steps_plan=chat.Plan(
            customers=100,
            agents=2,
            phases=tuple(
                chat.Phase(r, 8) for r in (250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000)
            ),
        ),
        idle_connections=5000,
        rest_seconds=10,
        login_seconds=5,
        repeat=2,
    ),
    "short": Mode(
        chat_plan=chat.Plan(customers=198, agents=2, phases=(chat.Phase(200, 8),)),
        steps_plan=chat.Plan(
            customers=50, agents=2, phases=tuple(chat.Phase(r, 5) for r in (500, 1000))
        ),
        idle_connections=1000,
        rest_seconds=4,
        login_seconds=2,
    ),
    "smoke": Mode(
        chat_plan=chat.Plan(customers=6, agents=2, phases=(chat.Phase(20, 4),)),
        steps_plan=None,
        idle_connections=20,
        rest_seconds=1,
        login_seconds=1,
        idle_settle=1,
    ),
}


def describe(mode: Mode) -> str:
    chat_plan, phase = mode.chat_plan, mode.chat_plan.phases[0]
    text = (
        f"chat: {chat_plan.customers} customers + {chat_plan.agents} agents on 2 workers,"
        f" {phase.rate:g} msgs/s for {phase.seconds:g} s"
    )
    if mode.steps_plan is not None:
        rates = ", ".join(f"{p.rate:g}" for p in mode.steps_plan.phases)
        text += (
            f"; steps: {mode.steps_plan.customers} customers + {mode.steps_plan.agents} agents"
            f" at {rates} msgs/s, {mode.steps_plan.phases[0].seconds:g} s each"
        )
    return (
        text + f"; idle: {mode.idle_connections} connections on 1 worker; REST: wrk (or aiohttp)"
        f" at concurrency 32 for {mode.rest_seconds:g} s (login {mode.login_seconds:g} s)"
    )


def run_chat(code: Path, plan: chat.Plan, name: str, side: str, workers: int = 2) -> dict[str, Any]:
    with stack.running(code, workers, LOGS / f"{name}-{side}.log") as server:
        out = chat.run(server.url, plan, workers, server)
    for phase in out["phases"]:
        phase["faults"] = [phase["lost"], phase["duplicated"], phase["errors"]]
    out["phase"] = out["phases"][0]
    return out


def run_steps(code: Path, plan: chat.Plan, side: str) -> dict[str, Any]:
    out = run_chat(code, plan, "steps", side)
    # Each direction on its own must meet the bound (a fast direction cannot hide a slow one).
    good = [
        p
        for p in out["phases"]
        if all(
            p[d]["p99"] is not None and p[d]["p99"] <= P99_BOUND_MS
            for d in ("e2e_ms_customer_to_agent", "e2e_ms_agent_to_customer")
        )
        and p["faults"] == [0, 0, 0]
        and p["delivered_msgs_per_s"] >= 0.95 * p["target_rate"]
    ]
    best = max(good, key=lambda p: p["delivered_msgs_per_s"], default=None)
    out["max_rate_p99_100"] = best["delivered_msgs_per_s"] if best else 0
    out["cpu_at_max"] = best["server_cpu_s_per_1000_msgs"] if best else None
    out["cpu_all_at_max"] = best["cpu_s_per_1000_msgs"]["all"] if best else None
    return out


def run_idle(code: Path, connections: int, settle: float, side: str) -> dict[str, Any]:
    with stack.running(code, 1, LOGS / f"idle-{side}.log") as server:
        return idle.run(server.url, stack.JWT_SECRET, connections, 2, server, settle)


def run_rest(code: Path, mode: Mode, side: str) -> dict[str, Any]:
    with stack.running(code, 2, LOGS / f"rest-{side}.log") as server:
        requests = rest.prepare(server.url)
        out: dict[str, Any] = {}
        for request in requests:
            seconds = mode.login_seconds if request.name == "login" else mode.rest_seconds
            cpu0 = server.cpu_seconds()
            out[request.name] = rest.measure(server.url, request, 32, seconds)
            out[request.name]["server_cpu_s"] = round(server.cpu_seconds() - cpu0, 2)
        return out


def checkout(ref: str) -> Path:
    """A worktree of `ref` under the temp dir (reused by later runs)."""
    commit = _git("rev-parse", "--short", ref)
    path = Path(tempfile.gettempdir()) / f"helpline-bench-{commit}"
    if not (path / "Procfile").exists():
        _git("worktree", "add", "--detach", "--force", str(path), commit)
    return path


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=stack.ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="a run of under two minutes")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline",
        default=None,
        help=f"git ref to compare with ('none' for no comparison; full mode: {DEFAULT_BASELINE})",
    )
    parser.add_argument(
        "--only", default="chat,steps,idle,rest", help="comma-separated scenarios to run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the report")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per side (full mode: 2), alternated"
    )
    args = parser.parse_args(argv)
    name = "smoke" if args.smoke else "short" if args.short else "full"
    mode = MODES[name]
    baseline_ref = args.baseline or (DEFAULT_BASELINE if name == "full" else "none")
    stats.raise_nofile()
    LOGS.mkdir(parents=True, exist_ok=True)
    sides: dict[str, Path] = {}
    if baseline_ref != "none":
        sides["baseline"] = checkout(baseline_ref)
    sides["current"] = stack.ROOT
    wanted = set(args.only.split(","))
    scenarios: dict[str, Callable[[Path, str], dict[str, Any]]] = {
        "chat": lambda code, side: run_chat(code, mode.chat_plan, "chat", side),
        "idle": lambda code, side: run_idle(code, mode.idle_connections, mode.idle_settle, side),
        "rest": lambda code, side: run_rest(code, mode, side),
    }
    if mode.steps_plan is not None:
        plan = mode.steps_plan
        scenarios["steps"] = lambda code, side: run_steps(code, plan, side)
    started = dt.datetime.now(dt.UTC)
    record: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": name,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "baseline": _git("rev-parse", "--short", baseline_ref) if "baseline" in sides else None,
        "machine": report.machine(),
        "scenarios": describe(mode),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "results": {},
    }
    repeat = args.repeat or mode.repeat
    record["repeat"] = repeat
    with stack.private_redis() as redis_url:
        record["redis"] = "private" if stack.REDIS_PRIVATE else redis_url
        for scenario, run in scenarios.items():
            if scenario not in wanted:
                continue
            runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            record["results"][scenario] = runs
            for n in range(repeat):
                # baseline, current, current, baseline, ...: drift in the machine's load
                # falls on both sides alike.
                order = list(sides.items()) if n % 2 == 0 else list(sides.items())[::-1]
                for side, code in order:
                    print(
                        f"bench: {scenario} on {side} ({code}), run {n + 1}/{repeat}",
                        file=sys.stderr,
                        flush=True,
                    )
                    load = [round(x, 2) for x in os.getloadavg()]
                    result = run(code, side)
                    result["load_average"] = load
                    runs[side].append(result)
    record["load_end"] = [round(x, 2) for x in os.getloadavg()]
    record["summary"] = report.rows(record["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d-%H%M") + ("" if name == "full" else f"-{name}")
    json_path = args.out / f"{stem}.json"
    json_path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    table = report.markdown(record)
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    print(f"bench: wrote {json_path} and {stem}.md (server logs in {LOGS})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
