"""REST adapters for chat sessions: /api/sessions*."""

from __future__ import annotations

import uuid

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app.api.common import (
    ASSIGNMENT,
    SESSION,
    STR,
    UUID_STR,
    body_of,
    documented,
    json,
    next_link,
    obj,
    principal_of,
    services,
)
from app.client_ip import client_ip
from app.domain import assignment, sessions
from app.errors import BadRequest, Unauthorized
from app.validation import MAX_USER_ID, Reader, parse_uuid, path_uuid, query_int

# A widget's random key for its conversation: long enough that it cannot be guessed.
MIN_CLIENT_SESSION_ID = 16
MAX_CLIENT_SESSION_ID = 100

bp = Blueprint("sessions", url_prefix="/api/sessions")

INBOX_ITEM = {
    **SESSION,
    "properties": {
        **SESSION["properties"],
        "customerOnline": {
            "type": "boolean",
            "description": "The customer has a socket open now (false while Redis is down)",
        },
    },
}


@bp.get("/")
@documented(
    "The inbox: sessions, newest activity first",
    tag="sessions",
    ok=(200, {"type": "array", "items": INBOX_ITEM}),
    errors=(400, 401, 403, 503),
    secured=True,
    description='A `Link: rel="next"` header names the next page while more remain. Each '
    "item says whether its customer is online now (`customerOnline`), so a reloaded inbox "
    "shows presence before any `customer_presence` event.",
    query={
        "status": ({"type": "string", "enum": list(sessions.STATUSES)}, "Only this status"),
        "limit": ({"type": "integer", "minimum": 1, "maximum": 100}, "Page size, default 50"),
        "before": ({"type": "string"}, "An item's `cursor`: the page after it"),
        "assignee": (
            {"type": "string"},
            "`me`, `unassigned`, `all` (the default) or a member's id",
        ),
    },
)
async def list_sessions(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    status = request.args.get("status")
    if status is not None and status not in sessions.STATUSES:
        raise BadRequest(
            "status must be active or closed",
            details={"fields": {"status": "must be one of active, closed"}},
        )
    limit = query_int(request.args, "limit", default=50, low=1, high=100)
    assert limit is not None
    items, following = await sessions.list_for_inbox(
        services(request),
        principal,
        status=status,
        limit=limit,
        before=request.args.get("before"),
        assignee=_assignee_filter(request.args.get("assignee")),
    )
    headers = next_link(request, {"before": following}) if following else None
    return json(items, headers=headers)


def _assignee_filter(value: str | None) -> str | uuid.UUID:
    if value is None or value in sessions.ASSIGNEE_FILTERS:
        return value or "all"
    member = parse_uuid(value)
    if member is None:
        raise BadRequest(
            "assignee must be me, unassigned, all or a member's id",
            details={"fields": {"assignee": "must be me, unassigned, all or a UUID"}},
        )
    return member


@bp.post("/")
@documented(
    "Open a chat session (the widget)",
    tag="sessions",
    body=obj(
        ["userId"],
        userId={"type": "string", "maxLength": MAX_USER_ID},
        userName={"type": "string", "maxLength": 200},
        userEmail={"type": "string", "format": "email"},
        clientSessionId={
            "type": "string",
            "minLength": MIN_CLIENT_SESSION_ID,
            "maxLength": MAX_CLIENT_SESSION_ID,
        },
    ),
    ok=(201, {**SESSION, "properties": {**SESSION["properties"], "customerToken": STR}}),
    errors=(400, 413, 429, 503),
    description="Answers the session plus `customerToken`, which may read and write this "
    "session only. Idempotent for a widget that retries: with the same `userId` and "
    "`clientSessionId` (a random string the widget keeps, 16–100 characters), or with the "
    "session's own customer token as `Authorization: Bearer`, an active session is answered "
    "again (200, fresh token) instead of a new one (201).",
)
async def create_session(request: Request) -> HTTPResponse:
    r = Reader(body_of(request))
    user_id = r.string("userId", required=True, max_len=MAX_USER_ID)
    user_name = r.string("userName")
    user_email = r.email("userEmail")
    client_session_id = r.string(
        "clientSessionId", min_len=MIN_CLIENT_SESSION_ID, max_len=MAX_CLIENT_SESSION_ID
    )
    r.done()
    assert user_id is not None
    try:
        principal = principal_of(request)
    except Unauthorized:
        # Anyone may open a session: a stale token only fails to prove an old one.
        principal = None
    out, created = await sessions.create(
        services(request),
        user_id=user_id,
        user_name=user_name,
        user_email=user_email,
        ip=client_ip(request),
        client_session_id=client_session_id,
        principal=principal,
    )
    return json(out, status=201 if created else 200)


@bp.get("/<session_id:str>")
@documented("One session", tag="sessions", ok=(200, SESSION), errors=(401, 404, 503), secured=True)
async def get_session(request: Request, session_id: str) -> HTTPResponse:
    sid = path_uuid(session_id, "Session")
    return json(await sessions.get(services(request), principal_of(request), sid))


@bp.patch("/<session_id:str>/status")
@documented(
    "Open or close a session",
    tag="sessions",
    body=obj(["status"], status={"type": "string", "enum": list(sessions.STATUSES)}),
    ok=(200, SESSION),
    errors=(400, 401, 403, 404, 413, 503),
    secured=True,
)
async def set_status(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    r = Reader(body_of(request))
    status = r.choice("status", sessions.STATUSES, required=True)
    r.done()
    assert status is not None
    return json(await sessions.set_status(services(request), principal, sid, status))


NULLABLE_UUID = {**UUID_STR, "nullable": True}


@bp.patch("/<session_id:str>/assignee")
@documented(
    "Give a session to a member, or back to the queue",
    tag="sessions",
    body=obj(
        ["assigneeId"],
        assigneeId={**NULLABLE_UUID, "description": "A member's id, or null: unassigned"},
        expectedAssigneeId={
            **NULLABLE_UUID,
            "description": "Change only if this (null: nobody) is still the owner",
        },
    ),
    ok=(200, SESSION),
    errors=(400, 401, 403, 404, 409, 413, 503),
    secured=True,
    description="Staff. With `expectedAssigneeId` it is a compare-and-set: a stale view "
    "answers 409 `assignment_conflict` (details: the current `assigneeId`) instead of "
    "overwriting a colleague's change. Emits `session_assigned` (reason `manual`) to staff "
    "and the session's room. Routing's cap does not apply to a hand-made assignment.",
)
async def set_assignee(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    data = body_of(request)
    r = Reader(data)
    if "assigneeId" not in r.data:
        r.errors["assigneeId"] = "is required (null unassigns)"
    assignee = r.uuid("assigneeId")
    expected: object = assignment.ANY
    if "expectedAssigneeId" in r.data:
        expected = r.uuid("expectedAssigneeId")
    r.done()
    return json(await sessions.assign(services(request), principal, sid, assignee, expected))


@bp.post("/<session_id:str>/claim")
@documented(
    "Take an unassigned session",
    tag="sessions",
    ok=(200, SESSION),
    errors=(401, 403, 404, 409, 503),
    secured=True,
    description="Staff. Of many claiming at once exactly one gets 200; the others, and any "
    "claim of a session that has an owner, get 409 `assignment_conflict`. Emits "
    "`session_assigned` (reason `claim`).",
)
async def claim(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    return json(await sessions.claim(services(request), principal, sid))


@bp.get("/<session_id:str>/assignments")
@documented(
    "The session's owners over time",
    tag="sessions",
    ok=(200, {"type": "array", "items": ASSIGNMENT}),
    errors=(401, 403, 404, 503),
    secured=True,
    description="Staff. Oldest first; `reason` says why each change happened "
    "(`manual`, `claim`, `auto`, `unavailable`), `actorId` who made it (null: routing).",
)
async def assignments(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    return json(await assignment.history(services(request), principal, sid))
