"""Canned responses: CRUD, search by short code and text, placeholders per session."""

from __future__ import annotations

from tests.support import assert_error, bearer


async def create(api, token: str, **body) -> dict:
    r = await api.post("/api/canned-responses", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_placeholders_are_filled_for_the_session_and_the_agent(api, make):
    await make.admin_token()
    agent = await make.agent(full_name="Grace Hopper")
    session = await make.session(userName="Ada", userEmail="ada@example.com")
    await create(
        api,
        agent["token"],
        shortCode="/Hello",
        content="Hi {{customer.name}} ({{ customer.email }}), {{agent.name}} here.",
    )
    r = await api.get(
        f"/api/canned-responses?q=/hel&sessionId={session['id']}",
        headers=bearer(agent["token"]),
    )
    [item] = r.json()
    assert item["shortCode"] == "hello"
    assert item["rendered"] == "Hi Ada (ada@example.com), Grace Hopper here."


async def test_short_code_matches_come_before_text_matches(api, make):
    token = await make.admin_token()
    await create(api, token, shortCode="apology", content="We are sorry about the refund")
    await create(api, token, shortCode="refund", content="Your money is on its way")
    r = await api.get("/api/canned-responses?q=refund", headers=bearer(token))
    assert [c["shortCode"] for c in r.json()] == ["refund", "apology"]


async def test_an_unknown_placeholder_and_a_taken_code_are_refused(api, make):
    token = await make.admin_token()
    await create(api, token, shortCode="hi", content="Hi")
    r = await api.post(
        "/api/canned-responses",
        json={"shortCode": "typo", "content": "Hi {{custmer.name}}"},
        headers=bearer(token),
    )
    assert_error(r, 400, "validation_error")
    r = await api.post(
        "/api/canned-responses", json={"shortCode": "HI", "content": "x"}, headers=bearer(token)
    )
    assert_error(r, 409, "short_code_taken")


async def test_edit_and_delete(api, make):
    token = await make.admin_token()
    item = await create(api, token, shortCode="bye", content="Bye")
    r = await api.patch(
        f"/api/canned-responses/{item['id']}",
        json={"content": "Goodbye {{customer.name}}"},
        headers=bearer(token),
    )
    assert r.status_code == 200 and r.json()["content"] == "Goodbye {{customer.name}}"
    r = await api.delete(f"/api/canned-responses/{item['id']}", headers=bearer(token))
    assert r.status_code == 204
    r = await api.delete(f"/api/canned-responses/{item['id']}", headers=bearer(token))
    assert_error(r, 404, "not_found")
