"""REST adapters for messages: /api/chat/messages*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app.api.common import (
    MESSAGE,
    body_of,
    documented,
    json,
    next_link,
    obj,
    principal_of,
    services,
)
from app.domain import messages
from app.errors import BadRequest
from app.validation import MAX_CLIENT_MESSAGE_ID, MAX_CONTENT, path_uuid, query_int, read_send

bp = Blueprint("chat", url_prefix="/api/chat")

MESSAGE_BODY = obj(
    ["sessionId", "content"],
    sessionId={"type": "string", "format": "uuid"},
    content={"type": "string", "minLength": 1, "maxLength": MAX_CONTENT},
    senderType={
        "type": "string",
        "enum": ["user", "admin"],
        "description": "Optional; must match the token's role",
    },
    clientMessageId={
        "type": "string",
        "maxLength": MAX_CLIENT_MESSAGE_ID,
        "description": "Client-chosen id; a retry with the same id returns the stored message",
    },
)
SEQ_MAX = 2**31 - 1


@bp.get("/messages/<session_id:str>")
@documented(
    "Message history, oldest first",
    tag="messages",
    ok=(200, {"type": "array", "items": MESSAGE}),
    errors=(400, 401, 404, 503),
    secured=True,
    description="`after=<seq>` walks forward from a position (reconnect catch-up); "
    "`before=<seq>` or no cursor walks back from the newest. "
    'A `Link: rel="next"` header names the next page while more remain.',
    query={
        "limit": ({"type": "integer", "minimum": 1, "maximum": 500}, "Page size, default 100"),
        "after": ({"type": "integer", "minimum": 0}, "Messages with a greater `seq`"),
        "before": ({"type": "integer", "minimum": 0}, "Messages with a smaller `seq`"),
    },
)
async def history(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    limit = query_int(request.args, "limit", default=100, low=1, high=500)
    before = query_int(request.args, "before", default=None, low=0, high=SEQ_MAX)
    after = query_int(request.args, "after", default=None, low=0, high=SEQ_MAX)
    if before is not None and after is not None:
        raise BadRequest("Use either before or after, not both", code="validation_error")
    assert limit is not None
    items, following = await messages.history(
        services(request), principal, sid, limit=limit, before=before, after=after
    )
    headers = next_link(request, following) if following else None
    return json(items, headers=headers)


@bp.post("/messages")
@documented(
    "Send a message",
    tag="messages",
    body=MESSAGE_BODY,
    ok=(201, MESSAGE),
    errors=(400, 401, 403, 404, 409, 413, 429, 503),
    secured=True,
    description="The sender's role comes from the token. Answers 201 when stored, 200 with "
    "the stored message when `clientMessageId` was seen before. Broadcasts `new_message`.",
)
async def post_message(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    sid, content, sender, client_id = read_send(body_of(request))
    body, created = await messages.post(
        services(request),
        principal,
        session_id=sid,
        content=content,
        client_message_id=client_id,
        claimed_sender=sender,
    )
    return json(body, status=201 if created else 200)


@bp.patch("/messages/<message_id:str>/read")
@documented(
    "Mark a message read",
    tag="messages",
    ok=(200, MESSAGE),
    errors=(401, 403, 404, 503),
    secured=True,
    description="Each side marks the other side's messages. Broadcasts `message_read`.",
)
async def mark_read(request: Request, message_id: str) -> HTTPResponse:
    principal = principal_of(request)
    mid = path_uuid(message_id, "Message")
    return json(await messages.mark_read(services(request), principal, mid))
