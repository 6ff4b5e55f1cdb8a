"""Revocations that meet a socket at an awkward moment: while it is still connecting (its
connect handler awaiting), or found by the sweep rather than announced. Either way the
socket ends promptly and is told the same reason an announced revocation gives, so the
console can say why (the demo browser test's "deactivated" step failed once on this)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import socketio

from app.realtime import testpoints
from tests.sockets import Client
from tests.support import Factory, LiveServer, bearer

# The account check's cache bound (AUTH_CACHE_MS default) plus the sweep period.
CACHE_BOUND = 1.0
SWEEP = 1.0
CONNECT_PAUSE = 1.5


@pytest.fixture(scope="module")
def pausing_server(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    """Its staff sockets' connect handlers wait CONNECT_PAUSE s before answering: a
    revocation lands while the socket is connecting every time."""
    env = {testpoints.CONNECT_PAUSE: str(CONNECT_PAUSE)}
    with LiveServer.running("revoke-pause", database_url, redis_url, **env) as live:
        yield live


async def test_deactivation_while_a_socket_connects_refuses_it_with_the_reason(
    pausing_server: LiveServer,
):
    async with httpx.AsyncClient(base_url=pausing_server.url, timeout=10) as api:
        make = Factory(api)
        agent = await make.agent()
        refusals: list[Any] = []
        client = Client(pausing_server.url, agent["token"])
        client.sio.on("connect_error", lambda data: refusals.append(data))
        connecting = asyncio.create_task(client.connect())
        # The handler has checked the account and marked the agent online; it pauses now.
        await _wait_until_online(api, await make.admin_token(), agent["admin"]["id"])
        r = await api.post(
            f"/api/agents/{agent['admin']['id']}/deactivate",
            headers=bearer(await make.admin_token()),
        )
        assert r.status_code == 200
        deactivated_at = time.monotonic()
        try:
            await connecting
        except socketio.exceptions.ConnectionError:
            assert refusals and refusals[0]["data"]["code"] == "token_revoked", refusals
            assert "deactivated" in refusals[0]["message"], refusals
            return
        # Connected after all: then dropped at once, saying why.
        dropped = await client.wait_disconnected(within=CONNECT_PAUSE + CACHE_BOUND + SWEEP)
        assert dropped - deactivated_at < CONNECT_PAUSE + 0.5
        assert [e["reason"] for e in client.of("session_revoked")] == ["deactivated"]


async def _wait_until_online(api: httpx.AsyncClient, admin_token: str, member: str) -> None:
    """Until the team list shows `member` online: its connect handler has got that far."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = await api.get("/api/agents", headers=bearer(admin_token))
        if any(m["id"] == member and m["online"] for m in r.json()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the socket never reached its connect handler")


async def test_a_deactivation_the_sweep_finds_tells_the_socket_it_was_deactivated(
    make: Factory, server: LiveServer, db: asyncpg.Connection
):
    """Deactivated behind the API's back (no revocation announced): the sweep drops the
    socket within its bound, with the reason an announced deactivation gives."""
    agent = await make.agent()
    client = await Client(server.url, agent["token"]).connect()
    await db.execute(
        "UPDATE admin SET deactivated_at = now() WHERE id = $1", uuid.UUID(agent["admin"]["id"])
    )
    changed_at = time.monotonic()
    dropped = await client.wait_disconnected(within=CACHE_BOUND + SWEEP + 3)
    assert dropped - changed_at < CACHE_BOUND + SWEEP + 0.5
    assert client.of("session_revoked") == [{"reason": "deactivated", "code": "token_revoked"}]


async def test_an_event_of_a_deactivated_account_is_refused_and_told_why(
    make: Factory, server: LiveServer, db: asyncpg.Connection
):
    agent = await make.agent()
    session = await make.session()
    client = await Client(server.url, agent["token"]).connect()
    await db.execute(
        "UPDATE admin SET deactivated_at = now() WHERE id = $1", uuid.UUID(agent["admin"]["id"])
    )
    await asyncio.sleep(CACHE_BOUND)
    if client.disconnected_at is None:
        try:
            ack = await client.call("join_session", session["id"])
        except (socketio.exceptions.BadNamespaceError, socketio.exceptions.TimeoutError):
            pass  # the sweep got there first
        else:
            assert ack["ok"] is False and ack["error"]["code"] == "token_revoked", ack
    await client.wait_disconnected(within=SWEEP + 3)
    assert client.of("session_revoked") == [{"reason": "deactivated", "code": "token_revoked"}]
