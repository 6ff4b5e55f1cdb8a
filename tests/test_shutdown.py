"""Stopping a server (SIGTERM, as a platform does on deploy) with clients connected."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import aiohttp
import pytest
import uvloop
from sanic import Sanic

from app import stopping
from app.auth import Tokens
from app.config import Settings
from app.realtime import testpoints
from app.revocation import RevocationBus
from bench.sio import SioClient
from tests.sockets import Client
from tests.support import JWT_SECRET, ROOT, LiveServer


async def test_a_stopped_server_exits_cleanly_leaving_no_pending_tasks(
    make, database_url, redis_url
):
    token = await make.admin_token()
    session = await make.session()
    live = LiveServer(
        f"shutdown-{uuid.uuid4().hex[:6]}", {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    )
    live.start()
    clients = [await Client(live.url, token).connect() for _ in range(3)]
    clients.append(await Client(live.url, session["customerToken"], ["polling"]).connect())
    try:
        # In a thread: the clients share this loop and must answer the server's close.
        await asyncio.to_thread(live.stop)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
    assert live.process is not None and live.process.returncode == 0
    log = live.log_path.read_text()
    assert "Task was destroyed but it is pending" not in log
    assert "Traceback" not in log


def test_a_server_stopped_as_soon_as_it_answers_exits_by_itself(database_url, redis_url):
    """A SIGTERM the moment /health first answers (a deploy right after a start). It
    went unheeded until the SIGKILL 15 s later (-9: Sanic's stop lost in its start
    listeners' run), or ended the process by the signal itself (-15: it came after the
    port answered but before Sanic's handler). Now the worker stops gracefully."""
    for n in range(3):
        live = LiveServer(
            f"early-stop-{n}-{uuid.uuid4().hex[:6]}",
            {"DATABASE_URL": database_url, "REDIS_URL": redis_url},
        )
        live.start()
        live.stop()
        assert live.process is not None
        assert live.process.returncode == 0, live.log_path


def test_a_sigterm_while_the_start_listeners_run_stops_the_worker_once_it_serves(
    database_url, redis_url
):
    """Sanic's handler stopped the loop inside the `after_server_start` run: exit 1 with
    "Event loop stopped before Future completed" and no stop listeners. The stop now
    waits for the worker to serve, then runs in full."""
    live = LiveServer(
        f"stop-in-start-{uuid.uuid4().hex[:6]}",
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            # /health answers while the start listeners still run (the port is bound).
            "HELPLINE_TEST_START_PAUSE": "1.5",
            "LOG_LEVEL": "INFO",
        },
    )
    live.start()
    live.stop()
    assert live.process is not None
    log = live.log_path.read_text()
    assert live.process.returncode == 0, log
    assert "Event loop stopped before Future completed" not in log
    assert "app.stopping: stopped in" in log


def test_a_sigterm_between_two_start_runs_of_the_loop_stops_the_worker_once_it_serves(
    monkeypatch,
):
    """Sanic starts a worker in several `run_until_complete` runs, and uvloop drops a
    signal that comes while its loop is not running (it listens only during a run)."""
    stops: list[bool] = []

    def sanic_stop(self: Sanic, terminate: bool = True, unregister: bool = False) -> None:
        stops.append(terminate)
        asyncio.get_event_loop().stop()

    monkeypatch.setattr(Sanic, "stop", sanic_stop)
    loop = uvloop.new_event_loop()
    app = stopping.App(f"between-runs-{uuid.uuid4().hex[:6]}")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    async def first_listener() -> None:
        app.hold_stops()

    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(first_listener())
        os.kill(os.getpid(), signal.SIGTERM)  # between two runs, as Sanic's start has
        time.sleep(0.05)
        loop.run_until_complete(asyncio.sleep(0.05))  # a start listener's run
        app.set_serving(True)
        with pytest.raises(RuntimeError, match="stopped before"):
            loop.run_until_complete(asyncio.sleep(5))  # serving: the held stop ends it
        assert stops == [False]  # Sanic's own stop, once, as its signal handler asks
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        asyncio.set_event_loop(None)
        loop.close()
        Sanic.unregister_app(app)


async def test_cancel_all_ends_a_task_that_let_its_first_cancellation_pass():
    """Python 3.11's wait_for drops a cancellation that arrives with its inner result;
    one cancel() then left such a task running."""

    async def swallows_one() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    task = asyncio.create_task(swallows_one())
    await asyncio.sleep(0)
    await asyncio.wait_for(stopping.cancel_all([task]), timeout=2)
    assert task.cancelled()


async def test_a_revocation_listener_cancelled_while_it_connects_ends(redis_url):
    """Cancelled at every moment of its first 4 ms (its connect and SUBSCRIBE), the
    listener ends each time: redis-py's connect let one cancel() in dozens pass."""
    bus = RevocationBus(redis_url, f"cancel-{uuid.uuid4().hex[:6]}")
    stuck = []
    for step in range(80):
        task = asyncio.create_task(bus.run())
        await asyncio.sleep(step * 0.00005)
        try:
            await asyncio.wait_for(stopping.cancel_all([task]), timeout=2)
        except TimeoutError:
            stuck.append(step)
            task.cancel()  # not left running past the test
    assert stuck == []


async def test_a_step_that_never_ends_is_cut_short_and_says_what_it_waited_on(caplog):
    stop = stopping.Stop(hard_limit=60)
    try:
        with caplog.at_level(logging.WARNING, logger="app.stopping"):
            finished = await stop.step(
                "closing Engine.IO sessions",
                asyncio.Event().wait(),
                0.2,
                lambda: "1999 sessions still open",
            )
            assert await stop.step("next step", asyncio.sleep(0), 1)
    finally:
        stop.finished()
    assert finished is False
    assert stop.overruns == ["closing Engine.IO sessions"]
    assert "waited on 1999 sessions still open" in caplog.text


def test_a_stop_stuck_past_its_limit_exits_and_names_the_step():
    """The watchdog runs in a thread: it ends the process even when the event loop itself
    is what is stuck."""
    script = textwrap.dedent(
        """
        import logging, time
        from app import stopping
        logging.basicConfig(level=logging.INFO)
        stop = stopping.Stop(hard_limit=0.5)
        stop.step_name = "database pool"
        time.sleep(30)
        """
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 1
    assert time.monotonic() - started < 15
    assert "in step 'database pool': exiting now" in out.stderr


async def test_idle_clients_closing_at_once_then_sigterm_still_stops_within_the_bound(
    database_url, redis_url
):
    """The mass-disconnect stop of bench/stop.py at a small scale: production settings,
    one worker, idle websocket clients all closing at once, SIGTERM a moment later."""
    tokens = Tokens(Settings(jwt_secret=JWT_SECRET))
    live = LiveServer(
        f"stop-{uuid.uuid4().hex[:6]}",
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ENV": "production",
            "CONNECTIONS_PER_IP": "100000",
            "LOG_LEVEL": "INFO",
        },
    )
    live.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            clients = [SioClient(http, live.url, tokens.customer(uuid.uuid4())) for _ in range(200)]
            gate = asyncio.Semaphore(50)

            async def connect(client: SioClient) -> None:
                async with gate:
                    await client.connect()

            await asyncio.gather(*(connect(c) for c in clients))
            await asyncio.sleep(1)
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        await asyncio.sleep(0.2)
        assert live.process is not None
        signalled = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(live.process.wait, stopping.HARD_LIMIT + 8)
        took = time.monotonic() - signalled
    finally:
        live.stop(signal.SIGKILL)
    log = live.log_path.read_text()
    print(f"[stop] 200 idle clients closed, SIGTERM: exit {code} after {took:.1f}s")
    assert code == 0, log[-2000:]
    assert "exiting now" not in log
    assert "stopped in" in log


async def test_during_a_stop_new_events_ack_shutting_down_while_one_under_way_finishes(
    make, database_url, redis_url
):
    """SIGTERM with a join under way (held open by the test-only join pause): the join
    finishes and acks ok, while every event sent after the stop began acks `shutting_down`
    (retryable), until the connection is closed."""
    session = await make.session()
    live = LiveServer(
        f"draining-{uuid.uuid4().hex[:6]}",
        {"DATABASE_URL": database_url, "REDIS_URL": redis_url, testpoints.JOIN_PAUSE: "1.5"},
    )
    live.start()
    customer = await Client(live.url, session["customerToken"]).connect()
    try:
        join = asyncio.create_task(customer.call("join_session", session["id"]))
        # Answered after the join's handler started: the join is under way.
        await customer.round_trip()
        assert live.process is not None
        live.process.send_signal(signal.SIGTERM)
        refused = None
        while refused is None:
            ack = await customer.call("leave_session", str(uuid.uuid4()))
            if not ack["ok"]:
                refused = ack
        assert refused["error"]["code"] == "shutting_down"
        assert refused["error"]["retryable"] is True
        joined = await join
        assert joined["ok"] is True and joined["sessionId"] == session["id"]
        await customer.wait_disconnected(within=15)
    finally:
        await customer.close()
        await asyncio.to_thread(live.stop)
