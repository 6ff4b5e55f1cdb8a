"""Credentials that end: revoked sign-ins, deactivated and deleted accounts, expired
tokens. REST answers 401 and sockets are refused and disconnected, on every worker (two
server processes sharing PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import jwt
import pytest
import socketio

from tests.sockets import Client
from tests.support import JWT_SECRET, Factory, LiveServer, assert_error, bearer, forge

# The account check's cache bound (AUTH_CACHE_MS default) plus the sweep period: how
# long a change made behind the API's back (a row deleted in SQL) may take.
CACHE_BOUND = 1.0
SWEEP = 1.0

EVENTS: dict[str, Any] = {
    "join_session": lambda sid, mid: {"sessionId": sid},
    "leave_session": lambda sid, mid: sid,
    "send_message": lambda sid, mid: {"sessionId": sid, "content": "still here?"},
    "typing": lambda sid, mid: {"sessionId": sid, "isTyping": True},
    "mark_read": lambda sid, mid: {"messageId": mid},
}


async def connected(server: LiveServer, token: str) -> Client:
    return await Client(server.url, token).connect()


async def refused_at_connect(server: LiveServer, token: str) -> str:
    """The code of the `connect_error` a refused connection gets."""
    seen: list[Any] = []
    client = Client(server.url, token)
    client.sio.on("connect_error", lambda data: seen.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    return str(seen[0]["data"]["code"])


async def test_logout_everywhere_disconnects_sockets_on_both_workers(
    api, make: Factory, server: LiveServer, server_b: LiveServer
):
    first = await make.admin()
    other = await make.login(first["admin"]["email"])
    sockets = [
        await connected(server, first["token"]),
        await connected(server_b, first["token"]),
        await connected(server_b, other["token"]),
    ]
    r = await api.post("/api/auth/logout-all", headers=bearer(first["token"]))
    assert r.status_code == 204
    for client in sockets:
        await client.wait_disconnected(within=5)
        assert client.of("session_revoked") == [{"reason": "logout_all", "code": "token_revoked"}]
    assert await refused_at_connect(server_b, other["token"]) == "token_revoked"


async def test_logout_disconnects_only_that_sign_ins_sockets(
    api, make: Factory, server: LiveServer, server_b: LiveServer
):
    first = await make.admin()
    other = await make.login(first["admin"]["email"])
    gone = await connected(server_b, first["token"])
    stays = await connected(server_b, other["token"])
    assert (await api.post("/api/auth/logout", headers=bearer(first["token"]))).status_code == 204
    await gone.wait_disconnected(within=5)
    # The same worker handled the revocation for both; a disconnect of `stays` would
    # have been written before the answer to its own next event.
    await stays.round_trip()
    assert stays.disconnected_at is None
    session = await make.session()
    assert (await stays.call("join_session", session["id"]))["ok"]
    await stays.close()


async def test_deactivation_disconnects_the_agent_on_every_worker_and_refuses_reconnects(
    api, make: Factory, server: LiveServer, server_b: LiveServer
):
    agent = await make.agent()
    sockets = [await connected(server, agent["token"]), await connected(server_b, agent["token"])]
    r = await api.post(
        f"/api/agents/{agent['admin']['id']}/deactivate",
        headers=bearer(await make.admin_token()),
    )
    assert r.status_code == 200
    for client in sockets:
        await client.wait_disconnected(within=5)
        assert client.of("session_revoked")[0]["reason"] == "deactivated"
    assert await refused_at_connect(server, agent["token"]) == "token_revoked"


async def test_a_role_change_keeps_the_members_sockets(
    api, make: Factory, server: LiveServer, server_b: LiveServer
):
    agent = await make.agent()
    client = await connected(server_b, agent["token"])
    r = await api.patch(
        f"/api/agents/{agent['admin']['id']}",
        json={"role": "admin", "fullName": "Renamed"},
        headers=bearer(await make.admin_token()),
    )
    assert r.status_code == 200
    session = await make.session()
    ack = await client.call("send_message", {"sessionId": session["id"], "content": "hi"})
    assert ack["ok"] and ack["message"]["senderName"] == "Renamed"
    assert client.disconnected_at is None
    await client.close()


# Issue 10, item 4: credentials that outlive themselves.


async def test_a_deleted_admins_token_gets_401_on_every_staff_route(
    api, make: Factory, db: asyncpg.Connection
):
    await make.admin()
    doomed = await make.agent(role="admin")
    session = await make.session()
    message = await make.message(session["customerToken"], session["id"])
    await db.execute("DELETE FROM admin WHERE id = $1", uuid.UUID(doomed["admin"]["id"]))
    await asyncio.sleep(CACHE_BOUND)
    spec = (await api.get("/docs/openapi.json")).json()
    sid, mid, someone = session["id"], message["id"], str(uuid.uuid4())
    checked = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if {"token": []} not in op.get("security", []):
                continue
            concrete = (
                path.replace("{session_id}", sid)
                .replace("{message_id}", mid)
                .replace("{agent_id}", someone)
                .replace("{invitation_id}", someone)
                .replace("{sign_in_id}", someone)
            )
            body = {"sessionId": sid, "content": "x", "status": "closed", "email": "n@example.com"}
            r = await api.request(method, concrete, json=body, headers=bearer(doomed["token"]))
            assert_error(r, 401, "invalid_token")
            checked += 1
    # Registering new admins above all (it is public, so not marked secured).
    r = await api.post(
        "/api/auth/register",
        json={"email": "mallory@example.com", "password": "p" * 12},
        headers=bearer(doomed["token"]),
    )
    assert_error(r, 401, "invalid_token")
    assert checked >= 20


async def test_a_deleted_admins_socket_is_refused_on_every_event_then_dropped(
    make: Factory, server: LiveServer, server_b: LiveServer, db: asyncpg.Connection
):
    await make.admin()
    doomed = await make.agent(role="admin")
    session = await make.session()
    message = await make.message(session["customerToken"], session["id"])
    # One socket per event (a refused event also disconnects its socket), on both workers.
    clients = {
        event: await connected(server if n % 2 else server_b, doomed["token"])
        for n, event in enumerate(EVENTS)
    }
    deleted_at = time.monotonic()
    await db.execute("DELETE FROM admin WHERE id = $1", uuid.UUID(doomed["admin"]["id"]))
    await asyncio.sleep(CACHE_BOUND)
    for event, client in clients.items():
        if client.disconnected_at is not None:
            continue  # the sweep got there first: refused all the same
        ack = await client.call(event, EVENTS[event](session["id"], message["id"]))
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_token", (event, ack)
    for client in clients.values():
        dropped = await client.wait_disconnected(within=5)
        assert dropped - deleted_at < CACHE_BOUND + SWEEP + 0.5
        assert client.of("session_revoked")[0]["code"] == "invalid_token"
    assert await refused_at_connect(server, doomed["token"]) == "invalid_token"


def short_lived(token: str, seconds: float, audience: str) -> str:
    """The same token (same claims, sign-in included) expiring in `seconds`."""
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience=audience)
    return forge({**claims, "exp": int(time.time() + seconds)})


@pytest.mark.parametrize("who", ["staff", "customer"])
async def test_a_socket_is_disconnected_when_its_token_expires(
    make: Factory, server: LiveServer, who: str
):
    session = await make.session()
    if who == "staff":
        token = short_lived((await make.admin())["token"], 2, "helpline:admin")
    else:
        token = short_lived(session["customerToken"], 2, "helpline:customer")
    client = await connected(server, token)
    assert (await client.call("join_session", session["id"]))["ok"]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    await client.wait_disconnected(within=6)
    assert time.time() >= expires
    assert time.time() - expires < SWEEP + 1
    assert client.of("session_revoked") == [{"reason": "token_expired", "code": "token_expired"}]


async def test_an_expired_tokens_event_is_refused_before_the_sweep(
    make: Factory, server: LiveServer
):
    session = await make.session()
    token = short_lived(session["customerToken"], 1, "helpline:customer")
    client = await connected(server, token)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.01)
    try:
        ack = await client.call("send_message", {"sessionId": session["id"], "content": "late"})
    except socketio.exceptions.BadNamespaceError:
        return  # the sweep disconnected it first
    except socketio.exceptions.TimeoutError:
        return
    assert ack["ok"] is False and ack["error"]["code"] == "token_expired"
