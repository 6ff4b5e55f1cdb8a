"""Unavailability: how long an agent's sessions stay with them after their sockets go.

A stable server process and, per SIGKILL round, a second one share a fresh database and
Redis, with AUTO_ASSIGN=round_robin and a short AVAILABILITY_GRACE. Each round a new
agent connects (to the second process for a `sigkill` round, to the stable one for a
`disconnect` round) and routing gives them the round's sessions while the standby agent
is busy; the standby then goes online, and the agent's sockets go: the second process is
SIGKILLed, or the client disconnects cleanly. The round's figure runs from just before
that until the standby's `session_assigned` (reason `auto`) for the last of the sessions,
as a staff watcher on the stable process hears it; the issue asks for p100 within
grace + 2 s.

    python -m bench.unavailability [--rounds 20] [--grace 2] [--sessions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import socketio

from bench import stack, stats

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = RESULTS / "logs"
PASSWORD = "bench password 1234"


class Watcher:
    """A staff socket noting when each `session_assigned` arrived (monotonic)."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.heard: list[tuple[float, dict[str, Any]]] = []
        self.client.on("session_assigned", self._note)

    def _note(self, data: dict[str, Any]) -> None:
        self.heard.append((time.monotonic(), data))

    async def when(self, sessions: set[str], owner: str, within: float) -> float:
        """When the last of `sessions` was routed to `owner` (a TimeoutError names what
        was heard of them, and whether the watcher is still connected)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            done = {
                e["sessionId"]: at
                for at, e in self.heard
                if e["assigneeId"] == owner and e["reason"] == "auto"
            }
            if sessions <= set(done):
                return max(done[s] for s in sessions)
            await asyncio.sleep(0.005)
        heard = [e for _, e in self.heard if e["sessionId"] in sessions]
        raise TimeoutError(
            f"sessions not routed to {owner} within {within}s; heard {heard};"
            f" watcher connected: {self.client.connected}"
        )


async def _socket(url: str, token: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return client


async def _member(api: httpx.AsyncClient, boss: str) -> dict[str, Any]:
    n = time.monotonic_ns()
    r = await api.post(
        "/api/agents",
        json={"email": f"agent-{n}@bench.example", "fullName": f"Agent {n}", "role": "agent"},
        headers={"Authorization": f"Bearer {boss}"},
    )
    r.raise_for_status()
    token = r.json()["invitation"]["token"]
    r = await api.post("/api/auth/accept-invite", json={"token": token, "password": PASSWORD})
    r.raise_for_status()
    return dict(r.json())


async def _status(api: httpx.AsyncClient, token: str, status: str) -> None:
    r = await api.patch(
        "/api/agents/me/availability",
        json={"status": status},
        headers={"Authorization": f"Bearer {token}"},
    )
    r.raise_for_status()


async def _round(
    api: httpx.AsyncClient,
    stable: stack.Server,
    doomed: stack.Server | None,
    boss: str,
    standby: dict[str, Any],
    watcher: Watcher,
    sessions: int,
) -> dict[str, Any]:
    await _status(api, standby["token"], "busy")
    agent = await _member(api, boss)
    sock = await _socket((doomed or stable).url, agent["token"])
    opened = set()
    for n in range(sessions):
        r = await api.post("/api/sessions", json={"userId": f"u-{time.monotonic_ns()}-{n}"})
        r.raise_for_status()
        opened.add(r.json()["id"])
    await watcher.when(opened, agent["admin"]["id"], within=20)
    await _status(api, standby["token"], "online")
    started = time.monotonic()
    if doomed is not None:
        assert doomed.process is not None
        os.killpg(doomed.process.pid, signal.SIGKILL)
        await asyncio.to_thread(doomed.process.wait, 10)
    else:
        await sock.disconnect()
    last = await watcher.when(opened, standby["admin"]["id"], within=60)
    if doomed is not None:
        # The client's transport is gone with the process: let it go.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sock.disconnect(), 5)
    requeued = [
        at for at, e in watcher.heard if e["sessionId"] in opened and e["reason"] == "unavailable"
    ]
    # Close the round's sessions: the standby's capacity stays free for the next.
    for sid in opened:
        await api.patch(
            f"/api/sessions/{sid}/status",
            json={"status": "closed"},
            headers={"Authorization": f"Bearer {boss}"},
        )
    return {
        "kind": "sigkill" if doomed is not None else "disconnect",
        "ms": round((last - started) * 1000, 1),
        "requeued_ms": round((max(requeued) - started) * 1000, 1) if requeued else None,
    }


async def measure(
    stable: stack.Server, make_doomed: Any, rounds: int, sessions: int
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stable.url, timeout=30) as api:
        r = await api.post(
            "/api/auth/register", json={"email": "boss@bench.example", "password": PASSWORD}
        )
        r.raise_for_status()
        boss = r.json()["token"]
        await _status(api, boss, "busy")
        standby = await _member(api, boss)
        standby_socket = await _socket(stable.url, standby["token"])
        watcher = Watcher()
        await watcher.client.connect(
            stable.url, auth={"token": boss}, transports=["websocket"], wait_timeout=10
        )
        out = []
        try:
            for i in range(rounds):
                # Started in a thread: a start blocks for seconds, and a loop blocked past
                # Engine.IO's ping timeout would lose the watcher's socket (it did, once,
                # at load 12: the round waited 20 s for events the watcher never got).
                doomed = await asyncio.to_thread(make_doomed, i) if i % 2 == 0 else None
                out.append(await _round(api, stable, doomed, boss, standby, watcher, sessions))
                print(out[-1], flush=True)
        finally:
            await watcher.client.disconnect()
            await standby_socket.disconnect()
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.unavailability", description=__doc__)
    parser.add_argument("--rounds", type=int, default=40, help="half SIGKILL, half disconnect")
    parser.add_argument("--grace", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    load = [round(x, 2) for x in os.getloadavg()]
    env = {
        "AUTO_ASSIGN": "round_robin",
        "AVAILABILITY_GRACE": str(args.grace),
        "MAX_OPEN_PER_AGENT": "50",
    }
    with stack.private_redis(), stack.database(stack.ROOT) as url:
        stable = stack.Server(stack.ROOT, url, workers=1, extra_env=env)

        started_doomed: list[stack.Server] = []

        def make_doomed(n: int) -> stack.Server:
            server = stack.Server(stack.ROOT, url, workers=1, extra_env=env)
            # One deployment: the doomed process is another worker of it.
            server.namespace = stable.namespace
            started_doomed.append(server)
            server.start(LOGS / "unavailability-doomed.log")
            return server

        try:
            stable.start(LOGS / "unavailability-stable.log")
            rounds = asyncio.run(measure(stable, make_doomed, args.rounds, args.sessions))
        finally:
            # A round that failed before its SIGKILL leaves its process running.
            for server in started_doomed:
                if server.process is not None and server.process.poll() is None:
                    os.killpg(server.process.pid, signal.SIGKILL)
                    server.process.wait(timeout=10)
            stable.stop()
    figures = {
        kind: _summary([r["ms"] for r in rounds if r["kind"] == kind])
        for kind in ("sigkill", "disconnect")
    }
    record = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "grace_s": args.grace,
        "sessions_per_round": args.sessions,
        "load_start": load,
        "figures_ms": figures,
        "results": rounds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"unavailability-{started.strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(record, indent=1))
    print(f"sockets gone -> sessions rerouted (ms), grace {args.grace} s, written to {path}")
    print("| kind | rounds | p50 | p100 | within grace + 2 s |")
    print("|---|---|---|---|---|")
    for kind, f in figures.items():
        ok = f["max"] is not None and f["max"] <= (args.grace + 2) * 1000
        print(f"| {kind} | {f['n']} | {f['p50']} | {f['max']} | {'yes' if ok else 'NO'} |")
    return 0


def _summary(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    return {
        "n": len(values),
        "p50": stats.percentile(values, 50),
        "max": max(values) if values else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
