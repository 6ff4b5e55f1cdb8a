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


def principal_of(request: Request) -> Principal | None:
    """The token's principal; None without an Authorization header, 401 for a bad one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
    return services(request).tokens.check(token.strip())


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
    401: "Missing, invalid or expired token",
    403: "Wrong role",
    404: "Unknown id (also for a malformed one, or a session this token may not see)",
    409: "Conflict",
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
ADMIN = obj(["id", "email"], id=UUID_STR, email=STR, fullName=STR, createdAt=TS)
AUTH = obj(["token", "admin"], token=STR, admin=ADMIN)
MESSAGE = obj(
    ["id", "sessionId", "seq", "senderType", "content", "isRead", "createdAt"],
    id=UUID_STR,
    sessionId=UUID_STR,
    seq={"type": "integer", "description": "Per-session position; the history cursor"},
    senderType={"type": "string", "enum": ["user", "admin"]},
    senderId=STR,
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
)
