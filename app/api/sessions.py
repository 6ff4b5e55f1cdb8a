"""REST adapters for chat sessions: /api/sessions*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app import contract, models
from app.api.common import (
    body_of,
    documented,
    json,
    next_link,
    presented_credentials,
    principal_of,
    services,
)
from app.client_ip import client_ip
from app.domain import assignment, sessions
from app.validation import path_uuid

bp = Blueprint("sessions", url_prefix="/api/sessions")


@bp.get("/")
@documented(
    "The inbox: sessions, newest activity first",
    who="staff",
    tag="sessions",
    ok=(200, list[models.InboxItem]),
    paged=True,
    errors=(400, 401, 403, 503),
    secured=True,
    description='A `Link: rel="next"` header names the next page while more remain. Each '
    "item says whether its customer is online now (`customerOnline`), so a reloaded inbox "
    "shows presence before any `customer_presence` event.",
    query=models.InboxQuery,
)
async def list_sessions(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    query = contract.read_query(models.InboxQuery, request.args)
    items, following = await sessions.list_for_inbox(
        services(request),
        principal,
        status=query.status,
        limit=query.limit,
        before=query.before,
        assignee=query.assignee,
        label=query.label,
    )
    headers = next_link(request, {"before": following}) if following else None
    return json(items, headers=headers)


@bp.post("/")
@documented(
    "Open a chat session (the widget)",
    who="anyone (the widget)",
    tag="sessions",
    body=models.NewSession,
    ok=(201, models.OpenedSession),
    also=(200,),
    errors=(400, 413, 429, 503),
    description="Answers the session plus `customerToken`, which may read and write this "
    "session only. Idempotent for a widget that retries: with the same `userId` and "
    "`clientSessionId` (a random string the widget keeps, "
    f"{models.MIN_CLIENT_SESSION_ID}–{models.MAX_CLIENT_SESSION_ID} characters), or with the "
    "session's own customer token as `Authorization: Bearer`, an active session is answered "
    "again (200, fresh token) instead of a new one (201).",
)
async def create_session(request: Request) -> HTTPResponse:
    opening = contract.read(models.NewSession, body_of(request))
    out, created = await sessions.create(
        services(request), opening, ip=client_ip(request), presented=presented_credentials(request)
    )
    return json(out, status=201 if created else 200)


@bp.get("/<session_id:str>")
@documented(
    "One session",
    who="staff, or that session's customer",
    tag="sessions",
    ok=(200, models.Session),
    errors=(401, 404, 503),
    secured=True,
)
async def get_session(request: Request, session_id: str) -> HTTPResponse:
    sid = path_uuid(session_id, "Session")
    return json(await sessions.get(services(request), principal_of(request), sid))


@bp.patch("/<session_id:str>/status")
@documented(
    "Open or close a session",
    who="staff",
    tag="sessions",
    body=models.StatusChange,
    ok=(200, models.Session),
    errors=(400, 401, 403, 404, 413, 503),
    secured=True,
    description="Broadcasts `session_updated` to staff and, as the customer's view, to the "
    "session's room.",
)
async def set_status(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    change = contract.read(models.StatusChange, body_of(request))
    return json(await sessions.set_status(services(request), principal, sid, change.status))


@bp.patch("/<session_id:str>/assignee")
@documented(
    "Give a session to a member, or back to the queue",
    who="staff",
    tag="sessions",
    body=models.AssigneeChange,
    ok=(200, models.Session),
    errors=(400, 401, 403, 404, 409, 413, 503),
    secured=True,
    description="With `expectedAssigneeId` it is a compare-and-set: a stale view "
    "answers 409 `assignment_conflict` (details: the current `assigneeId`) instead of "
    "overwriting a colleague's change. Emits `session_assigned` (reason `manual`) to staff "
    "and the session's room. Routing's cap does not apply to a hand-made assignment.",
)
async def set_assignee(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    change = contract.read(models.AssigneeChange, body_of(request))
    return json(await sessions.assign(services(request), principal, sid, change))


@bp.post("/<session_id:str>/claim")
@documented(
    "Take an unassigned session",
    who="staff",
    tag="sessions",
    ok=(200, models.Session),
    errors=(401, 403, 404, 409, 503),
    secured=True,
    description="Of many claiming at once exactly one gets 200; the others, and any "
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
    who="staff",
    tag="sessions",
    ok=(200, list[models.Assignment]),
    errors=(401, 403, 404, 503),
    secured=True,
    description="Oldest first; `reason` says why each change happened "
    "(`manual`, `claim`, `auto`, `unavailable`), `actorId` who made it (null: routing).",
)
async def assignments(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    return json(await assignment.history(services(request), principal, sid))
