"""Private notes: staff write them, staff read them on their own cursor, customers never."""

from __future__ import annotations

import contextlib

from tests.sockets import Client
from tests.support import assert_error, bearer


async def add_note(api, token: str, session_id: str, content: str) -> dict:
    r = await api.post(
        f"/api/sessions/{session_id}/notes", json={"content": content}, headers=bearer(token)
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_notes_take_their_own_positions_and_leave_message_seq_gap_free(api, make):
    token = await make.admin_token()
    session = await make.session()
    first = await make.message(session["customerToken"], session["id"], "one")
    n1 = await add_note(api, token, session["id"], "customer sounds upset")
    second = await make.message(token, session["id"], "two")
    n2 = await add_note(api, token, session["id"], "refund approved")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert (n1["noteSeq"], n2["noteSeq"]) == (1, 2)
    assert "seq" not in n1


async def test_staff_page_notes_by_their_cursor(api, make):
    token = await make.admin_token()
    session = await make.session()
    for i in range(3):
        await add_note(api, token, session["id"], f"note {i}")
    r = await api.get(f"/api/sessions/{session['id']}/notes?after=1&limit=1", headers=bearer(token))
    assert r.status_code == 200
    assert [n["content"] for n in r.json()] == ["note 1"]
    assert 'rel="next"' in r.headers["link"] and "after=2" in r.headers["link"]


async def test_an_agent_writes_notes_under_their_own_name(api, make):
    await make.admin_token()
    agent = await make.agent(full_name="Grace")
    session = await make.session()
    note = await add_note(api, agent["token"], session["id"], "mine")
    assert note["authorId"] == agent["admin"]["id"] and note["authorName"] == "Grace"


async def test_a_customer_can_neither_write_nor_read_notes(api, make):
    session = await make.session()
    customer = bearer(session["customerToken"])
    r = await api.post(
        f"/api/sessions/{session['id']}/notes", json={"content": "x"}, headers=customer
    )
    assert_error(r, 403, "admin_only")
    r = await api.get(f"/api/sessions/{session['id']}/notes", headers=customer)
    assert_error(r, 403, "admin_only")


async def test_a_note_on_an_unknown_session_is_404(api, make):
    token = await make.admin_token()
    r = await api.post(
        "/api/sessions/00000000-0000-4000-8000-000000000000/notes",
        json={"content": "x"},
        headers=bearer(token),
    )
    assert_error(r, 404, "not_found")


async def test_new_note_reaches_staff_sockets_and_not_the_sessions_room(api, make, server):
    token = await make.admin_token()
    session = await make.session()
    staff = Client(server.url, token)
    customer = Client(server.url, session["customerToken"])
    await staff.connect()
    await customer.connect()
    try:
        assert (await customer.call("join_session", session["id"]))["ok"]
        assert (await staff.call("join_session", session["id"]))["ok"]
        note = await add_note(api, token, session["id"], "private remark")
        assert await staff.wait_for("new_note", lambda n: n["id"] == note["id"]) == note
        # A message sent after the note reaches the customer: anything before it has too.
        sent = await make.message(token, session["id"], "after the note")
        await customer.wait_for("new_message", lambda m: m["id"] == sent["id"])
        assert not customer.of("new_note")
    finally:
        with contextlib.suppress(Exception):
            await staff.close()
            await customer.close()


async def test_a_staff_join_with_notes_after_carries_the_notes_after_it(api, make, server):
    token = await make.admin_token()
    session = await make.session()
    await add_note(api, token, session["id"], "first")
    await add_note(api, token, session["id"], "second")
    staff = Client(server.url, token)
    await staff.connect()
    try:
        ack = await staff.call("join_session", {"sessionId": session["id"], "notesAfter": 1})
        assert ack["ok"] and [n["content"] for n in ack["notes"]] == ["second"]
        assert ack["notesHasMore"] is False
        plain = await staff.call("join_session", {"sessionId": session["id"]})
        assert "notes" not in plain
    finally:
        await staff.close()
