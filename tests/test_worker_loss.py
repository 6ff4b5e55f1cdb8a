"""A worker killed outright (SIGKILL) leaves no customer online and nobody typing for
longer than a TTL: the surviving workers announce it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sockets import Client
from tests.support import LiveServer


@pytest.fixture
async def doomed(database_url: str, redis_url: str) -> AsyncIterator[LiveServer]:
    live = LiveServer(
        "doomed", {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "PRESENCE_TTL": "2"}
    )
    live.start()
    yield live
    live.kill()


async def test_customer_on_a_killed_worker_is_announced_offline(make, server, doomed):
    token = await make.admin_token()
    session = await make.session()
    admin = await Client(server.url, token).connect()
    try:
        await Client(doomed.url, session["customerToken"]).connect()
        await admin.wait_for("customer_presence", lambda e: e["online"])
        doomed.kill()
        offline = await admin.wait_for("customer_presence", lambda e: not e["online"], within=8)
        assert offline == {"sessionId": session["id"], "online": False}
        assert (await admin.call("join_session", session["id"]))["customerOnline"] is False
    finally:
        await admin.close()


async def test_typing_on_a_killed_worker_stops_within_its_ttl(make, server, doomed):
    token = await make.admin_token()
    session = await make.session()
    admin = await Client(server.url, token).connect()
    try:
        await admin.call("join_session", session["id"])
        customer = await Client(doomed.url, session["customerToken"]).connect()
        await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
        await admin.wait_for("user_typing", lambda e: e["isTyping"])
        doomed.kill()
        # TYPING_TTL is 2 s on the test servers; the survivor's sweep announces the end.
        off = await admin.wait_for("user_typing", lambda e: not e["isTyping"], within=5)
        assert off == {"sessionId": session["id"], "userType": "user", "isTyping": False}
    finally:
        await admin.close()
