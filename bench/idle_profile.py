"""`python -m bench.idle_profile`: where an idle worker's CPU goes (docs/idle-memory.md).

Holds the idle scenario's connections on one worker of this checkout (`bench/idle.py`:
Engine.IO and Socket.IO handshakes with customer tokens, then only pings), and while they
are held samples the worker with py-spy (the `py-spy` next to this interpreter, or on
PATH) for `--seconds`, then prints the frames that held the most samples: inclusive (a
function and what it called) and by leaf (the frame on top). py-spy counts a sample
whenever the thread is not waiting in the event loop's poll, so on a loaded machine the
shares include time spent runnable but not running; read them as shares, and the bench's
CPU reading as the amount.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app.realtime.server import PING_INTERVAL
from bench import idle, stack


def py_spy() -> str:
    here = Path(sys.executable).with_name("py-spy")
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found (pip install py-spy)")
    return found


def summarize(raw: Path, top: int = 30, lines: bool = False) -> dict[str, Any]:
    """Shares of samples per frame from py-spy's raw (collapsed stacks) output."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [re.sub(r" \(/.*?site-packages/", " (", f) for f in stack_text.split(";")]
        if not lines:
            frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        for f in set(frames):
            inclusive[f] += n
        leaf[frames[-1]] += n

    def shares(counter: Counter[str]) -> list[tuple[float, str]]:
        return [(round(100 * c / max(total, 1), 1), f) for f, c in counter.most_common(top)]

    return {"samples": total, "inclusive": shares(inclusive), "leaf": shares(leaf)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_profile", description=__doc__)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=50, help="py-spy's sampling time")
    parser.add_argument("--out", type=Path, default=Path("idle-profile.txt"))
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    spy = py_spy()
    code = stack.ROOT
    log = Path(str(args.out) + ".log")
    with stack.private_redis(), stack.running(code, 1, log) as server:
        pid = server.worker_processes()[0].pid

        def sample() -> dict[str, Any]:
            cpu0, t0 = server.cpu_seconds(), time.monotonic()
            record = ["record", "-p", str(pid), "-d", str(args.seconds), "-r", "200"]
            subprocess.run(
                [spy, *record, "--nonblocking", "-f", "raw", "-o", str(args.out)], check=False
            )
            cpu1, t1 = server.cpu_seconds(), time.monotonic()
            return {"profiled_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 2)}

        settle = PING_INTERVAL + 3.0  # a ping cycle held before sampling, as the bench
        result = idle.run(server.url, stack.JWT_SECRET, args.connections, 2, server, settle, sample)
    summary = summarize(args.out, args.top)
    print(json.dumps({k: v for k, v in result.items() if k != "error_samples"}, indent=1))
    print(f"py-spy samples: {summary['samples']} (raw stacks in {args.out})")
    for title in ("inclusive", "leaf"):
        print(f"-- {title}")
        for share, frame in summary[title]:
            print(f"{share:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
