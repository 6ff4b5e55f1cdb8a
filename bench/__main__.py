"""`python -m bench`: run the scenarios against real server processes, write the report.

Every scenario gets its own throwaway database and server. With a baseline (the default
in full mode) each scenario runs on the baseline checkout and on this one, alternating
(baseline, current, current, baseline, ...) `--repeat` times, and the report quotes the
median of each figure, so the ratios compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    # One fixed rate on 1, 2, 4 ... workers: the cost per message as workers are added.
    scaleout_plan: chat.Plan | None = None
    scaleout_workers: tuple[int, ...] = (1, 2, 4)
    # `steps` runs on each of these WEB_CONCURRENCY values: 2 must be no worse than 1.
    steps_workers: tuple[int, ...] = (2, 1)


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
        scaleout_plan=chat.Plan(customers=120, agents=2, phases=(chat.Phase(600, 10, 2),)),
    ),
    "short": Mode(
        chat_plan=chat.Plan(customers=198, agents=2, phases=(chat.Phase(200, 8),)),
        steps_plan=chat.Plan(
            customers=50, agents=2, phases=tuple(chat.Phase(r, 5) for r in (500, 1000))
        ),
        idle_connections=1000,
        rest_seconds=4,
        login_seconds=2,
        scaleout_plan=chat.Plan(customers=60, agents=2, phases=(chat.Phase(400, 6, 1),)),
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
    if mode.steps_plan is not None:
        text += f" on {' and '.join(map(str, mode.steps_workers))} workers"
    if mode.scaleout_plan is not None:
        sp = mode.scaleout_plan
        text += (
            f"; scaleout: {sp.customers} customers + {sp.agents} agents at"
            f" {sp.phases[0].rate:g} msgs/s for {sp.phases[0].seconds:g} s on"
            f" {', '.join(map(str, mode.scaleout_workers))} workers, and at"
            f" {sp.phases[0].rate / mode.scaleout_workers[-1]:g} msgs/s per worker"
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


def _passes(p: dict[str, Any]) -> bool:
    """A step is held when each direction on its own has p99 within the bound (a fast
    direction cannot hide a slow one), nothing failed and the rate was delivered."""
    return (
        all(
            p[d]["p99"] is not None and p[d]["p99"] <= P99_BOUND_MS
            for d in ("e2e_ms_customer_to_agent", "e2e_ms_agent_to_customer")
        )
        and p["faults"] == [0, 0, 0]
        and p["delivered_msgs_per_s"] >= 0.95 * p["target_rate"]
    )


def run_steps(code: Path, plan: chat.Plan, counts: tuple[int, ...], side: str) -> dict[str, Any]:
    out: dict[str, Any] = {"by_workers": {}}
    for n in counts:
        run = run_chat(code, plan, f"steps-{n}", side, workers=n)
        best = max(
            (p for p in run["phases"] if _passes(p)),
            key=lambda p: p["delivered_msgs_per_s"],
            default=None,
        )
        run["max_rate_p99_100"] = best["delivered_msgs_per_s"] if best else 0
        run["cpu_at_max"] = best["server_cpu_s_per_1000_msgs"] if best else None
        run["cpu_all_at_max"] = best["cpu_s_per_1000_msgs"]["all"] if best else None
        run["per_step"] = [
            {
                "rate": p["target_rate"],
                "held": _passes(p),
                "delivered_msgs_per_s": p["delivered_msgs_per_s"],
                "p99_customer_to_agent": p["e2e_ms_customer_to_agent"]["p99"],
                "p99_agent_to_customer": p["e2e_ms_agent_to_customer"]["p99"],
                "cpu_all_per_1000": p["cpu_s_per_1000_msgs"]["all"],
            }
            for p in run["phases"]
        ]
        out["by_workers"][str(n)] = run
    first = out["by_workers"][str(counts[0])]
    out.update(
        {k: first[k] for k in ("max_rate_p99_100", "cpu_at_max", "cpu_all_at_max", "phases")}
    )
    if "1" in out["by_workers"] and "2" in out["by_workers"]:
        one, two = out["by_workers"]["1"]["per_step"], out["by_workers"]["2"]["per_step"]
        out["max_rate_p99_100_one_worker"] = out["by_workers"]["1"]["max_rate_p99_100"]
        # Steps one worker holds and two do not.
        out["two_workers_worse_at"] = [
            a["rate"] for a, b in zip(one, two, strict=True) if a["held"] and not b["held"]
        ]
    return out


def run_scaleout(code: Path, plan: chat.Plan, counts: tuple[int, ...], side: str) -> dict[str, Any]:
    """The same load on 1, 2, 4 ... workers: CPU per 1,000 messages over every process
    (workers, PostgreSQL, Redis), and what each worker's Redis listener received and
    delivered. Then the smaller counts again at the largest count's load per worker (1
    worker at a quarter of the rate, ...): a worker's cost per message falls as its own
    rate rises (more of each wake, statement and pipeline is shared), so the fixed-rate
    ratio mixes what adding workers costs with what each worker's lighter load costs."""
    out: dict[str, Any] = {"by_workers": {}, "by_workers_equal_load": {}}
    for n in counts:
        out["by_workers"][str(n)] = _scaleout_run(code, plan, n, side, f"scaleout-{n}")
    most = counts[-1]
    for n in counts[:-1]:
        phases = tuple(dataclasses.replace(p, rate=p.rate * n / most) for p in plan.phases)
        equal = dataclasses.replace(plan, phases=phases)
        out["by_workers_equal_load"][str(n)] = _scaleout_run(
            code, equal, n, side, f"scaleout-equal-{n}"
        )
    out["by_workers_equal_load"][str(most)] = out["by_workers"][str(most)]
    first, last = str(counts[0]), str(counts[-1])
    cpu = {n: out["by_workers"][n]["cpu_s_per_1000_msgs"]["all"] for n in (first, last)}
    out["cpu_all_first"] = cpu[first]
    out["cpu_all_last"] = cpu[last]
    out["cpu_ratio_last_to_first"] = (
        round(cpu[last] / cpu[first], 3) if cpu[first] and cpu[last] else None
    )
    equal_first = out["by_workers_equal_load"][first]["cpu_s_per_1000_msgs"]["all"]
    out["cpu_all_first_equal_load"] = equal_first
    out["cpu_ratio_last_to_first_equal_load"] = (
        round(cpu[last] / equal_first, 3) if equal_first and cpu[last] else None
    )
    last_bus = out["by_workers"][last]["pubsub"]
    out["decoded_undelivered_pct_last"] = last_bus["decoded_undelivered_pct"] if last_bus else None
    equal_runs = [out["by_workers_equal_load"][str(n)] for n in counts[:-1]]
    runs = [*out["by_workers"].values(), *equal_runs]
    out["faults"] = [sum(run["faults"][i] for run in runs) for i in range(3)]
    return out


def _scaleout_run(code: Path, plan: chat.Plan, n: int, side: str, name: str) -> dict[str, Any]:
    phase = run_chat(code, plan, name, side, workers=n)["phase"]
    return {
        "faults": phase["faults"],
        "rate": plan.phases[0].rate,
        "delivered_msgs_per_s": phase["delivered_msgs_per_s"],
        "e2e_p99_ms": phase["e2e_ms"]["p99"],
        "cpu_s_per_1000_msgs": phase["cpu_s_per_1000_msgs"],
        "pubsub": phase.get("pubsub") or None,
    }


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
        "--only",
        default="chat,steps,scaleout,idle,rest",
        help="comma-separated scenarios to run",
    )
    parser.add_argument(
        "--idle-connections",
        type=int,
        default=None,
        help="connections of the idle scenario (default: the mode's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the report")

    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per side (full mode: 2), alternated"
    )
    parser.add_argument(
        "--rates", default=None, help="steps: comma-separated msgs/s (a loaded machine needs fewer)"
    )
    parser.add_argument("--scaleout-rate", type=float, default=None, help="scaleout: msgs/s")
    args = parser.parse_args(argv)
    name = "smoke" if args.smoke else "short" if args.short else "full"
    mode = MODES[name]
    if args.rates and mode.steps_plan is not None:
        phases = tuple(
            dataclasses.replace(mode.steps_plan.phases[0], rate=float(r))
            for r in args.rates.split(",")
        )
        mode = dataclasses.replace(
            mode, steps_plan=dataclasses.replace(mode.steps_plan, phases=phases)
        )
    if args.scaleout_rate and mode.scaleout_plan is not None:
        plan = mode.scaleout_plan
        phases = (dataclasses.replace(plan.phases[0], rate=args.scaleout_rate),)
        mode = dataclasses.replace(mode, scaleout_plan=dataclasses.replace(plan, phases=phases))
    if args.idle_connections is not None:
        mode = dataclasses.replace(mode, idle_connections=args.idle_connections)
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
        scenarios["steps"] = lambda code, side: run_steps(code, plan, mode.steps_workers, side)
    if mode.scaleout_plan is not None:
        scale_plan = mode.scaleout_plan
        scenarios["scaleout"] = lambda code, side: run_scaleout(
            code, scale_plan, mode.scaleout_workers, side
        )
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
