"""REST figures under a fixed concurrency: history page, inbox page, session creation, login.

wrk drives the load when it is installed (it costs the 2-core machine far less CPU than a
Python client); otherwise an aiohttp client runs in its own process.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from bench import stats

PASSWORD = "bench password 1234"
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%f,"errors":%d,"status_errors":%d,'
    .. '"p50":%f,"p99":%f,"max":%f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]


INBOX_SESSIONS = 50


def prepare(url: str, history_messages: int = 120) -> list[Request]:
    """An admin, a session with history, a full inbox page, and the requests to repeat."""
    with httpx.Client(base_url=url, timeout=30) as api:
        email = "rest@bench.example"
        r = api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        session = api.post("/api/sessions", json={"userId": "bench-history"}).json()
        customer = {"Authorization": f"Bearer {session['customerToken']}"}
        for i in range(history_messages):
            api.post(
                "/api/chat/messages",
                json={"sessionId": session["id"], "content": f"history message {i}"},
                headers=customer if i % 2 else admin,
            ).raise_for_status()
        # A full inbox page of sessions with a message each (summaries, presence).
        for i in range(INBOX_SESSIONS - 1):
            other = api.post("/api/sessions", json={"userId": f"bench-inbox-{i}"}).json()
            api.post(
                "/api/chat/messages",
                json={"sessionId": other["id"], "content": f"inbox message {i}"},
                headers={"Authorization": f"Bearer {other['customerToken']}"},
            ).raise_for_status()
    json_type = {"Content-Type": "application/json"}
    return [
        Request("inbox", "GET", f"/api/sessions?limit={INBOX_SESSIONS}", None, admin),
        Request("history", "GET", f"/api/chat/messages/{session['id']}?limit=50", None, admin),
        Request(
            "session_create",
            "POST",
            "/api/sessions",
            orjson.dumps({"userId": "bench-visitor", "userName": "Visitor"}),
            json_type,
        ),
        Request(
            "login",
            "POST",
            "/api/auth/login",
            orjson.dumps({"email": email, "password": PASSWORD}),
            json_type,
        ),
    ]


def measure(url: str, request: Request, concurrency: int, seconds: float) -> dict[str, Any]:
    tool = "wrk" if shutil.which("wrk") else "aiohttp"
    raw = (
        _wrk(url, request, concurrency, seconds)
        if tool == "wrk"
        else _python(url, request, concurrency, seconds)
    )
    return {
        "tool": tool,
        "concurrency": concurrency,
        "requests": raw["requests"],
        "req_per_s": round(raw["requests"] / raw["seconds"], 1),
        "errors": raw["errors"] + raw["status_errors"],
        "latency_ms": {k: round(raw[k], 2) for k in ("p50", "p99", "max")},
    }


def _wrk(url: str, request: Request, concurrency: int, seconds: float) -> dict[str, Any]:
    lines = [f'wrk.method = "{request.method}"']
    for key, value in request.headers.items():
        lines.append(f'wrk.headers["{key}"] = "{value}"')
    if request.body is not None:
        lines.append(f"wrk.body = [[{request.body.decode()}]]")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + WRK_DONE)
    threads = min(2, concurrency)
    argv = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "-s", script.name]
    out = subprocess.run(
        [*argv, url + request.path],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    Path(script.name).unlink()
    found = re.search(r"^BENCH (\{.*\})$", out.stdout, re.M)
    if found is None:
        raise RuntimeError(f"wrk said:\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = orjson.loads(found.group(1))
    return result


def _python(url: str, request: Request, concurrency: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_client_main, args=(url, request, concurrency, seconds, queue))
    proc.start()
    result: dict[str, Any] = queue.get(timeout=seconds + 60)
    proc.join(timeout=10)
    return result


def _client_main(url: str, request: Request, concurrency: int, seconds: float, queue: Any) -> None:
    queue.put(asyncio.run(_client(url, request, concurrency, seconds)))


async def _client(url: str, request: Request, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    status_errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as http:
        started = time.monotonic()
        stop = started + seconds

        async def loop() -> None:
            nonlocal errors, status_errors
            while time.monotonic() < stop:
                t = time.monotonic()
                try:
                    async with http.request(
                        request.method, request.path, data=request.body, headers=request.headers
                    ) as r:
                        await r.read()
                        status_errors += r.status >= 400
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.monotonic() - t)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    summary = stats.summary(latencies)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "status_errors": status_errors,
        "p50": summary["p50"] or 0.0,
        "p99": summary["p99"] or 0.0,
        "max": summary["max"] or 0.0,
    }
