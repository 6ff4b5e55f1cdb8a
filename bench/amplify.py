"""`python -m bench.amplify`: the reply-amplification attack of issue 10, measured.

A customer token on a session of 500 long messages; 30 sockets each send 100
`join_session {after: 0}` and never read a byte. Reports the worker's RSS idle, at its
peak during the attack and after it, and how many attacker connections the server closed
(and with what reason, from its log). One worker (`WEB_CONCURRENCY=1`), production mode,
the default socket limits. `--baseline REF` runs the same attack on that checkout first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import stack
from bench.raw_socket import RawSocket

MiB = 1024 * 1024
# The defaults a deployment runs with (bench's SERVER_ENV raises them for load tests).
GUARD_DEFAULTS = {
    "SOCKET_EVENTS_PER_SECOND": "10",
    "SOCKET_EVENT_BURST": "30",
    "SOCKET_EVENTS_IN_FLIGHT": "8",
    "CONNECTIONS_PER_IP": "100",
}
# The guards' log lines for each way a non-reading attacker is closed.
CLOSED_LINES = (
    "bytes queued for a client that does not read",
    "kept sending past its event budget",
    "took nothing of",
)


async def seed(url: str, messages: int, size: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        session = (await api.post("/api/sessions", json={"userId": "victim"})).json()
        headers = {"Authorization": f"Bearer {session['customerToken']}"}
        for i in range(messages):
            body = {"sessionId": session["id"], "content": f"{i:05d} " + "m" * (size - 6)}
            r = await api.post("/api/chat/messages", json=body, headers=headers)
            r.raise_for_status()
    return dict(session)


async def attack(
    server: stack.Server, session: dict[str, Any], sockets: int, joins: int, watch: float
) -> dict[str, Any]:
    rss = lambda: sum(server.rss_per_worker()) / MiB  # noqa: E731
    # Warm the join path once with a client that reads, then let the worker settle.
    reader = await RawSocket.open(server.port)
    await reader.authenticate(session["customerToken"])
    await reader.call(1, "join_session", {"sessionId": session["id"], "after": 0})
    await reader.close()
    await asyncio.sleep(3)
    idle = rss()
    attackers = []
    for _ in range(sockets):
        raw = await RawSocket.open(server.port, receive_buffer=4096)
        await raw.authenticate(session["customerToken"])
        attackers.append(raw)
    join = orjson.dumps(["join_session", {"sessionId": session["id"], "after": 0}]).decode()
    started = time.monotonic()
    for n in range(joins):
        for raw in attackers:
            with contextlib.suppress(ConnectionError):
                raw.writer.write(raw._frame(0x1, f"42{n}{join}".encode()))
    sent_seconds = time.monotonic() - started
    peak = idle
    samples = []
    deadline = time.monotonic() + watch
    while time.monotonic() < deadline:
        now = rss()
        peak = max(peak, now)
        samples.append(round(now, 1))
        await asyncio.sleep(0.25)
    after = rss()
    # Only now read: a connection the server closed ends at once, one it kept streams on.
    closed = sum([await raw.closed_within(2) for raw in attackers])
    for raw in attackers:
        await raw.close()
    await asyncio.sleep(3)
    return {
        "idle_mib": round(idle, 1),
        "peak_mib": round(peak, 1),
        "after_attack_mib": round(after, 1),
        "after_close_mib": round(rss(), 1),
        "peak_over_idle_mib": round(peak - idle, 1),
        "after_over_idle_mib": round(after - idle, 1),
        "attackers_closed_by_server": closed,
        "attackers": sockets,
        "send_seconds": round(sent_seconds, 2),
        "samples_mib": samples,
    }


def run_one(code_dir: Path, label: str, args: argparse.Namespace) -> dict[str, Any]:
    log_path = Path(tempfile.gettempdir()) / f"helpline-amplify-{label}.log"
    log_path.unlink(missing_ok=True)
    with stack.running(code_dir, 1, log_path, **GUARD_DEFAULTS) as server:
        session = asyncio.run(seed(server.url, args.messages, args.size))
        out = asyncio.run(attack(server, session, args.sockets, args.joins, args.watch))
    text = log_path.read_text(errors="replace")
    reasons = {line: text.count(line) for line in CLOSED_LINES}
    return {"code": label, **out, "closed_lines_in_log": sum(reasons.values()), "reasons": reasons}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.amplify", description=__doc__)
    parser.add_argument("--sockets", type=int, default=30)
    parser.add_argument("--joins", type=int, default=100)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--watch", type=float, default=30.0, help="seconds of RSS sampling")
    parser.add_argument("--baseline", help="a git ref to attack first, for comparison")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    runs = []
    if args.baseline:
        from bench.__main__ import checkout

        runs.append(run_one(checkout(args.baseline), args.baseline, args))
    runs.append(run_one(stack.ROOT, "current", args))
    keys = [
        "idle_mib",
        "peak_mib",
        "after_attack_mib",
        "after_close_mib",
        "peak_over_idle_mib",
        "after_over_idle_mib",
        "attackers_closed_by_server",
        "closed_lines_in_log",
        "reasons",
    ]
    print("| figure | " + " | ".join(r["code"] for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for key in keys:
        print(f"| {key} | " + " | ".join(str(r[key]) for r in runs) + " |")
    if args.out:
        args.out.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
