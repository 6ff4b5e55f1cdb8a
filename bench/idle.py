"""Idle websocket connections held by one worker, and the memory each one costs.

Every connection completes the Engine.IO handshake and a Socket.IO CONNECT with a
customer token (so the worker also tracks its presence), then only answers pings.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid
from typing import Any, Protocol

import aiohttp

from app.auth import Tokens
from app.config import Settings
from bench import stats
from bench.sio import SioClient

# Until issue 15 the worker's memory was read 3 s after the last connect, before the
# first Engine.IO ping (every 25 s) had gone out and been answered: what a connection
# costs once its ping cycle runs was not counted. Now it is read after `settle` seconds
# (full runs: one ping interval and a margin); the 3 s figure is kept beside it.
EARLY_READ_SECONDS = 3.0


class Meter(Protocol):
    def rss_per_worker(self) -> list[int]: ...


def run(
    url: str, jwt_secret: str, connections: int, processes: int, meter: Meter, settle: float
) -> dict[str, Any]:
    tokens = Tokens(Settings(jwt_secret=jwt_secret))
    asyncio.run(_hold([tokens.customer(uuid.uuid4())], url, None))  # warm the code paths
    time.sleep(1)
    before = sum(meter.rss_per_worker())
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    queue = ctx.Queue()
    share = [connections // processes + (i < connections % processes) for i in range(processes)]
    procs = []
    for n in share:
        batch = [tokens.customer(uuid.uuid4()) for _ in range(n)]
        proc = ctx.Process(target=_process_main, args=(batch, url, barrier, queue), daemon=True)
        proc.start()
        procs.append(proc)
    started = time.monotonic()
    barrier.wait(timeout=600)
    connect_seconds = time.monotonic() - started
    time.sleep(min(EARLY_READ_SECONDS, settle))
    early = sum(meter.rss_per_worker())
    time.sleep(max(0.0, settle - EARLY_READ_SECONDS))
    after = sum(meter.rss_per_worker())
    barrier.wait(timeout=60)
    outs = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    held = sum(o["held"] for o in outs)
    errors = [e for o in outs for e in o["errors"]]
    return {
        "connections": connections,
        "held": held,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "connect_seconds": round(connect_seconds, 1),
        "worker_rss_before_mb": round(before / 2**20, 1),
        "worker_rss_after_mb": round(after / 2**20, 1),
        "settle_seconds": settle,
        "rss_per_connection_kb": round((after - before) / max(held, 1) / 1024, 1),
        "rss_per_connection_kb_read_early": round((early - before) / max(held, 1) / 1024, 1),
    }


def _process_main(tokens: list[str], url: str, barrier: Any, queue: Any) -> None:
    stats.raise_nofile()
    try:
        out = asyncio.run(_hold(tokens, url, barrier))
    except BaseException as exc:
        barrier.abort()
        out = {"held": 0, "errors": [repr(exc)]}
    queue.put(out)


async def _hold(tokens: list[str], url: str, barrier: Any) -> dict[str, Any]:
    errors: list[str] = []
    clients: list[SioClient] = []
    gate = asyncio.Semaphore(100)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(token: str) -> None:
            async with gate:
                client = SioClient(http, url, token)
                try:
                    await client.connect()
                    clients.append(client)
                except Exception as exc:
                    errors.append(repr(exc))

        await asyncio.gather(*(one(t) for t in tokens))
        if barrier is not None:
            await asyncio.to_thread(barrier.wait)  # all connected
            await asyncio.to_thread(barrier.wait)  # measured
        held = sum(1 for c in clients if c.open)
        for client in clients:
            await client.close()
    return {"held": held, "errors": errors}
