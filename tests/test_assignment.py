"""Ownership: claiming, compare-and-set assignment, the inbox's `?assignee=`, the events,
and each member's availability switch. Routing is off on these servers (test_routing.py
covers it)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.sockets import Client
from tests.support import Factory, LiveServer, assert_error, bearer

CLAIMS = 100
CLAIMING_AGENTS = 20


async def _assignee(api: httpx.AsyncClient, token: str, session_id: str) -> Any:
    r = await api.get(f"/api/sessions/{session_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["assigneeId"]


async def test_of_100_concurrent_claims_over_two_workers_exactly_one_wins(
    make: Factory, server: LiveServer, server_b: LiveServer
):
    agents = [await make.agent(full_name=f"Agent {n}") for n in range(CLAIMING_AGENTS)]
    session = await make.session()
    boss = await make.admin_token()
    watchers = [await Client(s.url, boss).connect() for s in (server, server_b)]
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as a,
            httpx.AsyncClient(base_url=server_b.url, timeout=30) as b,
        ):

            async def claim(n: int) -> httpx.Response:
                api = (a, b)[n % 2]
                token = agents[n % CLAIMING_AGENTS]["token"]
                return await api.post(f"/api/sessions/{session['id']}/claim", headers=bearer(token))

            answers = await asyncio.gather(*(claim(n) for n in range(CLAIMS)))
            winners = [r for r in answers if r.status_code == 200]
            assert len(winners) == 1
            assert sorted(r.status_code for r in answers) == [200] + [409] * (CLAIMS - 1)
            for r in answers:
                if r.status_code == 409:
                    assert r.json()["code"] == "assignment_conflict"
            owner = winners[0].json()["assigneeId"]
            assert winners[0].json()["assignmentReason"] == "claim"
            # Control: one more change, heard after the claim's event by both watchers.
            r = await a.patch(
                f"/api/sessions/{session['id']}/assignee",
                json={"assigneeId": None, "expectedAssigneeId": owner},
                headers=bearer(boss),
            )
            assert r.status_code == 200, r.text
        for watcher in watchers:
            await watcher.wait_for("session_assigned", lambda e: e["assigneeId"] is None)
            heard = watcher.of("session_assigned")
            assert [(e["reason"], e["assigneeId"]) for e in heard] == [
                ("claim", owner),
                ("manual", None),
            ]
    finally:
        for watcher in watchers:
            await watcher.close()


async def test_a_stale_view_gets_assignment_conflict_instead_of_overwriting(
    api: httpx.AsyncClient, make: Factory
):
    first = await make.agent(full_name="First")
    second = await make.agent(full_name="Second")
    session = await make.session()
    path = f"/api/sessions/{session['id']}/assignee"
    r = await api.patch(
        path,
        json={"assigneeId": first["admin"]["id"], "expectedAssigneeId": None},
        headers=bearer(first["token"]),
    )
    assert r.status_code == 200, r.text
    # The second member still sees it unassigned, and hands it to themselves.
    r = await api.patch(
        path,
        json={"assigneeId": second["admin"]["id"], "expectedAssigneeId": None},
        headers=bearer(second["token"]),
    )
    body = assert_error(r, 409, "assignment_conflict")
    assert body["details"] == {"assigneeId": first["admin"]["id"]}
    assert await _assignee(api, second["token"], session["id"]) == first["admin"]["id"]
    # With the current owner as expected, the hand-over goes through.
    r = await api.patch(
        path,
        json={
            "assigneeId": second["admin"]["id"],
            "expectedAssigneeId": first["admin"]["id"],
        },
        headers=bearer(first["token"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["assigneeName"] == "Second"
    assert r.json()["assignmentReason"] == "manual"


async def test_claiming_a_session_with_an_owner_is_a_conflict_even_for_the_owner(
    api: httpx.AsyncClient, make: Factory
):
    agent = await make.agent()
    session = await make.session()
    path = f"/api/sessions/{session['id']}/claim"
    assert (await api.post(path, headers=bearer(agent["token"]))).status_code == 200
    assert_error(await api.post(path, headers=bearer(agent["token"])), 409, "assignment_conflict")


async def test_an_assignment_without_expected_owner_overrides(
    api: httpx.AsyncClient, make: Factory
):
    agent = await make.agent()
    boss = await make.admin_token()
    session = await make.session()
    await api.post(f"/api/sessions/{session['id']}/claim", headers=bearer(agent["token"]))
    r = await api.patch(
        f"/api/sessions/{session['id']}/assignee",
        json={"assigneeId": None},
        headers=bearer(boss),
    )
    assert r.status_code == 200
    assert r.json()["assigneeId"] is None and r.json()["assignedAt"] is None


async def test_only_an_active_member_can_be_given_a_session(api: httpx.AsyncClient, make: Factory):
    boss = await make.admin_token()
    leaving = await make.agent()
    await api.post(f"/api/agents/{leaving['admin']['id']}/deactivate", headers=bearer(boss))
    pending = await make.invite()
    session = await make.session()
    for assignee in (leaving["admin"]["id"], pending["agent"]["id"], str(uuid.uuid4())):
        r = await api.patch(
            f"/api/sessions/{session['id']}/assignee",
            json={"assigneeId": assignee},
            headers=bearer(boss),
        )
        assert_error(r, 400, "validation_error")
    r = await api.patch(f"/api/sessions/{session['id']}/assignee", json={}, headers=bearer(boss))
    assert_error(r, 400, "validation_error")
    r = await api.post(f"/api/sessions/{uuid.uuid4()}/claim", headers=bearer(boss))
    assert_error(r, 404, "not_found")


async def test_the_inbox_lists_mine_unassigned_all_or_one_members_with_status_and_cursor(
    api: httpx.AsyncClient, make: Factory
):
    me = await make.agent()
    other = await make.agent()
    mine = [await make.session() for _ in range(3)]
    theirs = await make.session()
    waiting = await make.session()
    for s in mine:
        await api.post(f"/api/sessions/{s['id']}/claim", headers=bearer(me["token"]))
    await api.post(f"/api/sessions/{theirs['id']}/claim", headers=bearer(other["token"]))
    await api.patch(
        f"/api/sessions/{mine[0]['id']}/status",
        json={"status": "closed"},
        headers=bearer(me["token"]),
    )

    async def ids(query: str) -> list[str]:
        r = await api.get(f"/api/sessions?{query}", headers=bearer(me["token"]))
        assert r.status_code == 200, r.text
        return [s["id"] for s in r.json()]

    assert set(await ids("assignee=me")) == {s["id"] for s in mine}
    assert await ids("assignee=me&status=active") == [mine[2]["id"], mine[1]["id"]]
    assert await ids("assignee=unassigned") == [waiting["id"]]
    assert await ids(f"assignee={other['admin']['id']}") == [theirs["id"]]
    assert len(await ids("assignee=all")) == len(await ids("")) == 5
    # The cursor pages within the filter.
    r = await api.get("/api/sessions?assignee=me&limit=2", headers=bearer(me["token"]))
    assert len(r.json()) == 2 and 'rel="next"' in r.headers["link"]
    cursor = r.json()[-1]["cursor"]
    assert await ids(f"assignee=me&limit=2&before={cursor}") == [mine[0]["id"]]
    r = await api.get("/api/sessions?assignee=someone", headers=bearer(me["token"]))
    assert_error(r, 400, "validation_error")


async def test_the_customer_hears_the_owners_name_and_never_an_email(
    api: httpx.AsyncClient, make: Factory, server: LiveServer
):
    agent = await make.agent(full_name="Dana")
    session = await make.session()
    customer = await Client(server.url, session["customerToken"]).connect()
    try:
        assert (await customer.call("join_session", session["id"]))["ok"]
        await api.post(f"/api/sessions/{session['id']}/claim", headers=bearer(agent["token"]))
        event = await customer.wait_for("session_assigned")
        assert event == {
            "sessionId": session["id"],
            "assigneeId": agent["admin"]["id"],
            "assigneeName": "Dana",
            "previousAssigneeId": None,
            "reason": "claim",
            "assignedAt": event["assignedAt"],
        }
        assert "@" not in str(event)
        r = await api.get(
            f"/api/sessions/{session['id']}", headers=bearer(session["customerToken"])
        )
        assert r.json()["assigneeName"] == "Dana" and "@" not in r.text
    finally:
        await customer.close()


async def test_every_change_of_owner_is_recorded_with_its_reason(
    api: httpx.AsyncClient, make: Factory
):
    agent = await make.agent()
    boss = await make.admin()
    session = await make.session()
    await api.post(f"/api/sessions/{session['id']}/claim", headers=bearer(agent["token"]))
    await api.patch(
        f"/api/sessions/{session['id']}/assignee",
        json={"assigneeId": boss["admin"]["id"]},
        headers=bearer(boss["token"]),
    )
    r = await api.get(f"/api/sessions/{session['id']}/assignments", headers=bearer(boss["token"]))
    assert [(h["reason"], h["previousAssigneeId"], h["assigneeId"]) for h in r.json()] == [
        ("claim", None, agent["admin"]["id"]),
        ("manual", agent["admin"]["id"], boss["admin"]["id"]),
    ]
    assert r.json()[1]["actorId"] == boss["admin"]["id"]


async def test_a_member_sets_their_availability_and_staff_hear_it(
    api: httpx.AsyncClient, make: Factory, server: LiveServer
):
    agent = await make.agent()
    boss = await make.admin_token()
    watcher = await Client(server.url, boss).connect()
    mine = await Client(server.url, agent["token"]).connect()
    try:
        r = await api.patch(
            "/api/agents/me/availability", json={"status": "busy"}, headers=bearer(agent["token"])
        )
        assert r.status_code == 200, r.text
        assert r.json()["availability"] == "busy" and r.json()["available"] is False
        event = await watcher.wait_for("agent_presence", lambda e: e["status"] == "busy")
        assert event == {"agentId": agent["admin"]["id"], "status": "busy", "available": False}
        await api.patch(
            "/api/agents/me/availability", json={"status": "online"}, headers=bearer(agent["token"])
        )
        event = await watcher.wait_for("agent_presence", lambda e: e["status"] == "online")
        assert event["available"] is True
        team = (await api.get("/api/agents", headers=bearer(boss))).json()
        row = next(m for m in team if m["id"] == agent["admin"]["id"])
        assert (row["availability"], row["available"]) == ("online", True)
        r = await api.patch(
            "/api/agents/me/availability", json={"status": "away"}, headers=bearer(agent["token"])
        )
        assert_error(r, 400, "validation_error")
    finally:
        await mine.close()
        await watcher.close()
