"""REST: opening sessions (the widget), the admin inbox, one session, status changes."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import asyncpg
import jwt
import pytest

from tests.support import ISO_MS_Z, JWT_SECRET, Factory, assert_error, bearer

SESSION_FIELDS = {
    "id",
    "userId",
    "userName",
    "userEmail",
    "status",
    "lastSeq",
    "createdAt",
    "updatedAt",
    "lastActivityAt",
    "lastMessage",
    "unreadCount",
    "assigneeId",
    "assigneeName",
    "assignedAt",
    "assignmentReason",
}


async def test_opening_a_session_answers_it_with_a_customer_token_for_it_alone(api, db):
    r = await api.post(
        "/api/sessions",
        json={"userId": "visitor-1", "userName": "Ada", "userEmail": "Ada@Example.com"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == SESSION_FIELDS | {"customerToken"}
    assert body["userId"] == "visitor-1"
    assert body["userName"] == "Ada"
    assert body["userEmail"] == "ada@example.com"
    assert body["status"] == "active"
    assert body["lastSeq"] == 0
    assert body["lastMessage"] is None
    assert body["unreadCount"] == 0
    for field in ("createdAt", "updatedAt", "lastActivityAt"):
        assert re.match(ISO_MS_Z, body[field])
    claims = jwt.decode(
        body["customerToken"], JWT_SECRET, algorithms=["HS256"], audience="helpline:customer"
    )
    assert claims["sub"] == body["id"]
    row = await db.fetchrow(
        "SELECT user_id, status FROM chat_session WHERE id = $1", uuid.UUID(body["id"])
    )
    assert dict(row) == {"user_id": "visitor-1", "status": "active"}


async def test_opening_a_session_needs_only_a_user_id(api):
    r = await api.post("/api/sessions", json={"userId": "visitor-2"})
    assert r.status_code == 201
    assert r.json()["userName"] is None and r.json()["userEmail"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "userId"),
        ({"userId": ""}, "userId"),
        ({"userId": "   "}, "userId"),
        ({"userId": 7}, "userId"),
        ({"userId": "x" * 201}, "userId"),
        ({"userId": "u", "userEmail": "nope"}, "userEmail"),
        ({"userId": "u", "userName": ["x"]}, "userName"),
    ],
)
async def test_opening_a_session_rejects_bad_fields(api, body, field):
    error = assert_error(await api.post("/api/sessions", json=body), 400, "validation_error")
    assert field in error["details"]["fields"]


async def test_get_session_answers_its_customer_what_staff_see_but_the_labels(api, make: Factory):
    token = await make.admin_token()
    session = await make.session(userName="Ada")
    await make.message(session["customerToken"], session["id"], "hello")
    as_admin = await api.get(f"/api/sessions/{session['id']}", headers=bearer(token))
    as_customer = await api.get(
        f"/api/sessions/{session['id']}", headers=bearer(session["customerToken"])
    )
    assert as_admin.status_code == as_customer.status_code == 200
    assert as_admin.json() == {**as_customer.json(), "labels": []}
    body = as_customer.json()
    assert set(body) == SESSION_FIELDS
    assert body["lastSeq"] == 1
    assert body["lastMessage"]["content"] == "hello"
    assert body["unreadCount"] == 1


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid", "1", "%00"])
async def test_get_session_with_an_unknown_or_malformed_id_is_not_found(api, make, bad_id):
    token = await make.admin_token()
    assert_error(await api.get(f"/api/sessions/{bad_id}", headers=bearer(token)), 404, "not_found")


async def test_inbox_lists_newest_activity_first_with_last_message_and_unread_count(
    api, make: Factory
):
    token = await make.admin_token()
    quiet = await make.session(userName="quiet")
    busy = await make.session(userName="busy")
    answered = await make.session(userName="answered")
    for text in ("one", "two", "three"):
        await make.message(busy["customerToken"], busy["id"], text)
    await make.message(answered["customerToken"], answered["id"], "question")
    await make.message(token, answered["id"], "answer")
    await make.message(busy["customerToken"], busy["id"], "four")

    r = await api.get("/api/sessions", headers=bearer(token))
    assert r.status_code == 200
    items = r.json()
    assert [s["userName"] for s in items] == ["busy", "answered", "quiet"]
    by_name = {s["userName"]: s for s in items}
    assert by_name["busy"]["unreadCount"] == 4
    assert by_name["busy"]["lastMessage"]["content"] == "four"
    assert by_name["answered"]["unreadCount"] == 1
    assert by_name["answered"]["lastMessage"]["senderType"] == "admin"
    assert by_name["quiet"]["lastMessage"] is None and by_name["quiet"]["unreadCount"] == 0
    assert all(set(s) == SESSION_FIELDS | {"cursor", "customerOnline", "labels"} for s in items)
    assert "link" not in r.headers
    assert quiet["id"] == by_name["quiet"]["id"]


async def test_reading_a_message_lowers_the_inbox_unread_count(api, make: Factory):
    token = await make.admin_token()
    session = await make.session()
    first = await make.message(session["customerToken"], session["id"], "a")
    await make.message(session["customerToken"], session["id"], "b")
    r = await api.patch(f"/api/chat/messages/{first['id']}/read", headers=bearer(token))
    assert r.status_code == 200
    [item] = (await api.get("/api/sessions", headers=bearer(token))).json()
    assert item["unreadCount"] == 1


async def test_inbox_filters_by_status(api, make: Factory):
    token = await make.admin_token()
    open_one = await make.session()
    closed_one = await make.session()
    await api.patch(
        f"/api/sessions/{closed_one['id']}/status", json={"status": "closed"}, headers=bearer(token)
    )
    for status, expected in (("active", open_one), ("closed", closed_one)):
        r = await api.get("/api/sessions", params={"status": status}, headers=bearer(token))
        assert [s["id"] for s in r.json()] == [expected["id"]]
        assert r.json()[0]["status"] == status


async def test_inbox_pages_walk_every_session_once_even_with_equal_activity_times(
    api, make: Factory, db: asyncpg.Connection
):
    token = await make.admin_token()
    ids = {(await make.session())["id"] for _ in range(23)}
    same = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await db.execute(
        "UPDATE chat_session SET last_activity_at = $1 WHERE id = ANY($2::uuid[])",
        same,
        [uuid.UUID(i) for i in list(ids)[:10]],
    )
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    pages = 0
    while True:
        r = await api.get("/api/sessions", params=params, headers=bearer(token))
        assert r.status_code == 200
        seen += [s["id"] for s in r.json()]
        pages += 1
        if "link" not in r.headers:
            break
        params = {"limit": 5, "before": r.json()[-1]["cursor"]}
        assert f"before={params['before']}" in r.headers["link"]
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == ids


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "archived"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "garbage"}, "before"),
        ({"before": "12_not-a-uuid"}, "before"),
    ],
)
async def test_inbox_rejects_bad_query_parameters(api, make, params, field):
    token = await make.admin_token()
    r = await api.get("/api/sessions", params=params, headers=bearer(token))
    error = assert_error(r, 400, "validation_error")
    assert field in error["details"]["fields"]


async def test_an_admin_closes_and_reopens_a_session(api, make: Factory, db):
    token = await make.admin_token()
    session = await make.session()
    r = await api.patch(
        f"/api/sessions/{session['id']}/status", json={"status": "closed"}, headers=bearer(token)
    )
    assert r.status_code == 200
    assert set(r.json()) == SESSION_FIELDS | {"labels"}
    assert r.json()["status"] == "closed"
    assert r.json()["updatedAt"] >= session["updatedAt"]
    assert (
        await db.fetchval("SELECT status FROM chat_session WHERE id = $1", uuid.UUID(session["id"]))
        == "closed"
    )
    r = await api.patch(
        f"/api/sessions/{session['id']}/status", json={"status": "active"}, headers=bearer(token)
    )
    assert r.json()["status"] == "active"


async def test_a_closed_session_takes_no_messages(api, make: Factory, db):
    token = await make.admin_token()
    session = await make.session()
    await api.patch(
        f"/api/sessions/{session['id']}/status", json={"status": "closed"}, headers=bearer(token)
    )
    for who in (token, session["customerToken"]):
        r = await api.post(
            "/api/chat/messages",
            json={"sessionId": session["id"], "content": "anyone?"},
            headers=bearer(who),
        )
        assert_error(r, 409, "session_closed")
    assert await db.fetchval("SELECT count(*) FROM message") == 0
    assert await db.fetchval("SELECT last_seq FROM chat_session") == 0


@pytest.mark.parametrize(
    "body", [{}, {"status": "archived"}, {"status": 1}, {"status": None}, {"state": "closed"}]
)
async def test_status_change_rejects_bad_bodies(api, make, body):
    token = await make.admin_token()
    session = await make.session()
    r = await api.patch(f"/api/sessions/{session['id']}/status", json=body, headers=bearer(token))
    error = assert_error(r, 400, "validation_error")
    assert "status" in error["details"]["fields"]


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_status_change_of_an_unknown_session_is_not_found(api, make, bad_id):
    token = await make.admin_token()
    r = await api.patch(
        f"/api/sessions/{bad_id}/status", json={"status": "closed"}, headers=bearer(token)
    )
    assert_error(r, 404, "not_found")


async def test_query_values_cannot_inject_entries_into_the_link_header(api, make):
    token = await make.admin_token()
    for _ in range(2):
        await make.session()
    evil = '>; rel="next", <https://evil.example/x'
    r = await api.get("/api/sessions", params={"limit": 1, "q": evil}, headers=bearer(token))
    assert r.status_code == 200
    link = r.headers["link"]
    # One entry: the value is percent-encoded inside the one <…>.
    assert link.count("<") == 1 and link.count(">") == 1 and link.count("rel=") == 1
    assert link.startswith("</api/sessions?") and link.endswith('>; rel="next"')
