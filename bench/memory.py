"""`python -m bench.memory`: what one idle websocket connection costs, object by object.

One traced worker (`bench.traced_server`: tracemalloc with 12 frames) is snapshotted
after warm-up and again while N idle customer connections are held, after a ping cycle.
The difference divided by N is the account of one connection:

- by creating line: each allocation charged to the innermost frame in our code or a
  library (not the standard library's asyncio or collections), so an asyncio.Queue shows
  up as the python-engineio line that asked for it;
- by allocating line: where the bytes were actually allocated;
- by type: live objects per connection (`gc`), with their `sys.getsizeof` bytes;
- tasks per connection, by coroutine.

RSS figures of a traced worker are inflated by tracemalloc's own bookkeeping: the
benchmark's idle scenario (`python -m bench --only idle`) gives the untraced figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from bench import idle, stack, stats

RESULTS = Path(__file__).resolve().parent / "results"
# One Engine.IO ping interval (25 s) and a margin: every connection pinged and answered.
PING_SETTLE = 28.0
# Frames charged to the first caller outside them.
PLUMBING = (
    "/asyncio/",
    "/collections/",
    "/weakref",
    "/_weakrefset",
    "/functools",
    "/contextlib",
    "/typing",
    "<frozen",
    "/selectors",
    "/enum",
    "/copy",
    "/abc",
)


def _site(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for marker in ("site-packages/", "/app/", "/bench/"):
        at = name.rfind(marker)
        if at != -1:
            start = at + len("site-packages/") if marker == "site-packages/" else at + 1
            name = name[start:]
            break
    else:
        name = name.rsplit("/lib/python3", 1)[-1].lstrip("0123456789./")
        name = "stdlib/" + name
    return f"{name}:{frame.lineno}"


def _creator(trace: tracemalloc.Traceback) -> str:
    # Frames run from the oldest to the most recent call.
    for frame in reversed(trace):
        if not any(p in frame.filename for p in PLUMBING):
            return _site(frame)
    return _site(trace[0])


def account(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    """The difference of two dumps, per connection."""
    diff = after["snapshot"].compare_to(before["snapshot"], "traceback")
    by_creator: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    by_allocator: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    total = 0
    for stat in diff:
        if stat.size_diff == 0:
            continue
        total += stat.size_diff
        for key, table in (
            (_creator(stat.traceback), by_creator),
            (_site(stat.traceback[-1]), by_allocator),
        ):
            table[key][0] += stat.size_diff
            table[key][1] += stat.count_diff

    def top(table: dict[str, list[float]], limit: int) -> list[dict[str, Any]]:
        rows = sorted(table.items(), key=lambda kv: -kv[1][0])
        out = [
            {"where": k, "bytes": round(v[0] / n), "blocks": round(v[1] / n, 2)}
            for k, v in rows[:limit]
        ]
        rest = sum(v[0] for _, v in rows[limit:])
        out.append({"where": "(everything else)", "bytes": round(rest / n), "blocks": None})
        return out

    types = []
    for name, count in after["counts"].items():
        delta = count - before["counts"].get(name, 0)
        size = after["sizes"].get(name, 0) - before["sizes"].get(name, 0)
        if delta / n >= 0.05:
            types.append(
                {"type": name, "per_connection": round(delta / n, 2), "bytes": round(size / n)}
            )
    types.sort(key=lambda t: -t["bytes"])
    tasks = []
    for name, count in after["tasks"].items():
        delta = count - before["tasks"].get(name, 0)
        if delta:
            tasks.append({"coroutine": name, "per_connection": round(delta / n, 2)})
    tasks.sort(key=lambda t: -t["per_connection"])
    return {
        "traced_bytes_per_connection": round(total / n),
        "by_creator": top(by_creator, 30),
        "by_allocator": top(by_allocator, 15),
        "types": types[:30],
        "tasks": tasks,
    }


def markdown(record: dict[str, Any]) -> str:
    acc = record["account"]
    held = record["idle"]
    lines = [
        f"# Idle connection memory account ({record['date']}, commit {record['commit']})",
        "",
        f"{held['held']} idle customer websockets on one traced worker, measured after a ping"
        f" cycle ({held['pinged']} pinged). Python heap traced per connection:"
        f" **{acc['traced_bytes_per_connection'] / 1024:.1f} KB**; worker RSS growth per"
        f" connection (inflated by tracing): {held['rss_per_connection_kb']} KB.",
        "",
        "## By creating line (first frame outside asyncio/collections)",
        "",
        "| bytes | blocks | created at |",
        "|---:|---:|---|",
    ]
    lines += [
        f"| {r['bytes']:,} | {r['blocks'] if r['blocks'] is not None else ''} | `{r['where']}` |"
        for r in acc["by_creator"]
    ]
    lines += [
        "",
        "## By allocating line",
        "",
        "| bytes | blocks | allocated at |",
        "|---:|---:|---|",
    ]
    lines += [
        f"| {r['bytes']:,} | {r['blocks'] if r['blocks'] is not None else ''} | `{r['where']}` |"
        for r in acc["by_allocator"]
    ]
    lines += [
        "",
        "## Live objects per connection (gc, sys.getsizeof)",
        "",
        "| per connection | bytes | type |",
        "|---:|---:|---|",
    ]
    lines += [f"| {t['per_connection']} | {t['bytes']:,} | `{t['type']}` |" for t in acc["types"]]
    lines += ["", "## Tasks per connection", "", "| per connection | coroutine |", "|---:|---|"]
    lines += [f"| {t['per_connection']} | `{t['coroutine']}` |" for t in acc["tasks"]] or [
        "| 0 | (none) |"
    ]
    return "\n".join(lines) + "\n"


def _dump(server: stack.Server, directory: Path) -> dict[str, Any]:
    assert server.process is not None
    index = len(list(directory.glob("*.pickle")))
    os.kill(server.process.pid, signal.SIGUSR1)
    path = directory / f"{index}.pickle"
    deadline = time.monotonic() + 300
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the traced server wrote no snapshot")
        time.sleep(0.2)
    data: dict[str, Any] = pickle.loads(path.read_bytes())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--no-ping-cycle", action="store_true", help="measure at once")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    stats.raise_nofile()
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as tmp, stack.database(stack.ROOT) as url:
        directory = Path(tmp)
        server = stack.Server(
            stack.ROOT,
            url,
            1,
            command=[sys.executable, "-m", "bench.traced_server"],
            extra_env={"TRACE_DIR": str(directory)},
        )
        server.start(Path(tmp) / "server.log")
        try:
            dumps: list[dict[str, Any]] = []

            class Meter:
                def rss_per_worker(self) -> list[int]:
                    if not dumps:  # the baseline, after the warm-up connection
                        dumps.append(_dump(server, directory))
                    return server.rss_per_worker()

                def cpu_seconds(self) -> float:
                    return server.cpu_seconds()

            def snapshot() -> dict[str, Any]:
                dumps.append(_dump(server, directory))
                return {}

            held = idle.run(
                server.url,
                stack.JWT_SECRET,
                args.connections,
                2,
                Meter(),
                settle=1.0 if args.no_ping_cycle else PING_SETTLE,
                while_held=snapshot,
            )
        finally:
            server.stop()
    record = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=stack.ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "idle": held,
        "account": account(dumps[0], dumps[1], max(held["held"], 1)),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "memory-" + started.strftime("%Y-%m-%d-%H%M")
    (args.out / f"{stem}.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    text = markdown(record)
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
