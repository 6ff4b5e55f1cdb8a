"""Private notes: staff talk about a conversation without its customer hearing.

A note is not a message: it has its own per-session position (`noteSeq`), so the
customer's message `seq` stays gap-free (a gap would make a client re-join forever), and
it is read only through the functions here, each of which asks app/domain/visibility.py.
Its event, `new_note`, goes to the staff room alone, never to a session's room.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from app import db
from app.auth import Principal
from app.broadcast import ADMINS_ROOM
from app.context import Services
from app.domain import visibility
from app.domain.visibility import Kind
from app.errors import NotFound
from app.models import Note

NOTE_COLUMNS = "id, session_id, seq, author_id, author_name, content, created_at"
# Concurrent notes on one session race for the next position; the loser tries again.
INSERT_ATTEMPTS = 5


async def add(
    ctx: Services, principal: Principal | None, session_id: uuid.UUID, content: str
) -> Note:
    """Store a note at the session's next note position and tell staff (`new_note`)."""
    author = visibility.require(principal, Kind.NOTES)
    if await db.fetch_one("SELECT id FROM chat_session WHERE id = {}", session_id) is None:
        raise NotFound("Session not found")
    row = None
    for attempt in range(INSERT_ATTEMPTS):
        try:
            async with db.transaction():
                row = await db.fetch_one(
                    f"INSERT INTO note ({NOTE_COLUMNS})"
                    " SELECT {}, {}, COALESCE(MAX(seq), 0) + 1, {}, {}, {}, {}"
                    " FROM note WHERE session_id = {}"
                    f" RETURNING {NOTE_COLUMNS}",
                    uuid.uuid4(),
                    session_id,
                    author.subject,
                    author.name,
                    content,
                    dt.datetime.now(dt.UTC),
                    session_id,
                )
            break
        except Exception as exc:
            if not db.is_unique_violation(exc) or attempt == INSERT_ATTEMPTS - 1:
                raise
    assert row is not None
    body = Note.of(row)
    await ctx.broadcaster.emit("new_note", body, [ADMINS_ROOM])
    return body


async def page(
    ctx: Services,
    principal: Principal | None,
    session_id: uuid.UUID,
    *,
    after: int,
    limit: int,
) -> tuple[list[Note], dict[str, int] | None]:
    """Notes after a position, oldest first, and the cursor of the next page if any."""
    visibility.require(principal, Kind.NOTES)
    if await db.fetch_one("SELECT id FROM chat_session WHERE id = {}", session_id) is None:
        raise NotFound("Session not found")
    return await _after(session_id, after, limit)


async def for_join(
    principal: Principal, session_id: uuid.UUID, after: int | None, limit: int
) -> tuple[list[Note] | msgspec.UnsetType, bool | msgspec.UnsetType]:
    """What a join ack adds for a token that may see notes, (notes, notesHasMore); for
    any other token, or without `notesAfter`, nothing (both unset: absent from the ack)."""
    if after is None or not visibility.may_see(principal, Kind.NOTES):
        return msgspec.UNSET, msgspec.UNSET
    items, following = await _after(session_id, after, limit)
    return items, following is not None


async def _after(
    session_id: uuid.UUID, after: int, limit: int
) -> tuple[list[Note], dict[str, int] | None]:
    rows = await db.fetch(
        f"SELECT {NOTE_COLUMNS} FROM note WHERE session_id = {{}} AND seq > {{}}"
        " ORDER BY seq ASC LIMIT {}",
        session_id,
        after,
        limit + 1,
    )
    more = len(rows) > limit
    items = [Note.of(r) for r in rows[:limit]]
    return items, ({"after": items[-1].noteSeq} if more and items else None)
