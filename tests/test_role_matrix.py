"""The role matrix, against a live server: every route and every socket event × {admin,
agent, deactivated agent, revoked sign-in, customer, none}, with the exact status or ack.

Routes come from the app itself (its OpenAPI document, checked against its router) and
events from its Socket.IO handlers, so a new route or event without a row here fails.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import socketio

from tests.sockets import Client
from tests.support import PASSWORD, Factory, LiveServer, bearer, sign_in_of

IDENTITIES = ("admin", "agent", "deactivated", "revoked", "customer", "none")

# What each kind of route answers each identity: a success status, or (status, code).
Outcome = int | tuple[int, str]
DENIED_NO_TOKEN: Outcome = (401, "auth_required")
DENIED_ENDED: Outcome = (401, "token_revoked")


def staff(ok: int) -> dict[str, Outcome]:
    return {
        "admin": ok,
        "agent": ok,
        "deactivated": DENIED_ENDED,
        "revoked": DENIED_ENDED,
        "customer": (403, "admin_only"),
        "none": DENIED_NO_TOKEN,
    }


def team_admin(ok: int) -> dict[str, Outcome]:
    return {**staff(ok), "agent": (403, "admin_role_required")}


def session_scoped(ok: int) -> dict[str, Outcome]:
    return {**staff(ok), "customer": ok}


def anyone(ok: Outcome) -> dict[str, Outcome]:
    """Routes that ignore the Authorization header (a stale token must not lock anyone out
    of logging in, accepting a link, or opening a chat)."""
    return dict.fromkeys(IDENTITIES, ok)


@dataclass
class World:
    """Fresh per route: an admin desk, a member to act on, a session with one message from
    each side, a pending invitation, and a token for every identity."""

    tokens: dict[str, str | None]
    admin_email: str
    session_id: str
    customer_message: str
    staff_message: str
    member_id: str
    pending_id: str
    invitation_id: str
    # A canned response per identity (a delete by one must not turn another's into 404).
    canned: dict[str, str] = dataclasses.field(default_factory=dict)


async def build_world(api: httpx.AsyncClient, make: Factory) -> World:
    boss = await make.admin()
    agent = await make.agent()
    deactivated = await make.agent()
    revoked = await make.agent()
    member = await make.agent()
    pending = await make.invite()
    other_pending = await make.invite()
    admin_headers = bearer(boss["token"])
    r = await api.post(
        f"/api/agents/{deactivated['admin']['id']}/deactivate", headers=admin_headers
    )
    assert r.status_code == 200
    assert (await api.post("/api/auth/logout", headers=bearer(revoked["token"]))).status_code == 204
    session = await make.session()
    from_customer = await make.message(session["customerToken"], session["id"])
    from_staff = await make.message(boss["token"], session["id"])
    fresh_admin = await make.login(boss["admin"]["email"])
    canned = {}
    for identity in IDENTITIES:
        r = await api.post(
            "/api/canned-responses",
            json={"shortCode": f"m-{uuid.uuid4().hex[:8]}", "content": "Hi {{customer.name}}"},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        canned[identity] = r.json()["id"]
    return World(
        tokens={
            "admin": fresh_admin["token"],
            "agent": agent["token"],
            "deactivated": deactivated["token"],
            "revoked": revoked["token"],
            "customer": session["customerToken"],
            "none": None,
        },
        admin_email=boss["admin"]["email"],
        session_id=session["id"],
        customer_message=from_customer["id"],
        staff_message=from_staff["id"],
        member_id=member["admin"]["id"],
        pending_id=pending["agent"]["id"],
        invitation_id=other_pending["invitation"]["id"],
        canned=canned,
    )


def unique_email() -> str:
    return f"new-{uuid.uuid4().hex[:10]}@example.com"


Body = Callable[[World], Any]


@dataclass
class Row:
    outcomes: dict[str, Outcome]
    body: Body | None = None
    # Which member an {agent_id} names: a joined one, or one still invited.
    member: str = "joined"
    # A query string the route needs to do its work (search's `q`).
    query: str = ""


# Served but deliberately not in the OpenAPI document (operations, not the API).
OPERATIONAL = {("get", "/metrics")}

MATRIX: dict[tuple[str, str], Row] = {
    # Loopback clients without METRICS_TOKEN (the tests' case); tokens play no part.
    ("get", "/metrics"): Row(anyone(200)),
    ("get", "/health"): Row(anyone(200)),
    ("get", "/health/ready"): Row(anyone(200)),
    ("post", "/api/auth/login"): Row(
        anyone(200), lambda w: {"email": w.admin_email, "password": PASSWORD}
    ),
    ("post", "/api/auth/register"): Row(
        {
            **team_admin(201),
            "customer": (403, "registration_closed"),
            "none": (403, "registration_closed"),
        },
        lambda w: {"email": unique_email(), "password": PASSWORD},
    ),
    ("post", "/api/auth/accept-invite"): Row(
        anyone((404, "invitation_not_found")), lambda w: {"token": "x" * 43, "password": PASSWORD}
    ),
    ("post", "/api/auth/reset-password"): Row(
        anyone((404, "invitation_not_found")), lambda w: {"token": "x" * 43, "password": PASSWORD}
    ),
    ("get", "/api/auth/me"): Row(staff(200)),
    ("get", "/api/auth/sessions"): Row(staff(200)),
    ("delete", "/api/auth/sessions/{sign_in_id}"): Row(staff(204)),
    ("post", "/api/auth/logout"): Row(staff(204)),
    ("post", "/api/auth/logout-all"): Row(staff(204)),
    ("post", "/api/auth/password"): Row(
        staff(204), lambda w: {"currentPassword": PASSWORD, "newPassword": PASSWORD}
    ),
    ("get", "/api/agents"): Row(staff(200)),
    ("post", "/api/agents"): Row(
        team_admin(201), lambda w: {"email": unique_email(), "role": "agent"}
    ),
    ("patch", "/api/agents/{agent_id}"): Row(team_admin(200), lambda w: {"fullName": "Renamed"}),
    ("post", "/api/agents/{agent_id}/deactivate"): Row(team_admin(200)),
    ("post", "/api/agents/{agent_id}/reactivate"): Row(team_admin(200)),
    ("post", "/api/agents/{agent_id}/logout-all"): Row(team_admin(204)),
    ("post", "/api/agents/{agent_id}/reset-link"): Row(team_admin(201)),
    ("post", "/api/agents/{agent_id}/invitation"): Row(team_admin(201), member="invited"),
    ("delete", "/api/invitations/{invitation_id}"): Row(team_admin(204)),
    ("get", "/api/sessions"): Row(staff(200)),
    ("post", "/api/sessions"): Row(anyone(201), lambda w: {"userId": f"u-{uuid.uuid4().hex}"}),
    ("get", "/api/sessions/{session_id}"): Row(session_scoped(200)),
    # Each identity in turn: the staff member's change (to nobody, from nobody) succeeds.
    ("patch", "/api/sessions/{session_id}/assignee"): Row(
        staff(200), lambda w: {"assigneeId": None}
    ),
    # The first staff identity claims; the next finds it taken.
    ("post", "/api/sessions/{session_id}/claim"): Row(
        {**staff(200), "agent": (409, "assignment_conflict")}
    ),
    ("get", "/api/sessions/{session_id}/assignments"): Row(staff(200)),
    ("patch", "/api/agents/me/availability"): Row(staff(200), lambda w: {"status": "busy"}),
    ("patch", "/api/sessions/{session_id}/status"): Row(staff(200), lambda w: {"status": "active"}),
    ("get", "/api/chat/messages/{session_id}"): Row(session_scoped(200)),
    ("post", "/api/chat/messages"): Row(
        session_scoped(201), lambda w: {"sessionId": w.session_id, "content": "matrix"}
    ),
    ("patch", "/api/chat/messages/{message_id}/read"): Row(session_scoped(200)),
    ("post", "/api/sessions/{session_id}/notes"): Row(
        staff(201), lambda w: {"content": "matrix note"}
    ),
    ("get", "/api/sessions/{session_id}/notes"): Row(staff(200)),
    ("put", "/api/sessions/{session_id}/labels"): Row(staff(200), lambda w: {"labels": ["vip"]}),
    ("get", "/api/labels"): Row(staff(200)),
    ("get", "/api/canned-responses"): Row(staff(200), query="?q=m-"),
    ("post", "/api/canned-responses"): Row(
        staff(201), lambda w: {"shortCode": f"n-{uuid.uuid4().hex[:8]}", "content": "Hello"}
    ),
    ("patch", "/api/canned-responses/{canned_id}"): Row(staff(200), lambda w: {"title": "T"}),
    ("delete", "/api/canned-responses/{canned_id}"): Row(staff(204)),
    ("get", "/api/search/messages"): Row(staff(200), query="?q=matrix"),
    ("get", "/api/search/sessions"): Row(staff(200), query="?q=user"),
}


def concrete(path: str, world: World, row: Row, identity: str) -> str:
    token = world.tokens[identity]
    customer = identity == "customer"
    return (
        path.replace("{session_id}", world.session_id)
        # The other side's message: the one each may mark read.
        .replace("{message_id}", world.staff_message if customer else world.customer_message)
        .replace("{agent_id}", world.pending_id if row.member == "invited" else world.member_id)
        .replace("{invitation_id}", world.invitation_id)
        .replace("{canned_id}", world.canned.get(identity, ""))
        .replace(
            "{sign_in_id}",
            sign_in_of(token) if token and not customer else str(uuid.uuid4()),
        )
        + row.query
    )


@pytest.fixture(scope="module")
def app_surface() -> tuple[set[tuple[str, str]], set[str]]:
    """The app's own REST routes (minus the demo, docs and Engine.IO endpoint) and
    Socket.IO client events, read from an app built in this process (never started)."""
    from sanic import Sanic

    from app.config import Settings
    from app.main import create_app

    Sanic.test_mode = True
    app = create_app(Settings(sqlite_path=":memory:", jwt_secret="s" * 40))
    routes = set()
    for route in app.router.routes:
        path = "/" + route.path.strip("/")
        if path.startswith(("/socket.io", "/docs", "/demo")):
            continue
        for method in route.methods:
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    events = set(app.ctx.sio.handlers["/"]) - {"connect", "disconnect"}
    Sanic._app_registry.pop(app.name, None)
    return routes, events


def _openapi_form(path: str) -> str:
    """Sanic's `api/agents/<agent_id:str>` as OpenAPI's `/api/agents/{agent_id}`."""
    parts = []
    for part in path.strip("/").split("/"):
        if part.startswith("<") and part.endswith(">"):
            part = "{" + part[1:-1].split(":")[0] + "}"
        parts.append(part)
    return "/" + "/".join(parts)


async def test_the_matrix_covers_every_route_the_app_has(api, app_surface):
    spec = (await api.get("/docs/openapi.json")).json()
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    served = {(m, _openapi_form(p)) for m, p in app_surface[0]}
    assert served == documented | OPERATIONAL
    assert set(MATRIX) == documented | OPERATIONAL


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
async def test_route_answers_each_identity_as_its_role_allows(
    api: httpx.AsyncClient, make: Factory, method: str, path: str
):
    world = await build_world(api, make)
    row = MATRIX[(method, path)]
    seen: dict[str, Outcome] = {}
    for identity in IDENTITIES:
        token = world.tokens[identity]
        r = await api.request(
            method.upper(),
            concrete(path, world, row, identity),
            json=row.body(world) if row.body else None,
            headers=bearer(token) if token else {},
        )
        if r.status_code < 400:
            seen[identity] = r.status_code
        else:
            body = r.json()
            seen[identity] = (
                r.status_code,
                str(body.get("code")) if isinstance(body, dict) else "",
            )
    assert seen == row.outcomes


# Socket events: each identity connects (or is refused, with a code) and calls each event.

CONNECT_REFUSED = {
    "deactivated": "token_revoked",
    "revoked": "token_revoked",
    "none": "auth_required",
}


def event_payloads(world: World, identity: str) -> dict[str, Any]:
    mine = world.staff_message if identity == "customer" else world.customer_message
    return {
        "join_session": {"sessionId": world.session_id},
        "leave_session": world.session_id,
        "send_message": {"sessionId": world.session_id, "content": "matrix"},
        "typing": {"sessionId": world.session_id, "isTyping": True},
        "mark_read": {"messageId": mine},
    }


async def test_the_matrix_covers_every_socket_event_the_app_has(app_surface):
    world = World({}, "", "s", "c", "m", "a", "p", "i")
    assert set(event_payloads(world, "admin")) == app_surface[1]


@pytest.mark.parametrize("identity", IDENTITIES)
async def test_socket_events_answer_each_identity_as_its_role_allows(
    api: httpx.AsyncClient, make: Factory, server: LiveServer, identity: str
):
    world = await build_world(api, make)
    token = world.tokens[identity]
    client = Client(server.url, token)
    refusals: list[Any] = []
    client.sio.on("connect_error", lambda data: refusals.append(data))
    if identity in CONNECT_REFUSED:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        assert refusals[0]["data"]["code"] == CONNECT_REFUSED[identity]
        return
    await client.connect()
    try:
        for event, payload in event_payloads(world, identity).items():
            ack = await client.call(event, payload)
            assert ack["ok"] is True, (identity, event, ack)
    finally:
        await client.close()
