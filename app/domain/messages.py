"""Messages: post (idempotent, ordered), history by cursor, read flags."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from app import db, metrics
from app.auth import Principal, require_session_access
from app.broadcast import ADMINS_ROOM, session_room
from app.context import Services
from app.domain import message_writer
from app.domain.message_writer import Draft
from app.domain.sessions import MESSAGE_COLUMNS
from app.errors import ApiError, BadRequest, NotFound, OwnMessage, SenderMismatch, SessionClosed
from app.models import Message, NewMessage, as_uuid


async def post(
    ctx: Services, principal: Principal | None, send: NewMessage
) -> tuple[Message, bool]:
    """Store a message and broadcast it once committed. Returns (message, created).

    The sender is the token's role. A retry with a known clientMessageId returns the
    stored message and broadcasts nothing, so a client may resend until it hears back.
    """
    try:
        body, created = await _post(
            ctx, principal, send.sessionId, send.content, send.clientMessageId, send.senderType
        )
    except ApiError as exc:
        metrics.MESSAGES.labels(exc.code).inc()
        raise
    except Exception:
        metrics.MESSAGES.labels("failed").inc()
        raise
    metrics.MESSAGES.labels("created" if created else "duplicate").inc()
    return body, created


async def _post(
    ctx: Services,
    principal: Principal | None,
    session_id: uuid.UUID,
    content: str,
    client_message_id: str | None,
    claimed_sender: str | None,
) -> tuple[Message, bool]:
    principal = require_session_access(principal, session_id)
    if claimed_sender is not None and claimed_sender != principal.sender_type:
        raise SenderMismatch(
            f"This token sends as '{principal.sender_type}', not '{claimed_sender}'"
        )
    await ctx.limiter.hit("messages", principal.rate_key, ctx.settings.rate_messages)
    duplicate: Exception | None = None
    try:
        row, created = await _insert(principal, session_id, content, client_message_id)
    except Exception as exc:
        if client_message_id is None or not db.is_unique_violation(exc):
            raise
        # A retry (perhaps racing the first send): nothing was stored or numbered.
        row, created, duplicate = None, False, exc
    if row is not None and not created:
        return Message.of(row), False
    if row is None:
        if client_message_id is not None:
            existing = await _by_client_id(principal, session_id, client_message_id)
            if existing is not None:
                return Message.of(existing), False
        if duplicate is not None:
            raise duplicate
        status = await db.fetch_one("SELECT status FROM chat_session WHERE id = {}", session_id)
        if status is None:
            raise NotFound("Session not found")
        raise SessionClosed()
    committed = time.perf_counter()
    body = Message.of(row)
    await ctx.broadcaster.emit("new_message", body, [session_room(session_id), ADMINS_ROOM])
    metrics.COMMIT_TO_EMIT.observe(time.perf_counter() - committed)
    return body, True


async def _insert(
    principal: Principal, session_id: uuid.UUID, content: str, client_message_id: str | None
) -> tuple[dict[str, Any] | Mapping[str, Any] | None, bool]:
    """The stored row (None when the session is unknown or closed) and whether this send
    stored it (False: its clientMessageId was already stored, the row is that message)."""
    draft = Draft(
        session_id=session_id,
        sender_type=principal.sender_type,
        admin_id=str(principal.subject) if principal.is_admin else None,
        content=content,
        client_message_id=client_message_id,
        # Staff messages carry who wrote them as they were named then (senderType stays
        # "admin").
        sender_name=principal.name if principal.is_admin else None,
    )
    if db.is_postgres():
        return await message_writer.writer().store(draft)
    return await _insert_embedded(draft), True


async def _insert_embedded(draft: Draft) -> dict[str, Any] | None:
    """SQLite (embedded mode) has no data-modifying CTE: number, then insert, in a
    transaction (one writer at a time: no batch to gain)."""
    now = dt.datetime.now(dt.UTC)
    async with db.transaction():
        session = await db.fetch_one(
            "UPDATE chat_session SET last_seq = last_seq + 1, last_activity_at = {},"
            " updated_at = {} WHERE id = {} AND status = 'active' RETURNING last_seq, user_id",
            now,
            now,
            draft.session_id,
        )
        if session is None:
            return None
        row = await db.fetch_one(
            f"INSERT INTO message ({MESSAGE_COLUMNS})"
            " VALUES ({}, {}, {}, {}, {}, {}, false, {}, {}, {})"
            f" RETURNING {MESSAGE_COLUMNS}",
            draft.id,
            draft.session_id,
            session["last_seq"],
            draft.sender_type,
            draft.admin_id or session["user_id"],
            draft.content,
            draft.client_message_id,
            now,
            draft.sender_name,
        )
    return row


async def _by_client_id(
    principal: Principal, session_id: uuid.UUID, client_message_id: str
) -> dict[str, Any] | None:
    """This sender's message with that id: ids are unique per sender (the customer side,
    or one staff account), so one side can never claim the other's."""
    if principal.is_admin:
        return await db.fetch_one(
            f"SELECT {MESSAGE_COLUMNS} FROM message WHERE session_id = {{}}"
            " AND sender_type = {} AND sender_id = {} AND client_message_id = {}",
            session_id,
            principal.sender_type,
            str(principal.subject),
            client_message_id,
        )
    return await db.fetch_one(
        f"SELECT {MESSAGE_COLUMNS} FROM message WHERE session_id = {{}}"
        " AND sender_type = {} AND client_message_id = {}",
        session_id,
        principal.sender_type,
        client_message_id,
    )


async def history(
    ctx: Services,
    principal: Principal | None,
    session_id: uuid.UUID,
    *,
    limit: int,
    before: int | None = None,
    after: int | None = None,
    max_chars: int | None = None,
) -> tuple[list[Message], dict[str, int] | None]:
    """A page of messages, oldest first, and the cursor of the next page if more remain.

    `max_chars` (forward pages only) also ends the page once its contents add up to that
    many characters (always at least one message): a join's ack stays small whatever the
    messages' length.

    `after=N` walks forward from position N (what a reconnecting client asks for);
    `before=N` and no cursor walk backward from the newest. Positions are unique per
    session, so no page skips or repeats a message. One direction a page: both cursors
    at once are refused.
    """
    if before is not None and after is not None:
        raise BadRequest("Use either before or after, not both")
    require_session_access(principal, session_id)
    await require_session_exists(session_id)
    if after is not None and max_chars is not None:
        rows, more = await _forward_page_within(session_id, after, limit, max_chars)
        following = {"after": rows[-1]["seq"]} if more else None
    elif after is not None:
        rows = await db.fetch_direct(
            f"SELECT {MESSAGE_COLUMNS} FROM message WHERE session_id = {{}} AND seq > {{}}"
            " ORDER BY seq ASC LIMIT {}",
            session_id,
            after,
            limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        following = {"after": rows[-1]["seq"]} if more else None
    else:
        bound = before if before is not None else 2**31 - 1
        rows = await db.fetch_direct(
            f"SELECT {MESSAGE_COLUMNS} FROM message WHERE session_id = {{}} AND seq < {{}}"
            " ORDER BY seq DESC LIMIT {}",
            session_id,
            bound,
            limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit][::-1]
        following = {"before": rows[0]["seq"]} if more else None
    return [Message.of(r) for r in rows], following


async def _forward_page_within(
    session_id: uuid.UUID, after: int, limit: int, max_chars: int
) -> tuple[list[Any], bool]:
    """Up to `limit` messages after `after` whose contents fit in `max_chars` (the first
    always), cut in the database so the rest never reach this process; and whether more
    remain."""
    rows = await db.fetch_direct(
        f"SELECT {MESSAGE_COLUMNS}, page_rows FROM ("
        f" SELECT {MESSAGE_COLUMNS}, count(*) OVER () AS page_rows,"
        "  sum(length(content)) OVER (ORDER BY seq) - length(content) AS chars_before"
        f" FROM (SELECT {MESSAGE_COLUMNS} FROM message WHERE session_id = {{}} AND seq > {{}}"
        "  ORDER BY seq ASC LIMIT {}) AS page"
        ") AS sized WHERE chars_before < {} ORDER BY seq ASC",
        session_id,
        after,
        limit + 1,
        max_chars,
    )
    if not rows:
        return [], False
    fetched = int(rows[0]["page_rows"])
    more = fetched > limit or len(rows) < fetched
    return list(rows[:limit]), more


async def require_session_exists(session_id: uuid.UUID) -> None:
    if await db.fetch_one_direct("SELECT id FROM chat_session WHERE id = {}", session_id) is None:
        raise NotFound("Session not found")


async def mark_read(ctx: Services, principal: Principal | None, message_id: uuid.UUID) -> Message:
    """Read flags go one way: each side marks what the other side sent."""
    row = await db.fetch_one(f"SELECT {MESSAGE_COLUMNS} FROM message WHERE id = {{}}", message_id)
    if row is None:
        raise NotFound("Message not found")
    session_id = as_uuid(row["session_id"])
    try:
        principal = require_session_access(principal, session_id)
    except NotFound:
        raise NotFound("Message not found") from None
    if row["sender_type"] == principal.sender_type:
        raise OwnMessage()
    updated = await db.fetch_one(
        "UPDATE message SET is_read = true WHERE id = {} AND NOT is_read"
        f" RETURNING {MESSAGE_COLUMNS}",
        message_id,
    )
    if updated is None:
        # Already read (perhaps by a racing request): nothing changed, nothing to tell.
        return msgspec.structs.replace(Message.of(row), isRead=True)
    body = Message.of(updated)
    await ctx.broadcaster.emit("message_read", body, [session_room(session_id), ADMINS_ROOM])
    return body
