"""Retries never duplicate: sessions per clientSessionId or token, messages per
clientMessageId; and a send is acknowledged only once it is committed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.sockets import Client
from tests.support import bearer


def widget_key() -> str:
    return uuid.uuid4().hex


async def test_retried_create_with_the_same_client_session_id_answers_the_same_session(api):
    body = {"userId": "visitor-1", "userName": "Ann", "clientSessionId": widget_key()}
    first = await api.post("/api/sessions", json=body)
    again = await api.post("/api/sessions", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    token = again.json()["customerToken"]
    seen = await api.get(f"/api/sessions/{first.json()['id']}", headers=bearer(token))
    assert seen.status_code == 200


async def test_create_carrying_the_sessions_own_token_answers_that_session(api, make):
    session = await make.session("visitor-2")
    again = await api.post(
        "/api/sessions", json={"userId": "visitor-2"}, headers=bearer(session["customerToken"])
    )
    assert again.status_code == 200
    assert again.json()["id"] == session["id"]


async def test_resumed_session_shows_its_history(api, make):
    key = widget_key()
    first = (await api.post("/api/sessions", json={"userId": "v3", "clientSessionId": key})).json()
    await make.message(first["customerToken"], first["id"], "before the retry")
    again = (await api.post("/api/sessions", json={"userId": "v3", "clientSessionId": key})).json()
    assert again["lastMessage"]["content"] == "before the retry"
    assert again["lastSeq"] == 1


async def test_knowing_a_user_id_never_yields_its_session(api, make):
    key = widget_key()
    victim = (
        await api.post("/api/sessions", json={"userId": "victim", "clientSessionId": key})
    ).json()
    other = await make.session("attacker")
    attempts = [
        {"json": {"userId": "victim"}},
        {"json": {"userId": "victim", "clientSessionId": widget_key()}},
        {"json": {"userId": "victim"}, "headers": bearer(other["customerToken"])},
        {"json": {"userId": "victim"}, "headers": bearer("not-a-token")},
    ]
    for attempt in attempts:
        r = await api.post("/api/sessions", **attempt)
        assert r.status_code == 201, r.text
        assert r.json()["id"] != victim["id"]
        assert r.json()["lastMessage"] is None


async def test_a_key_proves_a_session_only_for_its_own_user_id(api):
    key = widget_key()
    first = await api.post("/api/sessions", json={"userId": "owner", "clientSessionId": key})
    other = await api.post("/api/sessions", json={"userId": "someone", "clientSessionId": key})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_concurrent_creates_with_one_key_open_one_session(api):
    body = {"userId": "double-click", "clientSessionId": widget_key()}
    answers = await asyncio.gather(*(api.post("/api/sessions", json=body) for _ in range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in answers}) == 1


async def test_short_client_session_id_is_refused(api):
    r = await api.post("/api/sessions", json={"userId": "u", "clientSessionId": "123"})
    assert r.status_code == 400
    assert "clientSessionId" in r.json()["details"]["fields"]


async def test_closed_session_is_not_resumed_and_reopening_it_does_not_collide(api, make):
    admin = bearer(await make.admin_token())
    body = {"userId": "returning", "clientSessionId": widget_key()}
    old = (await api.post("/api/sessions", json=body)).json()
    closed = await api.patch(
        f"/api/sessions/{old['id']}/status", json={"status": "closed"}, headers=admin
    )
    assert closed.status_code == 200
    new = await api.post("/api/sessions", json=body)
    assert new.status_code == 201
    assert new.json()["id"] != old["id"]
    reopened = await api.patch(
        f"/api/sessions/{old['id']}/status", json={"status": "active"}, headers=admin
    )
    assert reopened.status_code == 200
    assert (await api.post("/api/sessions", json=body)).json()["id"] == new.json()["id"]


async def test_retried_socket_send_is_stored_once_and_broadcast_once(make, server, db):
    token = await make.admin_token()
    session = await make.session()
    admin = await Client(server.url, token).connect()
    customer = await Client(server.url, session["customerToken"]).connect()
    try:
        await admin.call("join_session", session["id"])
        send = {"sessionId": session["id"], "content": "once", "clientMessageId": "c-1"}
        first = await customer.call("send_message", send)
        again = await customer.call("send_message", send)
        assert (first["created"], again["created"]) == (True, False)
        assert again["message"] == first["message"]
        # The customer's next message travels behind any second copy of the first.
        later = await customer.call("send_message", {"sessionId": session["id"], "content": "x"})
        await admin.wait_for("new_message", lambda m: m["id"] == later["message"]["id"])
        assert [m["content"] for m in admin.of("new_message")] == ["once", "x"]
        stored = await db.fetchval(
            "SELECT count(*) FROM message WHERE session_id = $1", uuid.UUID(session["id"])
        )
        assert stored == 2
    finally:
        await admin.close()
        await customer.close()


@pytest.fixture
async def failing_commit(db: asyncpg.Connection) -> AsyncIterator[str]:
    """A deferred constraint trigger: messages with this content fail at COMMIT, after
    every statement of the send succeeded."""
    poison = f"fail-at-commit-{uuid.uuid4().hex[:6]}"
    await db.execute(
        f"""
        CREATE FUNCTION chaos_fail_commit() RETURNS trigger AS $$
        BEGIN
          IF NEW.content = '{poison}' THEN RAISE EXCEPTION 'commit refused'; END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE CONSTRAINT TRIGGER chaos_fail_commit AFTER INSERT ON message
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION chaos_fail_commit();
        """
    )
    try:
        yield poison
    finally:
        await db.execute(
            "DROP TRIGGER chaos_fail_commit ON message; DROP FUNCTION chaos_fail_commit();"
        )


async def test_send_whose_commit_fails_acks_not_ok_and_broadcasts_nothing(
    make, server, db, failing_commit
):
    token = await make.admin_token()
    session = await make.session()
    admin = await Client(server.url, token).connect()
    customer = await Client(server.url, session["customerToken"]).connect()
    try:
        await admin.call("join_session", session["id"])
        ack = await customer.call(
            "send_message", {"sessionId": session["id"], "content": failing_commit}
        )
        assert ack["ok"] is False
        assert ack["error"]["code"] == "internal_error"
        ok = await customer.call("send_message", {"sessionId": session["id"], "content": "next"})
        assert ok["message"]["seq"] == 1
        # "next" comes from the same customer after the failed send: anything the failed
        # one broadcast would have arrived before it.
        await admin.wait_for("new_message", lambda m: m["id"] == ok["message"]["id"])
        assert [m["content"] for m in admin.of("new_message")] == ["next"]
        stored = await db.fetch(
            "SELECT content FROM message WHERE session_id = $1", uuid.UUID(session["id"])
        )
        assert [r["content"] for r in stored] == ["next"]
    finally:
        await admin.close()
        await customer.close()


async def test_failed_commits_do_not_leak_pool_connections(api, make, failing_commit):
    """More failed commits than the pool holds (DB_POOL_MAX is 10): each must give its
    connection back, or the next send waits for one forever."""
    session = await make.session()
    headers = bearer(session["customerToken"])
    for _ in range(12):
        r = await api.post(
            "/api/chat/messages",
            json={"sessionId": session["id"], "content": failing_commit},
            headers=headers,
        )
        assert r.status_code == 500 and r.json()["code"] == "internal_error"
    r = await api.post(
        "/api/chat/messages", json={"sessionId": session["id"], "content": "after"}, headers=headers
    )
    assert r.status_code == 201 and r.json()["seq"] == 1
