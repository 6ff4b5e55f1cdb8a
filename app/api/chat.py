"""REST adapters for messages: /api/chat/messages*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app import contract, models
from app.api.common import (
    body_of,
    documented,
    json,
    next_link,
    principal_of,
    services,
)
from app.domain import messages
from app.validation import path_uuid

bp = Blueprint("chat", url_prefix="/api/chat")


@bp.get("/messages/<session_id:str>")
@documented(
    "Message history, oldest first",
    who="staff, or that session's customer",
    tag="messages",
    ok=(200, list[models.Message]),
    paged=True,
    errors=(400, 401, 404, 503),
    secured=True,
    description="`after=<seq>` walks forward from a position (reconnect catch-up); "
    "`before=<seq>` or no cursor walks back from the newest. "
    'A `Link: rel="next"` header names the next page while more remain.',
    query=models.HistoryQuery,
)
async def history(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    query = contract.read_query(models.HistoryQuery, request.args)
    items, following = await messages.history(
        services(request), principal, sid, limit=query.limit, before=query.before, after=query.after
    )
    headers = next_link(request, following) if following else None
    return json(items, headers=headers)


@bp.post("/messages")
@documented(
    "Send a message",
    who="staff, or that session's customer",
    tag="messages",
    body=models.NewMessage,
    ok=(201, models.Message),
    also=(200,),
    errors=(400, 401, 403, 404, 409, 413, 429, 503),
    secured=True,
    description="The sender's role comes from the token. Answers 201 when stored, 200 with "
    "the stored message when `clientMessageId` was seen before. Broadcasts `new_message`.",
)
async def post_message(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    send = contract.read(models.NewMessage, body_of(request))
    body, created = await messages.post(services(request), principal, send)
    return json(body, status=201 if created else 200)


@bp.patch("/messages/<message_id:str>/read")
@documented(
    "Mark a message read",
    who="the other side (staff, or that session's customer)",
    tag="messages",
    ok=(200, models.Message),
    errors=(401, 403, 404, 503),
    secured=True,
    description="Each side marks the other side's messages. Broadcasts `message_read`.",
)
async def mark_read(request: Request, message_id: str) -> HTTPResponse:
    principal = principal_of(request)
    mid = path_uuid(message_id, "Message")
    return json(await messages.mark_read(services(request), principal, mid))
