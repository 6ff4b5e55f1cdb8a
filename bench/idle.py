"""Idle websocket connections held by one worker, and the memory and CPU each one costs.

Every connection completes the Engine.IO handshake and a Socket.IO CONNECT with a
customer token (so the worker also tracks its presence), then only answers pings. The
worker's CPU is read over the window between the early and the final memory reading:
with `settle` a ping interval and a margin that window holds one ping, one pong and one
presence heartbeat per connection, and nothing else but the worker's own timers.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid
from collections.abc import Callable
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

    def cpu_seconds(self) -> float: ...


def run(
    url: str,
    jwt_secret: str,
    connections: int,
    processes: int,
    meter: Meter,
    settle: float,
    while_held: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Hold `connections` idle websockets on the worker behind `url` and measure it;
    `while_held` runs after the readings with every connection still open (the memory
    account snapshots the worker there)."""
    tokens = Tokens(Settings(jwt_secret=jwt_secret))
    warm = asyncio.run(_hold([tokens.customer(uuid.uuid4())], url, None))  # warm the code paths
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
    cpu0, t0 = meter.cpu_seconds(), time.monotonic()
    time.sleep(max(0.0, settle - EARLY_READ_SECONDS))
    cpu1, t1 = meter.cpu_seconds(), time.monotonic()
    after = sum(meter.rss_per_worker())
    barrier.wait(timeout=60)  # measured: the clients count what is open and was pinged
    outs = [queue.get(timeout=120) for _ in procs]
    extra = while_held() if while_held is not None else {}
    barrier.wait(timeout=600)  # released: the clients close
    for proc in procs:
        proc.join(timeout=60)
    # Only a window of a whole ping interval holds every connection's ping once.
    whole_cycle = t1 - t0 >= 0.95 * warm["ping_interval"]
    held = sum(o["held"] for o in outs)
    errors = [e for o in outs for e in o["errors"]]
    return {
        "connections": connections,
        "held": held,
        "pinged": sum(o.get("pinged", 0) for o in outs),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "connect_seconds": round(connect_seconds, 1),
        "worker_rss_before_mb": round(before / 2**20, 1),
        "worker_rss_after_mb": round(after / 2**20, 1),
        "settle_seconds": settle,
        "rss_per_connection_kb": round((after - before) / max(held, 1) / 1024, 1),
        "rss_per_connection_kb_read_early": round((early - before) / max(held, 1) / 1024, 1),
        "idle_window_s": round(t1 - t0, 1),
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 2) if whole_cycle else None,
        **extra,
    }


def _process_main(tokens: list[str], url: str, barrier: Any, queue: Any) -> None:
    stats.raise_nofile()
    try:
        asyncio.run(_hold(tokens, url, barrier, queue))
    except BaseException as exc:
        barrier.abort()
        queue.put({"held": 0, "pinged": 0, "errors": [repr(exc)]})


async def _hold(tokens: list[str], url: str, barrier: Any, queue: Any = None) -> dict[str, Any]:
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
        out: dict[str, Any] = {"ping_interval": clients[0].ping_interval if clients else 0.0}
        if barrier is not None:
            await asyncio.to_thread(barrier.wait)  # all connected
            await asyncio.to_thread(barrier.wait)  # measured
            out = {
                "held": sum(1 for c in clients if c.open),
                "pinged": sum(1 for c in clients if c.open and c.pings > 0),
                "errors": errors,
            }
            queue.put(out)
            await asyncio.to_thread(barrier.wait)  # released
        for client in clients:
            await client.close()
    return out
