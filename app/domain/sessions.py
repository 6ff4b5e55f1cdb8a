"""Chat sessions: the widget opens one, admins list, read and close them."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from typing import Any

import msgspec
from msgspec import UNSET

from app import db
from app.auth import Principal, require_admin, require_session_access
from app.broadcast import ADMINS_ROOM, session_room
from app.context import Services
from app.domain import assignment, presence, routing, visibility
from app.errors import ApiError, BadRequest, NotFound
from app.models import AssigneeChange, InboxItem, NewSession, OpenedSession, Session, as_uuid
from app.outage import REDIS
from app.state import StateUnavailable
from app.validation import parse_uuid

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NEW_SESSION_COLUMNS = (
    "id, user_id, user_name, user_email, status, last_seq, created_at, updated_at, last_activity_at"
)
SESSION_COLUMNS = f"{NEW_SESSION_COLUMNS}, assignee_id, assigned_at, assignment_reason"
# `?assignee=` besides a member's id.
ASSIGNEE_FILTERS = ("me", "unassigned", "all")
MESSAGE_COLUMNS = (
    "id, session_id, seq, sender_type, sender_id, content, is_read, client_message_id, created_at,"
    " sender_name"
)


async def create(
    ctx: Services,
    opening: NewSession,
    *,
    ip: str,
    presented: Principal | ApiError | None = None,
) -> tuple[OpenedSession, bool]:
    """A conversation plus a customer token for it (and nowhere else). Returns (body, created).

    A widget that retries must not open a second conversation, yet a userId is no secret:
    only proof of the session (its customer token, or the random clientSessionId the
    widget created it with) brings an active session back; anything else opens a new one.
    Anyone may open a session: a stale or bad token (`presented` as its error) only fails
    to prove an old one.
    """
    principal = presented if isinstance(presented, Principal) else None
    user_id = opening.userId
    await ctx.limiter.hit("session-create", ip, ctx.settings.rate_session_create)
    client_session_id = opening.clientSessionId
    key = _key_digest(client_session_id) if client_session_id is not None else None
    existing = await _resumable(user_id, key, principal)
    if existing is not None:
        return await _resumed(ctx, existing), False
    now = dt.datetime.now(dt.UTC)
    try:
        row = await db.fetch_one(
            f"INSERT INTO chat_session ({NEW_SESSION_COLUMNS}, client_session_key)"
            " VALUES ({}, {}, {}, {}, 'active', 0, {}, {}, {}, {})"
            f" RETURNING {SESSION_COLUMNS}",
            uuid.uuid4(),
            user_id,
            opening.userName,
            opening.userEmail,
            now,
            now,
            now,
            key,
        )
    except Exception as exc:
        if key is None or not db.is_unique_violation(exc):
            raise
        # A concurrent retry of the same create won the race: answer with its session.
        row = await _resumable(user_id, key, None)
        if row is None:
            raise
        return await _resumed(ctx, row), False
    assert row is not None
    body = Session.of(row, labels=[])
    await ctx.broadcaster.emit("session_created", body, [ADMINS_ROOM])
    # Routing may give it an owner at once (session_assigned follows session_created).
    await routing.drain(ctx)
    return _with_token(ctx, row, visibility.customer_session(body)), True


async def _resumed(ctx: Services, row: dict[str, Any]) -> OpenedSession:
    """An existing session as GET shows its customer, with a fresh token."""
    body = visibility.customer_session((await _with_summaries([row]))[0])
    return _with_token(ctx, row, body)


def _key_digest(client_session_id: str) -> str:
    """Stored hashed: the key brings back a session's token, so it is a credential."""
    return hashlib.sha256(client_session_id.encode()).hexdigest()


async def _resumable(
    user_id: str, key: str | None, principal: Principal | None
) -> dict[str, Any] | None:
    """The caller's own active session of `user_id`, if it proves it holds one."""
    if principal is not None and not principal.is_admin:
        row = await db.fetch_one(
            f"SELECT {SESSION_COLUMNS} FROM chat_session"
            " WHERE id = {} AND user_id = {} AND status = 'active'",
            principal.subject,
            user_id,
        )
        if row is not None:
            return row
    if key is None:
        return None
    return await db.fetch_one(
        f"SELECT {SESSION_COLUMNS} FROM chat_session"
        " WHERE user_id = {} AND client_session_key = {} AND status = 'active'",
        user_id,
        key,
    )


def _with_token(ctx: Services, row: dict[str, Any], body: Session) -> OpenedSession:
    token = ctx.tokens.customer(as_uuid(row["id"]))
    return OpenedSession(**msgspec.structs.asdict(body), customerToken=token)


async def load(session_id: uuid.UUID) -> dict[str, Any]:
    row = await db.fetch_one(
        f"SELECT {SESSION_COLUMNS} FROM chat_session WHERE id = {{}}", session_id
    )
    if row is None:
        raise NotFound("Session not found")
    return row


async def get(ctx: Services, principal: Principal | None, session_id: uuid.UUID) -> Session:
    require_session_access(principal, session_id)
    row = await load(session_id)
    return visibility.session_view(principal, (await _with_summaries([row]))[0])


async def list_for_inbox(
    ctx: Services,
    principal: Principal | None,
    *,
    status: str | None,
    limit: int,
    before: str | None,
    assignee: str | None = None,
    label: str | None = None,
) -> tuple[list[InboxItem], str | None]:
    """Newest activity first; returns the page and the cursor of the next one, if any.
    `assignee`: `me`, `unassigned`, `all` (None) or a member's id."""
    principal = require_admin(principal)
    owner = _assignee_filter(assignee)
    where: list[str] = []
    args: list[object] = []
    if status is not None:
        where.append("status = {}")
        args.append(status)
    if owner == "unassigned":
        where.append("assignee_id IS NULL")
    elif owner != "all":
        where.append("assignee_id = {}")
        args.append(principal.subject if owner == "me" else owner)
    if label is not None:
        where.append(
            "EXISTS (SELECT 1 FROM session_label l"
            " WHERE l.session_id = chat_session.id AND l.label = {})"
        )
        args.append(label.strip().lower())
    if before is not None:
        at, sid = decode_cursor(before)
        where.append("(last_activity_at < {} OR (last_activity_at = {} AND id < {}))")
        args += [at, at, sid]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await db.fetch(
        f"SELECT {SESSION_COLUMNS} FROM chat_session {clause}"
        " ORDER BY last_activity_at DESC, id DESC LIMIT {}",
        *args,
        limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    # Presence is read beside the summaries, not after them: no added round trip.
    summaries, online = await asyncio.gather(
        _with_summaries(rows), _customers_online(ctx, [as_uuid(r["id"]) for r in rows])
    )
    items = [
        InboxItem(
            **msgspec.structs.asdict(item), cursor=encode_cursor(row), customerOnline=is_online
        )
        for item, row, is_online in zip(summaries, rows, online, strict=True)
    ]
    return items, (items[-1].cursor if more and items else None)


def assignee_filter(value: str | None) -> str | uuid.UUID:
    """`me`, `unassigned`, `all` (None) or a member's id (else 400): the inbox's and
    search's `?assignee=`."""
    return _assignee_filter(value)


def _assignee_filter(value: str | None) -> str | uuid.UUID:
    if value is None or value in ASSIGNEE_FILTERS:
        return value or "all"
    member = parse_uuid(value)
    if member is None:
        raise BadRequest(
            "assignee must be me, unassigned, all or a member's id",
            fields={"assignee": "must be me, unassigned, all or a UUID"},
        )
    return member


async def _customers_online(ctx: Services, session_ids: list[uuid.UUID]) -> list[bool]:
    """Presence is best effort, like typing in a join: with Redis away the inbox still
    lists its sessions, every customer shown offline until the events tell otherwise."""
    if not session_ids:
        return []
    try:
        return await presence.customers_online(ctx, session_ids)
    except StateUnavailable as exc:
        REDIS.failed("inbox without presence", exc)
        return [False] * len(session_ids)


async def with_summaries(rows: list[dict[str, Any]]) -> list[Session]:
    """Sessions as staff see them (last message, unread count, owner, labels)."""
    return await _with_summaries(rows)


async def _with_summaries(rows: list[dict[str, Any]]) -> list[Session]:
    """Last message, unread count and labels for a page of sessions: three queries, not
    three per row. Labels are private (app/domain/visibility.py): customer paths drop them."""
    if not rows:
        return []
    ids = [as_uuid(r["id"]) for r in rows]
    marks = ", ".join("{}" for _ in ids)
    last_rows = await db.fetch(
        f"SELECT {', '.join('m.' + c.strip() for c in MESSAGE_COLUMNS.split(','))}"
        " FROM message m JOIN chat_session s ON s.id = m.session_id AND m.seq = s.last_seq"
        f" WHERE s.id IN ({marks})",
        *ids,
    )
    unread_rows = await db.fetch(
        "SELECT session_id, count(*) AS n FROM message"
        f" WHERE session_id IN ({marks}) AND sender_type = 'user' AND NOT is_read"
        " GROUP BY session_id",
        *ids,
    )
    label_rows = await db.fetch(
        f"SELECT session_id, label FROM session_label WHERE session_id IN ({marks}) ORDER BY label",
        *ids,
    )
    labels: dict[str, list[str]] = {}
    for r in label_rows:
        labels.setdefault(str(r["session_id"]), []).append(r["label"])
    last = {str(r["session_id"]): r for r in last_rows}
    unread = {str(r["session_id"]): int(r["n"]) for r in unread_rows}
    names = await assignment.display_names(
        list({as_uuid(r["assignee_id"]) for r in rows if r["assignee_id"] is not None})
    )
    return [
        Session.of(
            r,
            last.get(str(r["id"])),
            unread.get(str(r["id"]), 0),
            names.get(str(r["assignee_id"])) if r["assignee_id"] is not None else None,
            labels=labels.get(str(r["id"]), []),
        )
        for r in rows
    ]


async def set_status(
    ctx: Services, principal: Principal | None, session_id: uuid.UUID, status: str
) -> Session:
    require_admin(principal)
    now = dt.datetime.now(dt.UTC)
    # Closing retires the widget's key, so a reopened session never collides with a
    # newer active one created under the same key.
    row = await db.fetch_one(
        "UPDATE chat_session SET status = {}, updated_at = {},"
        " client_session_key = CASE WHEN {} = 'closed' THEN NULL ELSE client_session_key END"
        f" WHERE id = {{}} RETURNING {SESSION_COLUMNS}",
        status,
        now,
        status,
        session_id,
    )
    if row is None:
        raise NotFound("Session not found")
    body = (await _with_summaries([row]))[0]
    await broadcast_updated(ctx, body, to_customer=True)
    # A close frees its owner's capacity; a reopened unassigned session waits again.
    await routing.drain(ctx)
    return body


async def claim(ctx: Services, principal: Principal | None, session_id: uuid.UUID) -> Session:
    """The caller takes an unassigned session: of many claiming at once exactly one wins,
    the others get 409 `assignment_conflict`. Answers the session."""
    await assignment.claim(ctx, principal, session_id)
    return (await _with_summaries([await load(session_id)]))[0]


async def assign(
    ctx: Services, principal: Principal | None, session_id: uuid.UUID, change: AssigneeChange
) -> Session:
    """Hand a session to a member or back to the queue (None), with `expectedAssigneeId`
    only if that is still the owner (else 409 `assignment_conflict`). Answers the session."""
    expected = assignment.ANY if change.expectedAssigneeId is UNSET else change.expectedAssigneeId
    done = await assignment.assign(ctx, principal, session_id, change.assigneeId, expected)
    if done is not None and change.assigneeId is None:
        await routing.drain(ctx)
    return (await _with_summaries([await load(session_id)]))[0]


async def broadcast_updated(ctx: Services, body: Session, *, to_customer: bool) -> None:
    """`session_updated`: staff hear the whole session; the session's room (its customer)
    hears only what a customer may see, and only for changes a customer can notice. A
    staff socket that joined the room hears both copies: apply them as a merge."""
    await ctx.broadcaster.emit("session_updated", body, [ADMINS_ROOM])
    if to_customer:
        await ctx.broadcaster.emit(
            "session_updated", visibility.customer_session(body), [session_room(body.id)]
        )


def encode_cursor(row: dict[str, Any]) -> str:
    at = row["last_activity_at"]
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    micros = (at - EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}_{row['id']}"


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        micros, sid = cursor.split("_", 1)
        at = EPOCH + dt.timedelta(microseconds=int(micros))
        return at, uuid.UUID(sid)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            "before is not a valid cursor", fields={"before": "invalid cursor"}
        ) from None
