"""Embedded mode under a send burst: `python -m bench.embedded [--rate 600] [--seconds 5]`.

What a new user's server (no DATABASE_URL/REDIS_URL: SQLite, one worker) does when N
customers send at a fixed total rate, open loop: how many sends were acked ok, failed,
and with which codes; how many reached the agent; ack latency; and whether the server
logged a traceback or "database is locked". Limits are raised out of the way: this
measures the storage, not the rate limits. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.sio import SioClient
from bench.stats import percentile

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )


async def run(rate: float, seconds: float, customers: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="helpline-embedded-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "SQLITE_PATH": str(tmp / "helpline.sqlite3"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "JWT_SECRET": "bench-" + "x" * 40,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "RATE_MESSAGES": "1000000",
        "RATE_SESSION_CREATE": "1000000",
        "SOCKET_EVENTS_PER_SECOND": "100000",
        "SOCKET_EVENT_BURST": "100000",
        "LOG_LEVEL": "WARNING",
    }
    log_path = tmp / "server.log"
    server = _start(env, log_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            for _ in range(300):
                try:
                    if (await api.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            admin = await api.post(
                "/api/auth/register", json={"email": "a@example.com", "password": "p" * 12}
            )
            token = admin.json()["token"]
            sessions = [
                (await api.post("/api/sessions", json={"userId": f"u{i}"})).json()
                for i in range(customers)
            ]
        async with aiohttp.ClientSession() as http:
            delivered: set[str] = set()
            agent = SioClient(http, url, token)
            agent.listener = lambda event, data: (
                delivered.add(data["clientMessageId"]) if event == "new_message" else None
            )
            await agent.connect()
            clients = []
            for s in sessions:
                client = SioClient(http, url, s["customerToken"])
                await client.connect()
                await client.emit("join_session", s["id"])
                clients.append((s["id"], client))
            outcomes: Counter[str] = Counter()
            latencies: list[float] = []

            async def send(i: int) -> None:
                sid, client = clients[i % customers]
                started = time.perf_counter()
                try:
                    ack = await client.emit(
                        "send_message",
                        {"sessionId": sid, "content": f"m{i}", "clientMessageId": f"c{i}"},
                        wait=60,
                    )
                except Exception as exc:
                    outcomes[f"no ack: {type(exc).__name__}"] += 1
                    return
                latencies.append((time.perf_counter() - started) * 1000)
                outcomes["ok" if ack.get("ok") else ack["error"]["code"]] += 1

            total = int(rate * seconds)
            began = time.perf_counter()
            tasks = []
            for i in range(total):
                delay = began + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(i)))
            offered = time.perf_counter() - began
            await asyncio.gather(*tasks)
            deadline = time.perf_counter() + 30
            # The agent's listener fills `delivered`; wait for the stragglers.
            while len(delivered) < outcomes["ok"] and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            finished = time.perf_counter() - began
            for _, client in clients:
                await client.close()
            await agent.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    log_text = log_path.read_text(errors="replace")
    return {
        "customers": customers,
        "offered_rate": round(total / offered, 1),
        "sends": total,
        "outcomes": dict(outcomes),
        "delivered_to_agent": len(delivered),
        "delivered_rate": round(len(delivered) / finished, 1),
        "ack_ms_p50": round(percentile(sorted(latencies), 50), 1) if latencies else None,
        "ack_ms_p99": round(percentile(sorted(latencies), 99), 1) if latencies else None,
        "ack_ms_max": round(max(latencies), 1) if latencies else None,
        "server_tracebacks": log_text.count("Traceback"),
        "database_is_locked_lines": log_text.count("database is locked"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded")
    parser.add_argument("--rate", type=float, default=600)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--customers", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.rate, args.seconds, args.customers))))


if __name__ == "__main__":
    main()
