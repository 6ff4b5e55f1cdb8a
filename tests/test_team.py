"""The team over REST: invitations, roles, deactivation, sign-in sessions, passwords."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import httpx

from tests.support import PASSWORD, Factory, assert_error, bearer, sign_in_of


async def accept(api: httpx.AsyncClient, token: str, password: str = PASSWORD) -> httpx.Response:
    return await api.post("/api/auth/accept-invite", json={"token": token, "password": password})


# Invitations


async def test_an_invited_member_joins_with_the_link_and_is_an_agent(api, make: Factory):
    invited = await make.invite("agent", full_name="Grace")
    assert invited["agent"]["invited"] is True and invited["agent"]["role"] == "agent"
    link = invited["invitation"]
    assert link["url"].endswith(f"#invite={link['token']}")
    r = await accept(api, link["token"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["admin"]["role"] == "agent" and body["admin"]["fullName"] == "Grace"
    me = await api.get("/api/auth/me", headers=bearer(body["token"]))
    assert me.json()["id"] == invited["agent"]["id"]


async def test_an_invitation_is_stored_only_as_its_hash(make: Factory, db: asyncpg.Connection):
    link = (await make.invite())["invitation"]
    stored = await db.fetchval(
        "SELECT token_hash FROM invitation WHERE id = $1", uuid.UUID(link["id"])
    )
    assert stored != link["token"] and len(stored) == 64


async def test_an_invitation_cannot_be_used_twice(api, make: Factory):
    token = (await make.invite())["invitation"]["token"]
    assert (await accept(api, token)).status_code == 200
    assert_error(await accept(api, token, "another password 1"), 409, "invitation_used")


async def test_an_expired_invitation_answers_gone(api, make: Factory, db: asyncpg.Connection):
    link = (await make.invite())["invitation"]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await db.execute(
        "UPDATE invitation SET expires_at = $1 WHERE id = $2", past, uuid.UUID(link["id"])
    )
    assert_error(await accept(api, link["token"]), 410, "invitation_expired")


async def test_a_revoked_invitation_is_unknown(api, make: Factory):
    link = (await make.invite())["invitation"]
    r = await api.delete(f"/api/invitations/{link['id']}", headers=bearer(await make.admin_token()))
    assert r.status_code == 204
    assert_error(await accept(api, link["token"]), 404, "invitation_not_found")


async def test_a_reissued_invitation_stops_the_old_link(api, make: Factory):
    invited = await make.invite()
    r = await api.post(
        f"/api/agents/{invited['agent']['id']}/invitation", headers=bearer(await make.admin_token())
    )
    assert r.status_code == 201
    assert_error(await accept(api, invited["invitation"]["token"]), 404, "invitation_not_found")
    assert (await accept(api, r.json()["token"])).status_code == 200


async def test_inviting_an_email_already_on_the_team_is_a_conflict(api, make: Factory):
    member = await make.agent()
    r = await api.post(
        "/api/agents",
        json={"email": member["admin"]["email"].upper(), "role": "agent"},
        headers=bearer(await make.admin_token()),
    )
    assert_error(r, 409, "email_taken")


async def test_of_racing_accepts_of_one_link_exactly_one_wins(api, make: Factory, db):
    token = (await make.invite())["invitation"]["token"]
    answers = await asyncio.gather(*(accept(api, token, f"password number {n}") for n in range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 7, [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert_error(r, 409, "invitation_used")
    assert await db.fetchval("SELECT count(*) FROM sign_in") == 2  # the admin's and the winner's


async def test_an_invited_member_cannot_log_in_before_accepting(api, make: Factory):
    invited = await make.invite()
    r = await api.post(
        "/api/auth/login", json={"email": invited["agent"]["email"], "password": "guessing at it"}
    )
    assert_error(r, 401, "invalid_credentials")


# Roles


async def test_an_agent_cannot_manage_the_team_or_register_admins(api, make: Factory):
    agent = await make.agent()
    headers = bearer(agent["token"])
    r = await api.post(
        "/api/agents", json={"email": "x@example.com", "role": "agent"}, headers=headers
    )
    assert_error(r, 403, "admin_role_required")
    r = await api.post(
        "/api/auth/register",
        json={"email": "y@example.com", "password": PASSWORD},
        headers=headers,
    )
    assert_error(r, 403, "admin_role_required")


async def test_an_agent_sees_the_team_and_chats_as_admin_with_their_name(api, make: Factory):
    agent = await make.agent(full_name="Linus")
    session = await make.session()
    r = await api.get("/api/agents", headers=bearer(agent["token"]))
    assert r.status_code == 200 and len(r.json()) == 2
    message = await make.message(agent["token"], session["id"], "hi from an agent")
    assert message["senderType"] == "admin"
    assert message["senderId"] == agent["admin"]["id"] and message["senderName"] == "Linus"


async def test_a_promoted_agent_may_invite_at_once(api, make: Factory):
    agent = await make.agent()
    r = await api.patch(
        f"/api/agents/{agent['admin']['id']}",
        json={"role": "admin"},
        headers=bearer(await make.admin_token()),
    )
    assert r.status_code == 200 and r.json()["role"] == "admin"
    r = await api.post(
        "/api/agents",
        json={"email": "new@example.com", "role": "agent"},
        headers=bearer(agent["token"]),
    )
    assert r.status_code == 201, r.text


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(api, make: Factory):
    first = await make.admin()
    headers = bearer(first["token"])
    me = first["admin"]["id"]
    assert_error(
        await api.patch(f"/api/agents/{me}", json={"role": "agent"}, headers=headers),
        409,
        "last_admin",
    )
    assert_error(await api.post(f"/api/agents/{me}/deactivate", headers=headers), 409, "last_admin")
    second = await make.agent(role="admin")
    r = await api.post(f"/api/agents/{me}/deactivate", headers=bearer(second["token"]))
    assert r.status_code == 200 and r.json()["active"] is False


async def test_two_admins_demoting_each_other_leave_one_admin(api, make: Factory, db):
    first = await make.admin()
    second = await make.agent(role="admin")
    a, b = await asyncio.gather(
        api.patch(
            f"/api/agents/{second['admin']['id']}",
            json={"role": "agent"},
            headers=bearer(first["token"]),
        ),
        api.patch(
            f"/api/agents/{first['admin']['id']}",
            json={"role": "agent"},
            headers=bearer(second["token"]),
        ),
    )
    assert sorted([a.status_code, b.status_code]) in ([200, 401], [200, 403], [200, 409]), (
        a.text,
        b.text,
    )
    assert await db.fetchval("SELECT count(*) FROM admin WHERE role = 'admin'") == 1


# Deactivation


async def test_a_deactivated_agent_cannot_log_in_and_their_tokens_stop(api, make: Factory):
    agent = await make.agent()
    r = await api.post(
        f"/api/agents/{agent['admin']['id']}/deactivate", headers=bearer(await make.admin_token())
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert_error(
        await api.get("/api/auth/me", headers=bearer(agent["token"])), 401, "token_revoked"
    )
    r = await api.post(
        "/api/auth/login", json={"email": agent["admin"]["email"], "password": PASSWORD}
    )
    assert_error(r, 403, "account_deactivated")


async def test_a_deactivated_agents_messages_stay_attributed_to_them(api, make: Factory):
    agent = await make.agent(full_name="Ada")
    session = await make.session()
    await make.message(agent["token"], session["id"], "before leaving")
    admin = await make.admin_token()
    await api.post(f"/api/agents/{agent['admin']['id']}/deactivate", headers=bearer(admin))
    history = (await api.get(f"/api/chat/messages/{session['id']}", headers=bearer(admin))).json()
    assert [(m["senderId"], m["senderName"]) for m in history] == [(agent["admin"]["id"], "Ada")]


async def test_a_reactivated_agent_logs_in_again_but_old_tokens_stay_ended(api, make: Factory):
    agent = await make.agent()
    admin = bearer(await make.admin_token())
    await api.post(f"/api/agents/{agent['admin']['id']}/deactivate", headers=admin)
    r = await api.post(f"/api/agents/{agent['admin']['id']}/reactivate", headers=admin)
    assert r.status_code == 200 and r.json()["active"] is True
    assert_error(
        await api.get("/api/auth/me", headers=bearer(agent["token"])), 401, "token_revoked"
    )
    fresh = await make.login(agent["admin"]["email"])
    assert (await api.get("/api/auth/me", headers=bearer(fresh["token"]))).status_code == 200


async def test_the_team_list_shows_role_activity_and_invitations(api, make: Factory):
    await make.admin(full_name="Boss")
    await make.invite(full_name="Newbie")
    team = (await api.get("/api/agents", headers=bearer(await make.admin_token()))).json()
    assert [(m["fullName"], m["role"], m["active"], m["invited"]) for m in team] == [
        ("Boss", "admin", True, False),
        ("Newbie", "agent", True, True),
    ]
    assert team[0]["lastSeenAt"] is not None and team[1]["lastSeenAt"] is None


# Sign-in sessions


async def test_logout_ends_only_this_sign_in(api, make: Factory):
    first = await make.admin()
    other = await make.login(first["admin"]["email"])
    assert (await api.post("/api/auth/logout", headers=bearer(first["token"]))).status_code == 204
    assert_error(
        await api.get("/api/auth/me", headers=bearer(first["token"])), 401, "token_revoked"
    )
    assert (await api.get("/api/auth/me", headers=bearer(other["token"]))).status_code == 200


async def test_logout_everywhere_ends_every_sign_in(api, make: Factory):
    first = await make.admin()
    other = await make.login(first["admin"]["email"])
    assert (
        await api.post("/api/auth/logout-all", headers=bearer(other["token"]))
    ).status_code == 204
    for token in (first["token"], other["token"]):
        assert_error(await api.get("/api/auth/me", headers=bearer(token)), 401, "token_revoked")


async def test_sign_ins_are_listed_and_revoked_one_by_one(api, make: Factory):
    first = await make.admin()
    other = await api.post(
        "/api/auth/login",
        json={"email": first["admin"]["email"], "password": PASSWORD},
        headers={"User-Agent": "Phone browser"},
    )
    listed = (await api.get("/api/auth/sessions", headers=bearer(first["token"]))).json()
    assert len(listed) == 2
    assert [s["device"] for s in listed if not s["current"]] == ["Phone browser"]
    phone = sign_in_of(other.json()["token"])
    r = await api.delete(f"/api/auth/sessions/{phone}", headers=bearer(first["token"]))
    assert r.status_code == 204
    assert_error(
        await api.get("/api/auth/me", headers=bearer(other.json()["token"])), 401, "token_revoked"
    )


async def test_another_accounts_sign_in_answers_as_unknown(api, make: Factory):
    first = await make.admin()
    agent = await make.agent()
    r = await api.delete(
        f"/api/auth/sessions/{sign_in_of(agent['token'])}", headers=bearer(first["token"])
    )
    assert_error(r, 404, "not_found")
    assert (await api.get("/api/auth/me", headers=bearer(agent["token"]))).status_code == 200


async def test_a_password_change_ends_the_other_sign_ins(api, make: Factory):
    first = await make.admin()
    other = await make.login(first["admin"]["email"])
    r = await api.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new password"},
        headers=bearer(first["token"]),
    )
    assert r.status_code == 204, r.text
    assert (await api.get("/api/auth/me", headers=bearer(first["token"]))).status_code == 200
    assert_error(
        await api.get("/api/auth/me", headers=bearer(other["token"])), 401, "token_revoked"
    )
    r = await api.post(
        "/api/auth/login",
        json={"email": first["admin"]["email"], "password": "a brand new password"},
    )
    assert r.status_code == 200


async def test_a_password_change_needs_the_current_password(api, make: Factory):
    first = await make.admin()
    r = await api.post(
        "/api/auth/password",
        json={"currentPassword": "not it at all", "newPassword": "a brand new password"},
        headers=bearer(first["token"]),
    )
    assert_error(r, 403, "wrong_password")


async def test_a_reset_link_sets_the_password_once_and_ends_old_sign_ins(api, make: Factory):
    agent = await make.agent()
    r = await api.post(
        f"/api/agents/{agent['admin']['id']}/reset-link", headers=bearer(await make.admin_token())
    )
    assert r.status_code == 201
    link = r.json()
    assert "#reset=" in link["url"]
    body = {"token": link["token"], "password": "reset password 1"}
    r = await api.post("/api/auth/reset-password", json=body)
    assert r.status_code == 200, r.text
    assert_error(
        await api.get("/api/auth/me", headers=bearer(agent["token"])), 401, "token_revoked"
    )
    assert (await api.get("/api/auth/me", headers=bearer(r.json()["token"]))).status_code == 200
    assert_error(await api.post("/api/auth/reset-password", json=body), 409, "invitation_used")
    # A reset link is no invitation, and the other way round.
    assert_error(await accept(api, link["token"]), 404, "invitation_not_found")


async def test_an_admin_signs_a_member_out_everywhere(api, make: Factory):
    agent = await make.agent()
    r = await api.post(
        f"/api/agents/{agent['admin']['id']}/logout-all", headers=bearer(await make.admin_token())
    )
    assert r.status_code == 204
    assert_error(
        await api.get("/api/auth/me", headers=bearer(agent["token"])), 401, "token_revoked"
    )
    assert (await make.login(agent["admin"]["email"]))["token"]
