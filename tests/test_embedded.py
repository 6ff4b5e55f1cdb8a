"""Embedded mode, what `bash scripts/serve.sh` gives a new user: no DATABASE_URL and no
REDIS_URL, so a SQLite file, in-process Socket.IO and an in-memory TTL store, one worker.
A smoke suite: the PostgreSQL + Redis path is what the rest of the tests pin in full."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.sockets import Client, matching
from tests.support import Factory, LiveServer, bearer


@pytest.fixture(autouse=True)
def clean() -> None:
    """Overrides the shared PostgreSQL/Redis cleanup: these tests touch neither."""


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded") / "helpline.sqlite3"


@pytest.fixture(scope="module")
def embedded(sqlite_file: Path) -> Iterator[LiveServer]:
    # Empty, not absent: a developer's .env must not switch the server to PostgreSQL.
    env = {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(sqlite_file)}
    live = LiveServer("embedded", env)
    live.log_path.unlink(missing_ok=True)
    live.start(timeout=60)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
async def api(embedded: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=embedded.url, timeout=10) as client:
        yield client


@pytest.fixture
async def make(api: httpx.AsyncClient) -> Factory:
    return Factory(api)


@pytest.fixture(scope="module")
async def admin_token(embedded: LiveServer) -> str:
    """The desk's first admin (the file is shared by the module's tests)."""
    async with httpx.AsyncClient(base_url=embedded.url, timeout=10) as client:
        return await Factory(client).admin_token()


async def connected(url: str, token: str, transports: list[str] | None = None) -> Client:
    return await Client(url, token, transports).connect()


def test_server_says_it_is_embedded_and_migrates_its_file(embedded, sqlite_file):
    assert "helpline: embedded mode: SQLite file, in-process state, one worker" in (
        embedded.log_path.read_text()
    )
    assert sqlite_file.exists()


async def test_readiness_reports_the_sqlite_database(api):
    r = await api.get("/health/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "redis": "embedded"}}


async def test_register_session_and_chat_over_sockets(api, embedded, admin_token, make):
    session = await make.session(userName="Ada")
    sid = session["id"]
    agent = await connected(embedded.url, admin_token)
    customer = await connected(embedded.url, session["customerToken"], ["polling", "websocket"])
    try:
        assert (await agent.call("join_session", {"sessionId": sid, "after": 0}))["ok"]
        joined = await customer.call("join_session", sid)
        assert joined["ok"] and joined["customerOnline"]

        sent = await customer.call("send_message", {"sessionId": sid, "content": "hello?"})
        assert sent["ok"] and sent["message"]["seq"] == 1
        got = await agent.wait_for("new_message", lambda m: m["content"] == "hello?")
        assert got["senderType"] == "user"

        await customer.call("typing", {"sessionId": sid, "isTyping": True})
        typing = await agent.wait_for("user_typing", lambda e: e["isTyping"])
        assert typing == {"sessionId": sid, "userType": "user", "isTyping": True}

        reply = await agent.call("send_message", {"sessionId": sid, "content": "hi Ada"})
        await customer.wait_for("new_message", lambda m: m["content"] == "hi Ada")
        read = await customer.call("mark_read", {"messageId": reply["message"]["id"]})
        assert read["ok"] and read["message"]["isRead"]
        await agent.wait_for("message_read", lambda m: m["id"] == reply["message"]["id"])
    finally:
        await agent.close()
        await customer.close()

    r = await api.get(f"/api/chat/messages/{sid}", headers=bearer(admin_token))
    assert [m["content"] for m in r.json()] == ["hello?", "hi Ada"]


async def test_reconnect_replays_exactly_what_was_missed(embedded, admin_token, make):
    session = await make.session()
    sid = session["id"]
    for text in ("one", "two", "three"):
        await make.message(admin_token, sid, text)
    customer = await connected(embedded.url, session["customerToken"])
    try:
        joined = await customer.call("join_session", {"sessionId": sid, "after": 1})
    finally:
        await customer.close()
    assert [m["content"] for m in joined["messages"]] == ["two", "three"]


async def test_typing_stops_by_itself_after_its_ttl(embedded, admin_token, make):
    session = await make.session()
    sid = session["id"]
    agent = await connected(embedded.url, admin_token)
    customer = await connected(embedded.url, session["customerToken"])
    try:
        await agent.call("join_session", sid)
        await customer.call("typing", {"sessionId": sid, "isTyping": True})
        await agent.wait_for("user_typing", lambda e: e["isTyping"])
        # The customer goes silent without saying it stopped: the in-memory TTL ends it.
        stopped = await agent.wait_for("user_typing", lambda e: not e["isTyping"], within=15)
        assert stopped["userType"] == "user"
    finally:
        await agent.close()
        await customer.close()


async def test_concurrent_sends_to_one_session_take_distinct_positions(api, admin_token, make):
    session = await make.session()
    posts = [
        api.post(
            "/api/chat/messages",
            json={"sessionId": session["id"], "content": f"m{i}"},
            headers=bearer(admin_token),
        )
        for i in range(20)
    ]
    answers = await asyncio.gather(*posts)
    assert [r.status_code for r in answers] == [201] * 20
    assert sorted(r.json()["seq"] for r in answers) == list(range(1, 21))


async def test_racing_first_registrations_let_exactly_one_through(tmp_path):
    env = {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(tmp_path / "race.sqlite3")}
    live = LiveServer("embedded-race", env)
    live.start(timeout=60)
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            bodies = [
                {"email": f"first-{uuid.uuid4().hex[:6]}@example.com", "password": "x" * 12}
                for _ in range(6)
            ]
            answers = await asyncio.gather(
                *(client.post("/api/auth/register", json=b) for b in bodies)
            )
    finally:
        live.stop()
    assert sorted(r.status_code for r in answers) == [201] + [403] * 5


async def test_inbox_and_history_page_without_gaps_on_sqlite(api, admin_token, make):
    ids = {(await make.session())["id"] for _ in range(5)}
    seen: list[str] = []
    url: str | None = "/api/sessions?limit=2"
    while url:
        r = await api.get(url, headers=bearer(admin_token))
        assert r.status_code == 200
        seen += [s["id"] for s in r.json()]
        url = r.links.get("next", {}).get("url")
    assert ids <= set(seen) and len(seen) == len(set(seen))

    session = await make.session()
    for i in range(5):
        await make.message(admin_token, session["id"], f"m{i}")
    r = await api.get(
        f"/api/chat/messages/{session['id']}?limit=2&before=5", headers=bearer(admin_token)
    )
    assert [m["seq"] for m in r.json()] == [3, 4]


async def test_retried_send_is_stored_once_on_sqlite(api, make):
    session = await make.session()
    token = session["customerToken"]
    first = await make.message(token, session["id"], "once", clientMessageId="c-1")
    again = await api.post(
        "/api/chat/messages",
        json={"sessionId": session["id"], "content": "once", "clientMessageId": "c-1"},
        headers=bearer(token),
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


async def test_unread_count_and_read_flag_on_sqlite(api, admin_token, make):
    session = await make.session()
    message = await make.message(session["customerToken"], session["id"], "unread")
    r = await api.get(f"/api/sessions/{session['id']}", headers=bearer(admin_token))
    assert r.json()["unreadCount"] == 1
    r = await api.patch(f"/api/chat/messages/{message['id']}/read", headers=bearer(admin_token))
    assert r.status_code == 200 and r.json()["isRead"]
    r = await api.get(f"/api/sessions/{session['id']}", headers=bearer(admin_token))
    assert r.json()["unreadCount"] == 0


async def test_rate_limits_hold_without_redis(tmp_path):
    env = {
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "SQLITE_PATH": str(tmp_path / "limits.sqlite3"),
        "RATE_SESSION_CREATE": "2",
    }
    live = LiveServer("embedded-limits", env)
    live.start(timeout=60)
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
            codes = [
                (await client.post("/api/sessions", json={"userId": "u"})).status_code
                for _ in range(3)
            ]
            refused = await client.post("/api/sessions", json={"userId": "u"})
    finally:
        live.stop()
    assert codes == [201, 201, 429]
    assert int(refused.headers["retry-after"]) > 0


async def test_a_burst_of_socket_sends_queues_behind_one_writer(tmp_path):
    """Every send of a burst is stored and delivered: SQLite writes wait their turn instead
    of failing "database is locked" (half of 3,000 did at 600 msg/s before)."""
    env = {
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "SQLITE_PATH": str(tmp_path / "burst.sqlite3"),
        "SOCKET_EVENTS_PER_SECOND": "10000",
        "SOCKET_EVENT_BURST": "10000",
    }
    live = LiveServer("embedded-burst", env)
    live.log_path.unlink(missing_ok=True)
    live.start(timeout=60)
    customers, each = 8, 25
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            make = Factory(client)
            agent = await connected(live.url, await make.admin_token())
            sessions = [await make.session() for _ in range(customers)]
        sockets = [await connected(live.url, s["customerToken"]) for s in sessions]
        try:
            sends = [
                sock.sio.call(
                    "send_message",
                    {"sessionId": s["id"], "content": f"m{i}", "clientMessageId": f"c{i}"},
                    timeout=60,
                )
                for s, sock in zip(sessions, sockets, strict=True)
                for i in range(each)
            ]
            acks = await asyncio.gather(*sends)
            total = customers * each
            await agent.wait_for(
                "new_message", lambda _: len(agent.of("new_message")) >= total, within=60
            )
        finally:
            for sock in (*sockets, agent):
                await sock.close()
    finally:
        live.stop()
    assert [a["ok"] for a in acks] == [True] * total, [a for a in acks if not a["ok"]][:3]
    assert len({m["id"] for m in agent.of("new_message")}) == total
    log = live.log_path.read_text()
    assert "Traceback" not in log and "database is locked" not in log


async def test_claims_and_routing_hold_on_sqlite_with_one_writer_for_locks(tmp_path):
    env = {
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "SQLITE_PATH": str(tmp_path / "routing.sqlite3"),
        "AUTO_ASSIGN": "least_open",
        "MAX_OPEN_PER_AGENT": "2",
        "AVAILABILITY_GRACE": "2",
    }
    live = LiveServer("embedded-routing", env)
    live.start(timeout=60)
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as api:
            make = Factory(api)
            boss = await make.admin_token()
            await api.patch(
                "/api/agents/me/availability", json={"status": "busy"}, headers=bearer(boss)
            )
            first, second = await make.agent(), await make.agent()
            # Nobody available yet: a claim race on a waiting session, exactly one wins.
            contested = await make.session()
            answers = await asyncio.gather(
                *(
                    api.post(
                        f"/api/sessions/{contested['id']}/claim",
                        headers=bearer((first, second)[n % 2]["token"]),
                    )
                    for n in range(30)
                )
            )
            assert sorted(r.status_code for r in answers) == [200] + [409] * 29
            holder = next(r for r in answers if r.status_code == 200).json()["assigneeId"]
            watcher = await connected(live.url, boss)
            sockets = [await connected(live.url, a["token"]) for a in (first, second)]
            sessions = [await make.session() for _ in range(4)]
            # least_open under a cap of 2: one more for the other agent, then the queue.
            for s in sessions[:3]:
                await watcher.wait_for("session_assigned", matching(sessionId=s["id"]))
            r = await api.get("/api/sessions?assignee=unassigned", headers=bearer(boss))
            assert [s["id"] for s in r.json()] == [sessions[3]["id"]]
            # The holder leaves for good: after the grace theirs go back to the queue.
            leaving = sockets[0] if holder == first["admin"]["id"] else sockets[1]
            await leaving.close()
            await watcher.wait_for(
                "session_assigned",
                lambda e: e["reason"] == "unavailable" and e["sessionId"] == contested["id"],
                within=20,
            )
            for client in (watcher, *sockets):
                await client.close()
    finally:
        live.stop()
