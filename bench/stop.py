"""A stop that always ends: idle websocket clients on one worker all close at once, then
the server gets SIGTERM a moment later, as a platform sends on deploy; how long until it
exits, repeated.

    python -m bench.stop                       # 2,000 clients, 30 s, 5 runs
    python -m bench.stop --clients 300 --hold 3 --runs 2

Production settings (bench/stack.py's, so ENV=production), WEB_CONCURRENCY=1, a throwaway
database per run. A server still alive `--give-up` seconds after SIGTERM is dumped with
py-spy (where it waits) and killed. Prints one JSON line per run and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from app.auth import Tokens
from app.config import Settings
from bench import stack, stats
from bench.sio import SioClient


async def _open(url: str, count: int) -> tuple[aiohttp.ClientSession, list[SioClient]]:
    tokens = Tokens(Settings(jwt_secret=stack.JWT_SECRET))
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    gate = asyncio.Semaphore(100)

    async def one() -> SioClient:
        async with gate:
            client = SioClient(http, url, tokens.customer(uuid.uuid4()))
            await client.connect()
            return client

    clients = await asyncio.gather(*(one() for _ in range(count)))
    return http, list(clients)


async def _scenario(server: stack.Server, clients: int, hold: float, gap: float) -> float:
    """Connect, hold, close every client at once; returns the SIGTERM's monotonic time."""
    http, opened = await _open(server.url, clients)
    try:
        await asyncio.sleep(hold)
        held = sum(c.open for c in opened)
        if held != clients:
            print(f"  only {held} of {clients} connections still open", file=sys.stderr)
        await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
        await asyncio.sleep(gap)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGTERM)
        return time.monotonic()
    finally:
        await http.close()


def _dump(pid: int) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = subprocess.run(
        [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
    )
    return out.stdout + out.stderr


def run_once(clients: int, hold: float, gap: float, give_up: float, log: Path) -> dict[str, Any]:
    with stack.database(stack.ROOT) as url:
        server = stack.Server(stack.ROOT, url, 1, extra_env={"LOG_LEVEL": "INFO"})
        server.start(log)
        assert server.process is not None
        try:
            signalled = asyncio.run(_scenario(server, clients, hold, gap))
            try:
                server.process.wait(timeout=give_up)
                seconds, hung = time.monotonic() - signalled, False
            except subprocess.TimeoutExpired:
                seconds, hung = time.monotonic() - signalled, True
                (log.parent / f"{log.stem}.py-spy.txt").write_text(_dump(server.process.pid))
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)
        finally:
            server.stop()
    lines = log.read_text(errors="replace").splitlines()
    said = [line for line in lines if "stop" in line.lower() or "waited" in line.lower()]
    return {
        "seconds": round(seconds, 2),
        "hung": hung,
        "exit": server.process.returncode,
        "log": said[-8:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stop", description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=30, help="seconds the clients stay")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds from close to SIGTERM")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--give-up", type=float, default=60, help="seconds before SIGKILL")
    args = parser.parse_args()
    stats.raise_nofile()
    out = Path(tempfile.mkdtemp(prefix="helpline-stop-"))
    results = []
    for n in range(args.runs):
        result = run_once(args.clients, args.hold, args.gap, args.give_up, out / f"run{n}.log")
        results.append(result)
        print(json.dumps({"run": n, **result}), flush=True)
    seconds = [r["seconds"] for r in results]
    summary = {
        "clients": args.clients,
        "hold": args.hold,
        "gap": args.gap,
        "runs": args.runs,
        "hung": sum(r["hung"] for r in results),
        "exit_seconds": seconds,
        "max_seconds": max(seconds),
        "logs": str(out),
    }
    print(json.dumps(summary))
    return 1 if summary["hung"] else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
