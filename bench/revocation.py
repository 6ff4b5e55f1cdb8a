"""Revocation latency: how long until a signed-out or deactivated member is gone everywhere.

Two server processes (one worker each) share a fresh database and Redis. Each round an
agent joins (invitation + accept) and opens a socket on each process; then either the
agent logs out everywhere or an admin deactivates them, alternately. The round's latency
runs from just before that request is sent until the last of: both sockets disconnected
by the server, and the other process answering the agent's token with 401 (polled).

    python -m bench.revocation [--rounds 50] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import socketio

from bench import stack, stats

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = RESULTS / "logs"
PASSWORD = "bench password 1234"


async def _socket(url: str, token: str, gone: asyncio.Event) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    client.on("disconnect", lambda *_: gone.set())
    await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return client


async def _first_401(api: httpx.AsyncClient, token: str, deadline: float) -> float:
    """Monotonic time the first 401 came back (polling as fast as answers come)."""
    while time.monotonic() < deadline:
        r = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 401:
            return time.monotonic()
    raise TimeoutError("REST still accepted the token")


async def _round(
    a: httpx.AsyncClient, b: httpx.AsyncClient, urls: tuple[str, str], admin: str, kind: str
) -> dict[str, Any]:
    n = time.monotonic_ns()
    r = await a.post(
        "/api/agents",
        json={"email": f"agent-{n}@bench.example", "role": "agent"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    r.raise_for_status()
    agent_id = r.json()["agent"]["id"]
    token = r.json()["invitation"]["token"]
    r = await a.post("/api/auth/accept-invite", json={"token": token, "password": PASSWORD})
    r.raise_for_status()
    agent = r.json()["token"]
    gone = [asyncio.Event(), asyncio.Event()]
    sockets = [await _socket(url, agent, event) for url, event in zip(urls, gone, strict=True)]
    disconnected: list[float] = []

    async def watch(event: asyncio.Event) -> None:
        await event.wait()
        disconnected.append(time.monotonic())

    watchers = [asyncio.create_task(watch(event)) for event in gone]
    started = time.monotonic()
    if kind == "logout_all":
        request = a.post("/api/auth/logout-all", headers={"Authorization": f"Bearer {agent}"})
    else:
        request = a.post(
            f"/api/agents/{agent_id}/deactivate", headers={"Authorization": f"Bearer {admin}"}
        )
    answer, refused_at = await asyncio.gather(request, _first_401(b, agent, started + 10))
    answer.raise_for_status()
    await asyncio.wait_for(asyncio.gather(*watchers), 10)
    for client in sockets:
        await client.disconnect()
    last = max([refused_at, *disconnected])
    return {
        "kind": kind,
        "ms": round((last - started) * 1000, 2),
        "rest_401_ms": round((refused_at - started) * 1000, 2),
        "sockets_ms": [round((t - started) * 1000, 2) for t in sorted(disconnected)],
    }


async def measure(urls: tuple[str, str], rounds: int) -> list[dict[str, Any]]:
    async with (
        httpx.AsyncClient(base_url=urls[0], timeout=30) as a,
        httpx.AsyncClient(base_url=urls[1], timeout=30) as b,
    ):
        r = await a.post(
            "/api/auth/register", json={"email": "boss@bench.example", "password": PASSWORD}
        )
        r.raise_for_status()
        admin = r.json()["token"]
        out = []
        for i in range(rounds):
            kind = "logout_all" if i % 2 == 0 else "deactivate"
            out.append(await _round(a, b, urls, admin, kind))
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.revocation", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    load = [round(x, 2) for x in os.getloadavg()]
    with stack.private_redis(), stack.database(stack.ROOT) as url:
        servers = [stack.Server(stack.ROOT, url, workers=1) for _ in range(2)]
        # One namespace: the two processes are workers of one deployment.
        servers[1].namespace = servers[0].namespace
        try:
            for n, server in enumerate(servers):
                server.start(LOGS / f"revocation-{n}.log")
            rounds = asyncio.run(measure((servers[0].url, servers[1].url), args.rounds))
        finally:
            for server in servers:
                server.stop()
    figures = {
        kind: _summary([r["ms"] for r in rounds if r["kind"] == kind])
        for kind in ("logout_all", "deactivate")
    }
    figures["all"] = _summary([r["ms"] for r in rounds])
    record = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": len(rounds),
        "load_start": load,
        "figures_ms": figures,
        "results": rounds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"revocation-{started.strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(record, indent=1))
    print(f"revocation latency over {len(rounds)} rounds (ms), written to {path}")
    print("| kind | rounds | p50 | p99 | max |")
    print("|---|---|---|---|---|")
    for kind, f in figures.items():
        print(f"| {kind} | {f['n']} | {f['p50']} | {f['p99']} | {f['max']} |")
    return 0


def _summary(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    return {
        "n": len(values),
        "p50": stats.percentile(values, 50),
        "p99": stats.percentile(values, 99),
        "max": max(values) if values else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
