"""Socket.IO contract, with real clients on two live server processes sharing Redis.

A customer connects to server A and an admin to server B throughout, so every delivery
asserted here crossed workers through the Redis manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.sockets import Client
from tests.support import REDIS_NAMESPACE, Factory, LiveServer, bearer, forge

Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    opened: list[Client] = []

    async def open_client(url: str, token: str | None, **kw: object) -> Client:
        client = Client(url, token, **kw)  # type: ignore[arg-type]
        await client.connect()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()


@pytest.fixture
async def chat(make, connect, server, server_b):
    """A session with its customer on server A and an admin on server B, both joined."""
    token = await make.admin_token()
    session = await make.session(userName="Ada")
    customer = await connect(server.url, session["customerToken"])
    admin = await connect(server_b.url, token)
    assert (await customer.call("join_session", session["id"]))["ok"]
    assert (await admin.call("join_session", {"sessionId": session["id"]}))["ok"]
    return session, customer, admin, token


async def test_customer_and_admin_on_different_servers_exchange_messages(chat):
    session, customer, admin, _ = chat
    ack = await customer.call("send_message", {"sessionId": session["id"], "content": "help!"})
    assert ack["ok"] is True and ack["created"] is True
    assert ack["message"]["senderType"] == "user"
    assert ack["message"]["content"] == "help!"
    assert ack["message"]["seq"] == 1
    seen = await admin.wait_for("new_message", lambda m: m["id"] == ack["message"]["id"])
    assert seen == ack["message"]

    reply = await admin.call("send_message", {"sessionId": session["id"], "content": "on it"})
    assert reply["ok"] is True and reply["message"]["senderType"] == "admin"
    seen = await customer.wait_for("new_message", lambda m: m["id"] == reply["message"]["id"])
    assert seen == reply["message"]


async def test_acked_socket_message_is_in_rest_history(chat, api):
    session, customer, _, token = chat
    ack = await customer.call("send_message", {"sessionId": session["id"], "content": "stored?"})
    r = await api.get(f"/api/chat/messages/{session['id']}", headers=bearer(token))
    assert [m["id"] for m in r.json()] == [ack["message"]["id"]]


async def test_admin_in_session_room_and_admins_room_gets_each_message_once(
    chat, connect, server_b
):
    session, customer, admin, token = chat
    # On the admin's worker: one client in the admins room only, one in the room only.
    inbox = await connect(server_b.url, token)
    tab = await connect(server_b.url, session["customerToken"])
    assert (await tab.call("join_session", session["id"]))["ok"]
    ack = await customer.call("send_message", {"sessionId": session["id"], "content": "once"})
    await admin.heard_once("new_message", lambda m: m["id"] == ack["message"]["id"], inbox, tab)
    assert [m["id"] for m in admin.of("new_message")] == [ack["message"]["id"]]


async def test_admin_not_in_room_still_gets_every_message_through_admins_room(
    make, connect, server, server_b
):
    token = await make.admin_token()
    session = await make.session()
    inbox = await connect(server_b.url, token)
    customer = await connect(server.url, session["customerToken"])
    ack = await customer.call("send_message", {"sessionId": session["id"], "content": "hi"})
    assert (await inbox.wait_for("new_message"))["id"] == ack["message"]["id"]


async def test_join_with_after_returns_exactly_the_missed_messages(chat, make, connect, server):
    session, customer, _, token = chat
    sent = [
        (await customer.call("send_message", {"sessionId": session["id"], "content": f"m{i}"}))[
            "message"
        ]
        for i in range(5)
    ]
    late = await connect(server.url, token)
    ack = await late.call("join_session", {"sessionId": session["id"], "after": 2})
    assert ack["ok"] is True
    assert [m["seq"] for m in ack["messages"]] == [3, 4, 5]
    assert [m["id"] for m in ack["messages"]] == [m["id"] for m in sent[2:]]
    assert ack["hasMore"] is False


async def test_a_join_past_500_missed_messages_says_has_more_and_rest_pages_on(
    chat, connect, server, db, api
):
    session, _, _, token = chat
    session_id = uuid.UUID(session["id"])
    await db.execute(
        "INSERT INTO message (id, session_id, seq, sender_type, content, is_read, created_at)"
        " SELECT gen_random_uuid(), $1, g, 'user', 'm' || g, false, now()"
        " FROM generate_series(1, 501) AS g",
        session_id,
    )
    await db.execute("UPDATE chat_session SET last_seq = 501 WHERE id = $1", session_id)
    late = await connect(server.url, token)
    ack = await late.call("join_session", {"sessionId": session["id"], "after": 0})
    assert ack["ok"] is True and ack["hasMore"] is True
    assert [m["seq"] for m in ack["messages"]] == list(range(1, 501))
    r = await api.get(f"/api/chat/messages/{session['id']}?after=500", headers=bearer(token))
    assert [m["seq"] for m in r.json()] == [501]


@pytest.mark.parametrize("form", ["id", "object"])
async def test_leave_session_stops_room_events(chat, connect, server, form):
    session, customer, admin, _ = chat
    # Another tab of the same customer, on the same worker, stays in the room.
    stays = await connect(server.url, session["customerToken"])
    assert (await stays.call("join_session", session["id"]))["ok"]
    payload = session["id"] if form == "id" else {"sessionId": session["id"]}
    left = await customer.call("leave_session", payload)
    assert left == {"ok": True, "sessionId": session["id"]}
    assert (await admin.call("typing", {"sessionId": session["id"], "isTyping": True}))["ok"]
    await customer.heard_no("user_typing", stays)


# --- auth over sockets -------------------------------------------------------------


async def test_connect_without_token_is_refused_with_a_message(server):
    client = Client(server.url, None)
    with pytest.raises(Exception) as refused:
        await client.connect()
    assert "failed to connect" in str(refused.value).lower()


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        forge({}, secret="another-secret-" + "y" * 32),
        forge({"exp": 1}),
        forge({"aud": "someone-else"}),
    ],
    ids=["garbage", "wrong-secret", "expired", "wrong-audience"],
)
async def test_connect_with_bad_token_is_refused(server, token):
    client = Client(server.url, token)
    with pytest.raises(Exception, match=r"(?i)failed to connect"):
        await client.connect()


async def test_refusal_tells_the_client_why(server):
    seen: list[object] = []
    client = Client(server.url, "garbage")
    client.sio.on("connect_error", lambda data: seen.append(data))
    with contextlib.suppress(Exception):
        await client.connect()
    assert seen and seen[0]["message"] == "Invalid token"  # type: ignore[index]
    assert seen[0]["data"] == {"code": "invalid_token"}  # type: ignore[index]


@pytest.mark.parametrize("who", ["customer", "staff"])
async def test_a_token_in_the_query_string_authenticates_a_socket(make, server, who):
    session = await make.session()
    token = session["customerToken"] if who == "customer" else await make.admin_token()
    client = Client(f"{server.url}?token={token}", None)
    await client.connect()
    try:
        ack = await client.call("join_session", session["id"])
        assert ack["ok"] is True and ack["sessionId"] == session["id"]
    finally:
        await client.close()


async def test_customer_cannot_join_another_session(make, connect, server):
    mine = await make.session()
    other = await make.session()
    customer = await connect(server.url, mine["customerToken"])
    ack = await customer.call("join_session", other["id"])
    assert ack == {
        "ok": False,
        "error": {"code": "not_found", "message": "Session not found", "retryable": False},
    }


async def test_customer_cannot_send_into_another_session(make, connect, server, db):
    mine = await make.session()
    other = await make.session()
    customer = await connect(server.url, mine["customerToken"])
    ack = await customer.call("send_message", {"sessionId": other["id"], "content": "psst"})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    assert await db.fetchval("SELECT count(*) FROM message") == 0


async def test_customer_cannot_type_into_another_session(make, connect, server, server_b):
    mine = await make.session()
    other = await make.session()
    watcher = await connect(server_b.url, other["customerToken"])
    await watcher.call("join_session", other["id"])
    customer = await connect(server.url, mine["customerToken"])
    ack = await customer.call("typing", {"sessionId": other["id"], "isTyping": True})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    # A staff member on the refused customer's worker types next: the watcher hears that,
    # and nothing before it.
    staff = await connect(server.url, await make.admin_token())
    assert (await staff.call("typing", {"sessionId": other["id"], "isTyping": True}))["ok"]
    await watcher.wait_for("user_typing")
    assert [e["userType"] for e in watcher.of("user_typing")] == ["admin"]


async def test_customer_cannot_send_as_admin(chat, db):
    session, customer, _, _ = chat
    ack = await customer.call(
        "send_message", {"sessionId": session["id"], "content": "x", "senderType": "admin"}
    )
    assert ack["ok"] is False and ack["error"]["code"] == "sender_mismatch"
    assert await db.fetchval("SELECT count(*) FROM message WHERE sender_type = 'admin'") == 0


async def test_customer_hears_nothing_of_other_sessions(make, connect, server, server_b):
    session = await make.session()
    other = await make.session()
    snoop = await connect(server.url, session["customerToken"])
    await snoop.call("join_session", session["id"])
    # Staff on the snoop's worker, in the other session's room: hears what the snoop must not.
    control = await connect(server.url, await make.admin_token())
    assert (await control.call("join_session", other["id"]))["ok"]
    stranger = await connect(server_b.url, other["customerToken"])
    await stranger.call("join_session", other["id"])
    await stranger.call("send_message", {"sessionId": other["id"], "content": "private"})
    await stranger.call("typing", {"sessionId": other["id"], "isTyping": True})
    await snoop.heard_no("new_message", control)
    await snoop.heard_no("user_typing", control)
    assert snoop.events == []


async def test_failed_send_also_emits_the_originals_error_event(chat):
    session, customer, _, _ = chat
    ack = await customer.call("send_message", {"sessionId": session["id"], "content": "   "})
    assert ack["ok"] is False and ack["error"]["code"] == "validation_error"
    error = await customer.wait_for("error")
    assert error == {"message": ack["error"]["message"]}


# Stands for the chat's own session id, so each case can fail only on validation (an
# unknown id would be refused by the lookup whatever the validation did).
SID = "<session>"


def _with_session(payload: object, session_id: str) -> object:
    if payload == SID:
        return session_id
    if isinstance(payload, dict):
        return {k: session_id if v == SID else v for k, v in payload.items()}
    return payload


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("join_session", None),
        ("join_session", 42),
        ("join_session", "not-a-uuid"),
        ("join_session", {"sessionId": SID, "after": -1}),
        ("join_session", {"sessionId": SID, "after": "x"}),
        ("leave_session", {"nope": 1}),
        ("send_message", ["a", "list"]),
        ("send_message", {"sessionId": "x", "content": "fine"}),
        ("send_message", {"sessionId": SID, "content": 5}),
        ("send_message", {"sessionId": SID, "content": "x" * 5001}),
        ("send_message", {"sessionId": SID, "content": "nul \x00 inside"}),
        ("typing", {"sessionId": SID}),
        ("typing", {"sessionId": SID, "isTyping": "yes"}),
        ("typing", {"sessionId": SID, "isTyping": True, "userType": "robot"}),
        ("mark_read", "x"),
        ("mark_read", {"messageId": None}),
    ],
)
async def test_malformed_event_is_refused_and_the_connection_survives(chat, db, event, payload):
    session, customer, _, _ = chat
    ack = await customer.call(event, _with_session(payload, session["id"]))
    assert ack["ok"] is False
    assert ack["error"]["code"] in {"validation_error", "invalid_body"}, ack
    assert await db.fetchval("SELECT count(*) FROM message") == 0
    again = await customer.call("send_message", {"sessionId": session["id"], "content": "still"})
    assert again["ok"] is True


# --- typing and presence --------------------------------------------------------------


async def test_typing_on_and_off_reach_the_other_server(chat):
    session, customer, admin, _ = chat
    assert (await customer.call("typing", {"sessionId": session["id"], "isTyping": True}))["ok"]
    on = await admin.wait_for("user_typing", lambda e: e["isTyping"])
    assert on == {"sessionId": session["id"], "userType": "user", "isTyping": True}
    await customer.call("typing", {"sessionId": session["id"], "isTyping": False})
    off = await admin.wait_for("user_typing", lambda e: not e["isTyping"])
    assert off == {"sessionId": session["id"], "userType": "user", "isTyping": False}


async def test_staff_typing_reaches_the_customer(chat):
    session, customer, admin, _ = chat
    assert (await admin.call("typing", {"sessionId": session["id"], "isTyping": True}))["ok"]
    on = await customer.wait_for("user_typing", lambda e: e["isTyping"])
    assert on == {"sessionId": session["id"], "userType": "admin", "isTyping": True}
    assert (await admin.call("typing", {"sessionId": session["id"], "isTyping": False}))["ok"]
    off = await customer.wait_for("user_typing", lambda e: not e["isTyping"])
    assert off == {"sessionId": session["id"], "userType": "admin", "isTyping": False}


@pytest.mark.parametrize(("typer", "claimed"), [("customer", "admin"), ("staff", "user")])
async def test_typing_as_the_other_side_is_refused_and_told_to_nobody(chat, typer, claimed):
    session, customer, admin, _ = chat
    client, listener = (customer, admin) if typer == "customer" else (admin, customer)
    typing = {"sessionId": session["id"], "isTyping": True}
    ack = await client.call("typing", {**typing, "userType": claimed})
    assert ack["ok"] is False and ack["error"]["code"] == "sender_mismatch"
    # The same typer's honest typing next: the listener hears that, and nothing before it.
    honest = await client.call("typing", typing)
    assert honest["ok"] is True and honest["userType"] != claimed
    await listener.wait_for("user_typing")
    assert listener.of("user_typing") == [{**typing, "userType": honest["userType"]}]


async def test_typer_does_not_hear_its_own_typing(chat, connect, server):
    session, customer, admin, _ = chat
    other_tab = await connect(server.url, session["customerToken"])
    assert (await other_tab.call("join_session", session["id"]))["ok"]
    await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
    await admin.wait_for("user_typing")
    await customer.heard_no("user_typing", other_tab)


async def test_typing_expires_after_ttl_when_the_typer_goes_silent(chat, connect, server_b):
    session, customer, admin, token = chat
    await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
    await admin.wait_for("user_typing", lambda e: e["isTyping"])
    # TYPING_TTL is 2 s on the test servers; the sweeper announces the end.
    off = await admin.wait_for("user_typing", lambda e: not e["isTyping"], within=6)
    assert off["userType"] == "user"
    late = await connect(server_b.url, token)
    state = await late.call("join_session", session["id"])
    assert state["typing"] == {"user": False, "admin": False}


async def test_typing_refreshed_before_ttl_stays_on(chat):
    session, customer, admin, _ = chat
    for _ in range(4):
        await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
        await asyncio.sleep(0.8)
    # Announced once (a refresh changes nothing the room sees), never switched off.
    assert [e["isTyping"] for e in admin.of("user_typing")] == [True]


async def test_disconnect_clears_typing_at_once(chat):
    session, customer, admin, _ = chat
    await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
    await admin.wait_for("user_typing", lambda e: e["isTyping"])
    await customer.close()
    off = await admin.wait_for("user_typing", lambda e: not e["isTyping"], within=1.5)
    assert off == {"sessionId": session["id"], "userType": "user", "isTyping": False}


async def test_join_ack_tells_who_is_typing(chat, connect, server):
    session, customer, _, token = chat
    await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
    other_admin = await connect(server.url, token)
    state = await other_admin.call("join_session", session["id"])
    assert state["typing"] == {"user": True, "admin": False}


async def test_customer_online_until_every_tab_on_every_server_is_gone(
    make, connect, server, server_b, redis
):
    token = await make.admin_token()
    session = await make.session()
    admin = await connect(server.url, token)
    tab_a = await connect(server.url, session["customerToken"])
    online = await admin.wait_for("customer_presence")
    assert online == {"sessionId": session["id"], "online": True}
    tab_b = await connect(server_b.url, session["customerToken"])
    await tab_a.close()
    await until_live_connections(redis, session["id"], 1)
    # Server A handled the disconnect; a presence change it tells the admins next comes
    # behind any "offline" it would have told for the first session.
    marker = await make.session()
    await connect(server.url, marker["customerToken"])
    await admin.wait_for("customer_presence", lambda e: e["sessionId"] == marker["id"])
    assert [
        e["online"] for e in admin.of("customer_presence") if e["sessionId"] == session["id"]
    ] == [True]
    assert (await admin.call("join_session", session["id"]))["customerOnline"] is True
    await tab_b.close()
    offline = await admin.wait_for("customer_presence", lambda e: not e["online"])
    assert offline == {"sessionId": session["id"], "online": False}


async def test_inbox_page_says_which_customers_are_online_now(make, connect, server, api):
    token = await make.admin_token()
    connected = await make.session(userName="connected")
    left = await make.session(userName="left")
    never = await make.session(userName="never")
    admin = await connect(server.url, token)
    await connect(server.url, connected["customerToken"])
    gone = await connect(server.url, left["customerToken"])
    await gone.close()
    await admin.wait_for(
        "customer_presence", lambda e: e == {"sessionId": left["id"], "online": False}
    )
    r = await api.get("/api/sessions", headers=bearer(token))
    assert r.status_code == 200, r.text
    online = {s["id"]: s["customerOnline"] for s in r.json()}
    assert online == {connected["id"]: True, left["id"]: False, never["id"]: False}


# --- REST actions reach sockets ---------------------------------------------------------


async def test_rest_posted_message_arrives_as_socket_event(chat, api):
    session, customer, _, token = chat
    r = await api.post(
        "/api/chat/messages",
        json={"sessionId": session["id"], "content": "via REST"},
        headers=bearer(token),
    )
    assert r.status_code == 201
    seen = await customer.wait_for("new_message")
    assert seen == r.json()


async def test_status_change_arrives_as_session_updated(chat, api):
    session, customer, admin, token = chat
    r = await api.patch(
        f"/api/sessions/{session['id']}/status", json={"status": "closed"}, headers=bearer(token)
    )
    assert r.status_code == 200 and r.json()["status"] == "closed"
    # Staff hear the session as REST answered it; the room hears the customer's view of
    # it, without the private labels (an admin in the room hears both copies).
    assert await admin.wait_for("session_updated", lambda e: "labels" in e) == r.json()
    as_customer = {k: v for k, v in r.json().items() if k != "labels"}
    assert await customer.wait_for("session_updated") == as_customer
    assert all("labels" not in e for e in customer.of("session_updated"))


async def test_admins_get_session_created_as_rest_answered_it_without_the_token(
    make, connect, server_b
):
    token = await make.admin_token()
    admin = await connect(server_b.url, token)
    session = await make.session(userName="Grace", userEmail="grace@example.com")
    event = await admin.wait_for("session_created")
    # Staff see its (empty) labels; the widget's answer, a customer's view, has none.
    assert event == {**{k: v for k, v in session.items() if k != "customerToken"}, "labels": []}


async def test_mark_read_over_socket_broadcasts_message_read(chat):
    session, customer, admin, _ = chat
    sent = await customer.call("send_message", {"sessionId": session["id"], "content": "read me"})
    ack = await admin.call("mark_read", {"messageId": sent["message"]["id"]})
    assert ack["ok"] is True and ack["message"]["isRead"] is True
    event = await customer.wait_for("message_read")
    assert event["id"] == sent["message"]["id"] and event["isRead"] is True


async def test_marking_ones_own_message_read_over_the_socket_is_refused(chat, db):
    session, customer, admin, _ = chat
    sent = await customer.call("send_message", {"sessionId": session["id"], "content": "mine"})
    ack = await customer.call("mark_read", {"messageId": sent["message"]["id"]})
    assert ack["ok"] is False and ack["error"]["code"] == "own_message"
    message_id = uuid.UUID(sent["message"]["id"])
    assert await db.fetchval("SELECT is_read FROM message WHERE id = $1", message_id) is False
    # Still unread, so the other side's mark is a change and is told (once).
    read = await admin.call("mark_read", {"messageId": sent["message"]["id"]})
    assert await customer.wait_for("message_read") == read["message"]
    assert customer.of("message_read") == [read["message"]]


async def test_message_read_reaches_staff_who_have_not_joined_the_session(chat, connect, server):
    session, customer, admin, token = chat
    inbox = await connect(server.url, token)
    reply = await admin.call("send_message", {"sessionId": session["id"], "content": "hi"})
    ack = await customer.call("mark_read", {"messageId": reply["message"]["id"]})
    assert ack["ok"] is True
    assert await inbox.wait_for("message_read") == ack["message"]


async def test_socket_retry_with_client_message_id_is_stored_and_broadcast_once(chat, db):
    session, customer, admin, _ = chat
    payload = {"sessionId": session["id"], "content": "again", "clientMessageId": "c-1"}
    first = await customer.call("send_message", payload)
    second = await customer.call("send_message", payload)
    assert first["created"] is True and second["created"] is False
    assert first["message"] == second["message"]
    # A later message from the same customer reaches the admin behind any second copy.
    later = await customer.call("send_message", {"sessionId": session["id"], "content": "next"})
    await admin.wait_for("new_message", lambda m: m["id"] == later["message"]["id"])
    assert [m["id"] for m in admin.of("new_message")] == [
        first["message"]["id"],
        later["message"]["id"],
    ]
    assert await db.fetchval("SELECT count(*) FROM message") == 2


# --- load across workers ------------------------------------------------------------


async def test_hundred_customers_over_two_servers_each_message_reaches_admins_once(
    make, connect, server, server_b
):
    token = await make.admin_token()
    inbox_a = await connect(server.url, token)
    inbox_b = await connect(server_b.url, token)
    sessions = [await make.session() for _ in range(100)]
    customers = await asyncio.gather(
        *(
            connect((server, server_b)[i % 2].url, s["customerToken"])
            for i, s in enumerate(sessions)
        )
    )

    async def talk(client: Client, session_id: str) -> list[dict]:
        acks = []
        for n in range(10):
            ack = await client.call("send_message", {"sessionId": session_id, "content": f"#{n}"})
            acks.append(ack)
        return acks

    results = await asyncio.gather(
        *(talk(c, s["id"]) for c, s in zip(customers, sessions, strict=True))
    )
    acks = [a for per_customer in results for a in per_customer]
    assert len(acks) == 1000 and all(a["ok"] for a in acks)
    sent = {a["message"]["id"] for a in acks}
    assert len(sent) == 1000
    for inbox in (inbox_a, inbox_b):
        for _ in range(200):
            if len(inbox.of("new_message")) >= 1000:
                break
            await asyncio.sleep(0.05)
        received = [m["id"] for m in inbox.of("new_message")]
        assert len(received) == 1000, f"{len(received)} of 1000"
        assert set(received) == sent


@pytest.fixture
async def lone_server(database_url: str, redis_url: str, redis) -> AsyncIterator[LiveServer]:
    """A server alone on its Redis namespace: its sweep is the only one, so what it
    announces reaches a listener in the order it found it due."""
    namespace = f"helpline-lone-{uuid.uuid4().hex[:8]}"
    with LiveServer.running("lone", database_url, redis_url, REDIS_NAMESPACE=namespace) as live:
        yield live
    keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest.mark.parametrize("how", ["typing_false", "disconnect"])
async def test_a_typing_stop_is_announced_once_not_again_by_the_sweep(lone_server, connect, how):
    async with httpx.AsyncClient(base_url=lone_server.url, timeout=10) as api:
        make = Factory(api)
        admin = await connect(lone_server.url, await make.admin_token())
        typer_session, control_session = await make.session(), await make.session()
    typer = await connect(lone_server.url, typer_session["customerToken"])
    control = await connect(lone_server.url, control_session["customerToken"])
    sid, control_sid = typer_session["id"], control_session["id"]

    def stop_of(session_id: str) -> Callable[[Any], bool]:
        return lambda e: e["sessionId"] == session_id and not e["isTyping"]

    assert (await typer.call("typing", {"sessionId": sid, "isTyping": True}))["ok"]
    if how == "typing_false":
        assert (await typer.call("typing", {"sessionId": sid, "isTyping": False}))["ok"]
    else:
        await typer.close()
    await admin.wait_for("user_typing", stop_of(sid))
    # The control starts typing after the typer did and goes silent: its stop comes from
    # a sweep past the typer's deadline, which would have announced the typer's again first.
    assert (await control.call("typing", {"sessionId": control_sid, "isTyping": True}))["ok"]
    await admin.wait_for("user_typing", stop_of(control_sid))
    stops = [e for e in admin.of("user_typing") if stop_of(sid)(e)]
    assert stops == [{"sessionId": sid, "userType": "user", "isTyping": False}]


async def until_live_connections(redis, session_id: str, count: int, within: float = 10) -> None:
    """Waits until the session's presence set holds `count` connections (a disconnect
    was handled)."""
    key = f"{REDIS_NAMESPACE}:presence:{session_id}"
    deadline = asyncio.get_running_loop().time() + within
    while await redis.zcard(key) != count:
        assert asyncio.get_running_loop().time() < deadline, f"presence of {session_id} stuck"
        await asyncio.sleep(0.02)
