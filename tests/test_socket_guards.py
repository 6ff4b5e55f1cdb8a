"""What a stranger with a socket may make a worker do, hold or keep open (issue 10).

Attacks are spoken by hand (tests/raw_socket.py) where no client library would send them;
the others use python-socketio's client. Servers are live processes sharing Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from bench.raw_socket import RawSocket
from tests.sockets import Client
from tests.support import REDIS_NAMESPACE, Factory, LiveServer, bearer

TIGHT = {
    "SOCKET_EVENTS_PER_SECOND": "1",
    "SOCKET_EVENT_BURST": "5",
    "SOCKET_AUTH_TIMEOUT": "1",
    "CONNECTIONS_PER_IP": "3",
    "CORS_ORIGINS": "https://desk.example",
}


@pytest.fixture(scope="module")
def tight(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer.running("guards-tight", database_url, redis_url, **TIGHT) as live:
        yield live


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for c in opened:
        with contextlib.suppress(Exception):
            await c.close()


async def long_session(make: Factory, messages: int, size: int) -> dict[str, Any]:
    session = await make.session()
    for i in range(messages):
        await make.message(session["customerToken"], session["id"], f"{i:04d}" + "x" * size)
    return session


async def test_a_client_that_never_reads_is_closed_and_its_queue_dropped(
    server: LiveServer, make: Factory, clients: list[Any]
):
    session = await long_session(make, 40, 4000)
    closed_line = "bytes queued for a client that does not read"
    seen = server.log_path.read_text().count(closed_line)
    attacker = await RawSocket.open(server.port, receive_buffer=4096)
    clients.append(attacker)
    assert (await attacker.authenticate(session["customerToken"]) or "").startswith("40")
    join = orjson.dumps(["join_session", {"sessionId": session["id"], "after": 0}]).decode()
    # 100 joins of ~128 KB acks each (12.8 MB), and not one byte read back.
    for i in range(100):
        await attacker.send(f"42{i}{join}")
    # Still not reading: the server must give up on its own.
    for _ in range(100):
        if server.log_path.read_text().count(closed_line) > seen:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the server kept the reader that never reads")
    assert await attacker.closed_within(10)
    # The worker is still fine for everyone else.
    ok = Client(server.url, session["customerToken"])
    clients.append(ok)
    await ok.connect()
    assert (await ok.call("join_session", session["id"]))["ok"]


async def test_a_join_ack_is_bounded_in_size_and_says_to_page_on(
    server: LiveServer, make: Factory, clients: list[Any], api
):
    session = await long_session(make, 40, 4000)
    customer = Client(server.url, session["customerToken"])
    clients.append(customer)
    await customer.connect()
    ack = await customer.call("join_session", {"sessionId": session["id"], "after": 0})
    got = ack["messages"]
    # JOIN_PAGE_CHARS (128 K by default) holds 32 of these 4,004-character messages.
    assert ack["hasMore"] is True and 0 < len(got) < 40
    assert sum(len(m["content"]) for m in got) <= 128 * 1024 + 4004
    assert [m["seq"] for m in got] == list(range(1, len(got) + 1))
    r = await api.get(
        f"/api/chat/messages/{session['id']}",
        params={"after": got[-1]["seq"], "limit": 100},
        headers=bearer(session["customerToken"]),
    )
    assert [m["seq"] for m in r.json()] == list(range(len(got) + 1, 41))


async def test_events_past_a_connections_budget_are_refused_with_rate_limited(
    tight: LiveServer, make: Factory, clients: list[Any]
):
    session = await make.session()
    customer = Client(tight.url, session["customerToken"])
    clients.append(customer)
    await customer.connect()
    typing = {"sessionId": session["id"], "isTyping": True}
    acks = [await customer.call("typing", typing) for _ in range(10)]
    refused = [a for a in acks if not a["ok"]]
    # The connect took one of the burst of 5, the events the other 4 (+ ~1 a second).
    assert 4 <= len(refused) <= 6
    assert {a["error"]["code"] for a in refused} == {"rate_limited"}
    assert all(a["error"]["retryable"] for a in refused)


async def test_reserved_event_names_never_reach_the_lifecycle_handlers(
    server: LiveServer, make: Factory, clients: list[Any]
):
    admin = Client(server.url, await make.admin_token())
    clients.append(admin)
    await admin.connect()
    session = await make.session()
    customer = await RawSocket.open(server.port)
    clients.append(customer)
    await customer.authenticate(session["customerToken"])
    await admin.wait_for("customer_presence", lambda e: e["online"])
    seen = len(admin.of("customer_presence"))
    other = await make.session()
    for i in range(50):
        ack = await customer.call(2 * i, "disconnect", "client namespace disconnect")
        assert ack["error"]["code"] == "reserved_event"
        ack = await customer.call(2 * i + 1, "connect", {"token": other["customerToken"]})
        assert ack["error"]["code"] == "reserved_event"
    # A presence change this worker tells the admins next comes behind any it would
    # have told for the reserved events.
    marker = await make.session()
    marker_client = Client(server.url, marker["customerToken"])
    clients.append(marker_client)
    await marker_client.connect()
    await admin.wait_for("customer_presence", lambda e: e["sessionId"] == marker["id"])
    assert len(admin.of("customer_presence")) == seen + 1
    # The socket still acts for its own session only (no re-authentication happened).
    ack = await customer.call(999, "join_session", other["id"])
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"


async def test_typing_is_told_to_the_room_on_a_change_only(
    server: LiveServer, make: Factory, clients: list[Any]
):
    session = await make.session()
    admin = Client(server.url, await make.admin_token())
    customer = Client(server.url, session["customerToken"])
    clients.extend([admin, customer])
    await admin.connect()
    await customer.connect()
    assert (await admin.call("join_session", session["id"]))["ok"]
    for _ in range(20):
        await customer.call("typing", {"sessionId": session["id"], "isTyping": True})
    await customer.call("typing", {"sessionId": session["id"], "isTyping": False})
    await customer.call("typing", {"sessionId": session["id"], "isTyping": False})
    # The customer's next event for the room travels behind any typing it caused.
    sent = await customer.call("send_message", {"sessionId": session["id"], "content": "x"})
    await admin.wait_for("new_message", lambda m: m["id"] == sent["message"]["id"])
    assert [e["isTyping"] for e in admin.of("user_typing")] == [True, False]


async def test_binary_packets_are_refused_and_never_stored(
    server: LiveServer, make: Factory, clients: list[Any], db
):
    session = await make.session()
    customer = Client(server.url, session["customerToken"])
    clients.append(customer)
    await customer.connect()
    payload = {"sessionId": session["id"], "content": "hi", "blob": b"\x00" * 50_000}
    ack = await customer.call("send_message", payload)
    assert ack == {
        "ok": False,
        "error": {
            "code": "binary_unsupported",
            "message": "Binary packets are not accepted",
            "retryable": False,
        },
    }
    assert await db.fetchval("SELECT count(*) FROM message") == 0
    # Still connected and served.
    assert (await customer.call("join_session", session["id"]))["ok"]


async def test_an_unknown_event_is_answered_unknown_event(
    server: LiveServer, make: Factory, clients: list[Any]
):
    session = await make.session()
    customer = Client(server.url, session["customerToken"])
    clients.append(customer)
    await customer.connect()
    ack = await customer.call("no_such_event", {"x": 1})
    assert ack["ok"] is False and ack["error"]["code"] == "unknown_event"


async def test_malformed_frames_cost_one_log_line_and_not_the_connection(
    server: LiveServer, make: Factory, clients: list[Any]
):
    session = await make.session()
    raw = await RawSocket.open(server.port)
    clients.append(raw)
    await raw.authenticate(session["customerToken"])
    before = server.log_path.read_text().count("\n")
    for _ in range(1000):
        await raw.send("4x")
    ack = await raw.call(1, "join_session", session["id"])
    assert ack["ok"] is True
    await asyncio.sleep(0.3)
    assert server.log_path.read_text().count("\n") - before <= 2


async def test_a_connection_that_never_authenticates_is_closed(
    tight: LiveServer, clients: list[Any]
):
    idle = await RawSocket.open(tight.port, local_ip="127.0.0.6")
    clients.append(idle)
    assert idle.status == 101
    # SOCKET_AUTH_TIMEOUT is 1 s on this server; the sweep runs every second.
    assert await idle.closed_within(5)


async def test_connections_per_client_address_are_capped(tight: LiveServer, clients: list[Any]):
    opened = [await RawSocket.open(tight.port, local_ip="127.0.0.5") for _ in range(3)]
    clients.extend(opened)
    assert [s.status for s in opened] == [101] * 3
    fourth = await RawSocket.open(tight.port, local_ip="127.0.0.5")
    clients.append(fourth)
    assert fourth.status != 101
    elsewhere = await RawSocket.open(tight.port, local_ip="127.0.0.7")
    clients.append(elsewhere)
    assert elsewhere.status == 101


async def test_a_socket_from_a_foreign_origin_is_refused(tight: LiveServer, clients: list[Any]):
    foreign = await RawSocket.open(
        tight.port, local_ip="127.0.0.8", headers={"Origin": "https://evil.example"}
    )
    clients.append(foreign)
    assert foreign.status != 101
    desk = await RawSocket.open(
        tight.port, local_ip="127.0.0.8", headers={"Origin": "https://desk.example"}
    )
    clients.append(desk)
    assert desk.status == 101


@pytest.fixture
async def other_db_namespace(redis_url: str) -> AsyncIterator[str]:
    """A namespace two servers share on two databases of one Redis server; cleaned after."""
    namespace = f"{REDIS_NAMESPACE}-db-{uuid.uuid4().hex[:6]}"
    yield namespace
    for url in (redis_url, redis_url.rsplit("/", 1)[0] + "/13"):
        r = aioredis.from_url(url)
        keys = [k async for k in r.scan_iter(match=f"{namespace}*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()


async def test_deployments_on_other_redis_databases_do_not_hear_each_other(
    database_url: str, redis_url: str, other_db_namespace: str, clients: list[Any]
):
    other_db = redis_url.rsplit("/", 1)[0] + "/13"
    with (
        LiveServer.running(
            "db-a", database_url, redis_url, REDIS_NAMESPACE=other_db_namespace
        ) as a,
        LiveServer.running("db-b", database_url, other_db, REDIS_NAMESPACE=other_db_namespace) as b,
    ):
        import httpx

        async with httpx.AsyncClient(base_url=a.url, timeout=10) as api:
            make = Factory(api)
            token = await make.admin_token()
            listeners = [Client(a.url, token), Client(b.url, token)]
            clients.extend(listeners)
            for c in listeners:
                await c.connect()
            session = await make.session()
            same, other = listeners
            await same.wait_for("session_created", lambda e: e["id"] == session["id"])
            # A session created through the other deployment reaches its own staff, behind
            # anything that had leaked across.
            async with httpx.AsyncClient(base_url=b.url, timeout=10) as api_b:
                own = await Factory(api_b).session()
            await other.wait_for("session_created", lambda e: e["id"] == own["id"])
        assert [e["id"] for e in other.of("session_created")] == [own["id"]]


async def test_a_connection_that_keeps_sending_past_refusals_is_closed(
    tight: LiveServer, make: Factory, clients: list[Any]
):
    session = await make.session()
    flooder = await RawSocket.open(tight.port, local_ip="127.0.0.9")
    clients.append(flooder)
    await flooder.authenticate(session["customerToken"])
    typing = orjson.dumps(["typing", {"sessionId": session["id"], "isTyping": True}]).decode()
    # A burst of 5 on this server: 40 events without waiting is 35 refused, past 2 bursts.
    for i in range(40):
        try:
            await flooder.send(f"42{i}{typing}")
        except ConnectionError:
            break  # closed before the flood was all written: what this test waits for
    assert await flooder.closed_within(5)
    assert "kept sending past its event budget" in tight.log_path.read_text()


@pytest.fixture(scope="module")
def narrow(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    """Two events of a connection under way at once, the budget otherwise generous."""
    with LiveServer.running(
        "guards-narrow", database_url, redis_url, SOCKET_EVENTS_IN_FLIGHT="2"
    ) as live:
        yield live


async def test_events_under_way_are_capped_and_their_slots_given_back(
    narrow: LiveServer, make: Factory, clients: list[Any], db
):
    session = await make.session()
    customer = Client(narrow.url, session["customerToken"])
    clients.append(customer)
    await customer.connect()
    typing = {"sessionId": session["id"], "isTyping": True}
    # One at a time: every answered event gives its slot back.
    assert all([(await customer.call("typing", typing))["ok"] for _ in range(20)])
    sends = [{"sessionId": session["id"], "content": f"m{i}"} for i in range(30)]
    acks = await asyncio.gather(*(customer.call("send_message", s) for s in sends))
    refused = [a for a in acks if not a["ok"]]
    assert refused and {a["error"]["code"] for a in refused} == {"rate_limited"}
    stored = await db.fetchval("SELECT count(*) FROM message")
    assert stored == len(acks) - len(refused)
