"""Stopping a server (SIGTERM, as a platform does on deploy) with clients connected."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from tests.sockets import Client
from tests.support import LiveServer


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
