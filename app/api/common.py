"""What every REST adapter needs: the caller, the body, the client address, the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import orjson
from sanic import Request
from sanic.response import HTTPResponse
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.types import Schema

from app.auth import Principal
from app.context import Services
from app.errors import BadRequest, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])


def services(request: Request) -> Services:
    ctx: Services = request.app.ctx.services
    return ctx


async def authenticate(request: Request) -> None:
    """Request middleware: who is asking, checked once per request (signature, expiry,
    and for staff that the account is active and the sign-in live, app/accounts.py).
    A bad token is kept as its error and raised by `principal_of` when a route asks, so
    routes that tolerate one (opening a session) still can."""
    header = request.headers.get("authorization")
    if not header:
        request.ctx.auth = None
        return
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
        ctx = services(request)
        request.ctx.auth = await ctx.accounts.check(ctx.tokens.check(token.strip()))
    except Unauthorized as exc:
        request.ctx.auth = exc


def principal_of(request: Request) -> Principal | None:
    """The token's principal; None without an Authorization header, 401 for a bad one."""
    found = getattr(request.ctx, "auth", None)
    if isinstance(found, Unauthorized):
        raise found
    return found if isinstance(found, Principal) else None


def body_of(request: Request) -> Any:
    if not request.body:
        raise BadRequest("Request body must be a JSON object", code="invalid_body")
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise BadRequest("Request body is not valid JSON", code="invalid_json") from None


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def next_link(request: Request, params: dict[str, Any]) -> dict[str, str]:
    """RFC 8288 `Link: <…>; rel="next"` carrying the current query with the new cursor."""
    query = {k: v for k, v in request.args.items() if k not in ("before", "after")}
    merged = {**{k: v[0] for k, v in query.items()}, **{k: str(v) for k, v in params.items()}}
    # Every value percent-encoded: a query value must not close the <…> or add a link.
    qs = urlencode(merged, quote_via=quote)
    return {"Link": f'<{quote(request.path)}?{qs}>; rel="next"'}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "Human-readable message"},
        "code": {"type": "string", "description": "Machine-readable code"},
        "details": {"type": "object"},
    },
}

ERROR_TEXT = {
    400: "Invalid input (`validation_error`, `invalid_json`, `invalid_body`)",
    401: "Missing, invalid, expired or revoked token (`token_revoked`: signed out or deactivated)",
    403: "Wrong role",
    404: "Unknown id (also for a malformed one, or a session this token may not see)",
    409: "Conflict",
    410: "Gone: the link expired",
    413: "Body too large",
    429: "Rate limited; see Retry-After",
    503: "A backing service is down",
}


def documented(
    summary: str,
    *,
    tag: str,
    body: dict[str, Any] | None = None,
    ok: tuple[int, dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
    secured: bool = False,
    description: str | None = None,
    query: dict[str, tuple[dict[str, Any], str]] | None = None,
) -> Callable[[F], F]:
    """OpenAPI for one route: summary, body schema, query parameters, success and every
    error it may answer (`query` maps a name to its schema and description)."""

    def apply(func: F) -> F:
        out: Any = func
        for name, (schema, text) in (query or {}).items():
            out = openapi.parameter(name, Schema(**schema), "query", description=text)(out)
        for status in errors:
            out = openapi.response(status, {"application/json": ERROR_SCHEMA}, ERROR_TEXT[status])(
                out
            )
        if ok is not None:
            out = openapi.response(ok[0], {"application/json": ok[1]}, "Success")(out)
        if body is not None:
            out = openapi.body({"application/json": body}, required=True)(out)
        if secured:
            out = openapi.secured("token")(out)
        if description:
            out = openapi.description(description)(out)
        out = openapi.tag(tag)(out)
        out = openapi.summary(summary)(out)
        return out

    return apply


def obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


STR = {"type": "string"}
UUID_STR = {"type": "string", "format": "uuid"}
TS = {"type": "string", "format": "date-time"}
ROLE = {"type": "string", "enum": ["admin", "agent"]}
ADMIN = obj(["id", "email", "role"], id=UUID_STR, email=STR, fullName=STR, role=ROLE, createdAt=TS)
AUTH = obj(["token", "admin"], token=STR, admin=ADMIN)
MEMBER = obj(
    ["id", "email", "role", "active", "invited"],
    **ADMIN["properties"],
    active={"type": "boolean", "description": "False once deactivated"},
    invited={"type": "boolean", "description": "The invitation is not accepted yet"},
    deactivatedAt=TS,
    lastSeenAt=TS,
    online={"type": "boolean", "description": "Has a socket open on any worker now"},
    availability={
        "type": "string",
        "enum": ["online", "busy", "offline"],
        "description": "The member's own switch",
    },
    available={
        "type": "boolean",
        "description": "`online` and connected (within AVAILABILITY_GRACE): routing may "
        "give them sessions",
    },
)
SIGN_IN = obj(
    ["id", "createdAt", "current"],
    id=UUID_STR,
    device={"type": "string", "description": "The User-Agent it signed in with"},
    ip=STR,
    createdAt=TS,
    lastSeenAt=TS,
    current={"type": "boolean"},
)
INVITATION = obj(
    ["id", "url", "token", "expiresAt"],
    id=UUID_STR,
    url={"type": "string", "description": "The demo console's page that accepts it"},
    token={"type": "string", "description": "Single use; only its hash is stored"},
    expiresAt=TS,
)
MESSAGE = obj(
    ["id", "sessionId", "seq", "senderType", "content", "isRead", "createdAt"],
    id=UUID_STR,
    sessionId=UUID_STR,
    seq={"type": "integer", "description": "Per-session position; the history cursor"},
    senderType={"type": "string", "enum": ["user", "admin"]},
    senderId=STR,
    senderName={"type": "string", "description": "A staff sender's display name"},
    content=STR,
    isRead={"type": "boolean"},
    clientMessageId=STR,
    createdAt=TS,
)
SESSION = obj(
    ["id", "userId", "status", "createdAt"],
    id=UUID_STR,
    userId=STR,
    userName=STR,
    userEmail=STR,
    status={"type": "string", "enum": ["active", "closed"]},
    lastSeq={"type": "integer"},
    createdAt=TS,
    updatedAt=TS,
    lastActivityAt=TS,
    lastMessage=MESSAGE,
    unreadCount={"type": "integer"},
    cursor={"type": "string", "description": "Pass as `before` for the next inbox page"},
    assigneeId={**UUID_STR, "nullable": True, "description": "The owner; null: waiting"},
    assigneeName={"type": "string", "nullable": True, "description": "The owner's name"},
    assignedAt={**TS, "nullable": True},
    assignmentReason={
        "type": "string",
        "nullable": True,
        "enum": ["manual", "claim", "auto", "unavailable"],
        "description": "Why the owner has it, or why it went back to the queue",
    },
)
ASSIGNMENT = obj(
    ["assigneeId", "previousAssigneeId", "reason", "at"],
    assigneeId={**UUID_STR, "nullable": True},
    previousAssigneeId={**UUID_STR, "nullable": True},
    reason={"type": "string", "enum": ["manual", "claim", "auto", "unavailable"]},
    actorId={**UUID_STR, "nullable": True, "description": "Who made it; null: routing"},
    at=TS,
)
AVAILABILITY = {"type": "string", "enum": ["online", "busy", "offline"]}
