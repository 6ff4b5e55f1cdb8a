"""REST: posting messages (role from the token, idempotent retries), history paging, read flags."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import ISO_MS_Z, Factory, assert_error, bearer

MESSAGE_FIELDS = {
    "id",
    "sessionId",
    "seq",
    "senderType",
    "senderId",
    "senderName",
    "content",
    "isRead",
    "clientMessageId",
    "createdAt",
}


async def post(api: httpx.AsyncClient, token: str, **body: Any) -> httpx.Response:
    return await api.post("/api/chat/messages", json=body, headers=bearer(token))


async def test_a_customer_message_is_stored_as_the_user_with_exact_fields(api, make, db):
    session = await make.session(user_id="visitor-7")
    r = await post(api, session["customerToken"], sessionId=session["id"], content=" hi there ")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == MESSAGE_FIELDS
    assert body["sessionId"] == session["id"]
    assert body["seq"] == 1
    assert body["senderType"] == "user"
    assert body["senderId"] == "visitor-7"
    assert body["senderName"] is None
    assert body["content"] == "hi there"
    assert body["isRead"] is False
    assert body["clientMessageId"] is None
    assert re.match(ISO_MS_Z, body["createdAt"])
    row = await db.fetchrow(
        "SELECT sender_type, content FROM message WHERE id = $1", uuid.UUID(body["id"])
    )
    assert dict(row) == {"sender_type": "user", "content": "hi there"}


async def test_an_admin_message_is_stored_as_that_admin(api, make: Factory):
    created = await make.admin()
    session = await make.session()
    r = await post(
        api, created["token"], sessionId=session["id"], content="hello", senderType="admin"
    )
    assert r.status_code == 201
    assert r.json()["senderType"] == "admin"
    assert r.json()["senderId"] == created["admin"]["id"]
    assert r.json()["senderName"] == created["admin"]["fullName"]


async def test_a_customer_can_never_store_a_message_as_admin(api, make: Factory, db):
    session = await make.session()
    r = await post(
        api,
        session["customerToken"],
        sessionId=session["id"],
        content="I am staff",
        senderType="admin",
    )
    assert_error(r, 403, "sender_mismatch")
    r = await post(api, session["customerToken"], sessionId=session["id"], content="plain")
    assert r.json()["senderType"] == "user"
    assert await db.fetchval("SELECT count(*) FROM message WHERE sender_type = 'admin'") == 0
    assert await db.fetchval("SELECT count(*) FROM message") == 1


async def test_an_admin_cannot_post_as_the_customer(api, make: Factory, db):
    token = await make.admin_token()
    session = await make.session()
    r = await post(api, token, sessionId=session["id"], content="as user", senderType="user")
    assert_error(r, 403, "sender_mismatch")
    assert await db.fetchval("SELECT count(*) FROM message") == 0


async def test_a_retried_client_message_id_stores_one_row_and_answers_the_original(
    api, make: Factory, db
):
    session = await make.session()
    send = {"sessionId": session["id"], "content": "once", "clientMessageId": "c-1"}
    first = await post(api, session["customerToken"], **send)
    again = await post(api, session["customerToken"], **{**send, "content": "changed"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert first.json()["clientMessageId"] == "c-1"
    assert await db.fetchval("SELECT count(*) FROM message") == 1
    assert await db.fetchval("SELECT last_seq FROM chat_session") == 1


async def test_concurrent_retries_of_one_client_message_id_store_one_row(api, make: Factory, db):
    session = await make.session()
    send = {"sessionId": session["id"], "content": "racing", "clientMessageId": "c-race"}
    answers = await asyncio.gather(
        *(post(api, session["customerToken"], **send) for _ in range(10))
    )
    assert sorted(r.status_code for r in answers) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM message") == 1


async def test_the_same_client_message_id_in_two_sessions_is_two_messages(api, make: Factory, db):
    token = await make.admin_token()
    one, two = await make.session(), await make.session()
    for session in (one, two):
        r = await post(api, token, sessionId=session["id"], content="x", clientMessageId="same")
        assert r.status_code == 201
    assert await db.fetchval("SELECT count(*) FROM message") == 2


async def test_a_client_message_id_is_scoped_to_its_sender(api, make: Factory, db):
    """A customer who guesses the agent's next id must not swallow the agent's reply."""
    session = await make.session()
    token = await make.admin_token()
    other_agent = (await make.admin())["token"]
    guess = {"sessionId": session["id"], "clientMessageId": "agent-next"}
    squat = await post(api, session["customerToken"], content="squatted", **guess)
    assert squat.status_code == 201
    reply = await post(api, token, content="the real reply", **guess)
    assert reply.status_code == 201, reply.text
    assert reply.json()["content"] == "the real reply"
    assert reply.json()["senderType"] == "admin"
    colleague = await post(api, other_agent, content="from a colleague", **guess)
    assert colleague.status_code == 201 and colleague.json()["content"] == "from a colleague"
    # Each sender's own retry is still recognised as a retry.
    again = await post(api, token, content="retried", **guess)
    assert again.status_code == 200 and again.json()["id"] == reply.json()["id"]
    assert await db.fetchval("SELECT count(*) FROM message") == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sessionId": None, "content": "x"}, "sessionId"),
        ({"sessionId": "nope", "content": "x"}, "sessionId"),
        ({"sessionId": 5, "content": "x"}, "sessionId"),
        ({"content": None}, "content"),
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": 12}, "content"),
        ({"content": "x" * 5001}, "content"),
        ({"content": "x", "senderType": "robot"}, "senderType"),
        ({"content": "x", "clientMessageId": 3}, "clientMessageId"),
        ({"content": "x", "clientMessageId": "c" * 101}, "clientMessageId"),
    ],
)
async def test_posting_rejects_bad_fields(api, make: Factory, db, body, field):
    session = await make.session()
    r = await post(api, session["customerToken"], **{"sessionId": session["id"], **body})
    error = assert_error(r, 400, "validation_error")
    assert field in error["details"]["fields"]
    assert await db.fetchval("SELECT count(*) FROM message") == 0


async def test_posting_to_an_unknown_session_is_not_found(api, make: Factory):
    token = await make.admin_token()
    assert_error(await post(api, token, sessionId=str(uuid.uuid4()), content="x"), 404, "not_found")


# History.


@pytest.fixture
async def hundred(make: Factory, db: asyncpg.Connection) -> dict[str, Any]:
    """A session with 100 messages from both sides, in batches that share a timestamp."""
    token = await make.admin_token()
    session = await make.session()
    for i in range(100):
        who = session["customerToken"] if i % 3 else token
        await make.message(who, session["id"], f"m{i + 1}")
    # Ten messages at a time share one created_at: order must not depend on it.
    await db.execute(
        "UPDATE message SET created_at ="
        " date_trunc('day', now()) + ((seq - 1) / 10) * interval '1 s'"
    )
    return {"session": session, "token": token}


async def walk(
    api: httpx.AsyncClient, path: str, token: str, params: dict[str, Any]
) -> list[list[int]]:
    """Follows `Link: rel=next` to the end; answers each page's seqs."""
    pages: list[list[int]] = []
    url: str | None = path
    query: dict[str, Any] | None = params
    while url is not None:
        r = await api.get(url, params=query, headers=bearer(token))
        assert r.status_code == 200, r.text
        pages.append([m["seq"] for m in r.json()])
        link = r.headers.get("link")
        url = re.match(r"<([^>]+)>; rel=\"next\"", link).group(1) if link else None  # type: ignore[union-attr]
        query = None
    return pages


async def test_forward_paging_by_seven_walks_a_hundred_messages_with_no_gap_or_repeat(api, hundred):
    sid = hundred["session"]["id"]
    pages = await walk(api, f"/api/chat/messages/{sid}", hundred["token"], {"after": 0, "limit": 7})
    assert len(pages) == 15
    assert all(len(p) == 7 for p in pages[:-1]) and len(pages[-1]) == 2
    assert [seq for page in pages for seq in page] == list(range(1, 101))


async def test_backward_paging_by_seven_walks_a_hundred_messages_with_no_gap_or_repeat(
    api, hundred
):
    sid = hundred["session"]["id"]
    pages = await walk(
        api, f"/api/chat/messages/{sid}", hundred["session"]["customerToken"], {"limit": 7}
    )
    assert len(pages) == 15
    assert pages[0] == list(range(94, 101))
    assert all(page == sorted(page) for page in pages)
    assert sorted(seq for page in pages for seq in page) == list(range(1, 101))
    assert len({seq for page in pages for seq in page}) == 100


async def test_history_answers_oldest_first_with_exact_fields(api, make: Factory):
    session = await make.session()
    sent = [await make.message(session["customerToken"], session["id"], f"m{i}") for i in range(3)]
    r = await api.get(
        f"/api/chat/messages/{session['id']}", headers=bearer(session["customerToken"])
    )
    assert r.status_code == 200
    assert r.json() == sent
    assert "link" not in r.headers


async def test_history_after_answers_exactly_what_came_after(api, hundred):
    sid = hundred["session"]["id"]
    r = await api.get(
        f"/api/chat/messages/{sid}", params={"after": 95}, headers=bearer(hundred["token"])
    )
    assert [m["seq"] for m in r.json()] == [96, 97, 98, 99, 100]
    assert [m["content"] for m in r.json()] == ["m96", "m97", "m98", "m99", "m100"]
    r = await api.get(
        f"/api/chat/messages/{sid}", params={"after": 100}, headers=bearer(hundred["token"])
    )
    assert r.json() == []


async def test_history_of_an_empty_session_is_an_empty_list(api, make: Factory):
    session = await make.session()
    r = await api.get(
        f"/api/chat/messages/{session['id']}", headers=bearer(session["customerToken"])
    )
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"after": "-1"}, "after"),
        ({"after": "1.5"}, "after"),
        ({"before": "x"}, "before"),
        ({"before": str(2**40)}, "before"),
    ],
)
async def test_history_rejects_bad_query_parameters(api, make: Factory, params, field):
    session = await make.session()
    r = await api.get(
        f"/api/chat/messages/{session['id']}",
        params=params,
        headers=bearer(session["customerToken"]),
    )
    error = assert_error(r, 400, "validation_error")
    assert field in error["details"]["fields"]


async def test_history_refuses_before_and_after_together(api, make: Factory):
    session = await make.session()
    r = await api.get(
        f"/api/chat/messages/{session['id']}",
        params={"before": 5, "after": 1},
        headers=bearer(session["customerToken"]),
    )
    assert_error(r, 400, "validation_error")


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_history_of_an_unknown_or_malformed_session_is_not_found(api, make, bad_id):
    token = await make.admin_token()
    assert_error(
        await api.get(f"/api/chat/messages/{bad_id}", headers=bearer(token)), 404, "not_found"
    )


# Read flags.


async def test_an_admin_marks_a_customer_message_read(api, make: Factory, db):
    token = await make.admin_token()
    session = await make.session()
    message = await make.message(session["customerToken"], session["id"])
    r = await api.patch(f"/api/chat/messages/{message['id']}/read", headers=bearer(token))
    assert r.status_code == 200
    assert r.json() == {**message, "isRead": True}
    assert await db.fetchval("SELECT is_read FROM message WHERE id = $1", uuid.UUID(message["id"]))
    again = await api.patch(f"/api/chat/messages/{message['id']}/read", headers=bearer(token))
    assert again.status_code == 200 and again.json()["isRead"] is True


async def test_a_customer_marks_an_admin_message_read(api, make: Factory):
    token = await make.admin_token()
    session = await make.session()
    message = await make.message(token, session["id"])
    r = await api.patch(
        f"/api/chat/messages/{message['id']}/read", headers=bearer(session["customerToken"])
    )
    assert r.status_code == 200 and r.json()["isRead"] is True


async def test_nobody_marks_their_own_message_read(api, make: Factory, db):
    token = await make.admin_token()
    session = await make.session()
    mine = await make.message(session["customerToken"], session["id"])
    ours = await make.message(token, session["id"])
    for who, message in ((session["customerToken"], mine), (token, ours)):
        r = await api.patch(f"/api/chat/messages/{message['id']}/read", headers=bearer(who))
        assert_error(r, 403, "own_message")
    assert await db.fetchval("SELECT count(*) FROM message WHERE is_read") == 0


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_marking_an_unknown_or_malformed_message_is_not_found(api, make, bad_id):
    token = await make.admin_token()
    r = await api.patch(f"/api/chat/messages/{bad_id}/read", headers=bearer(token))
    assert_error(r, 404, "not_found")
