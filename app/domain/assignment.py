"""Who owns a conversation: claiming, assigning by hand, and how every change is told.

Every change of owner goes through `change_owner` inside a transaction that holds the
session's row (`FOR UPDATE` on PostgreSQL; embedded SQLite runs one write transaction at
a time, which is the same guarantee): of many agents claiming at once, exactly one finds
it unassigned, and a stale view (`expectedAssigneeId`) gets 409 `assignment_conflict`
instead of overwriting a colleague. Each change is a row of `assignment` (the session's
history of owners, with the reason) and one `session_assigned` event, emitted after the
commit, to staff and the session's room. The event carries the owner's display name and
never an email: the customer's widget hears it too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from app import db
from app.auth import Principal, require_admin
from app.broadcast import ADMINS_ROOM, session_room
from app.context import Services
from app.errors import AssignmentConflict, BadRequest, NotFound
from app.models import (
    ASSIGNMENT_REASONS,
    Assignment,
    AssignmentReason,
    SessionAssigned,
    as_uuid,
    iso,
)

REASONS = ASSIGNMENT_REASONS
# A value for `expected` meaning "no compare-and-set".
ANY = object()


@dataclass(frozen=True)
class Change:
    """One committed change of owner, ready to be told."""

    session_id: uuid.UUID
    assignee_id: uuid.UUID | None
    previous_id: uuid.UUID | None
    reason: AssignmentReason
    at: dt.datetime


def for_update() -> str:
    """Row locks where the engine has them (SQLite serialises write transactions)."""
    return " FOR UPDATE" if db.is_postgres() else ""


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    return None if value is None else as_uuid(value)


async def change_owner(
    session_id: uuid.UUID,
    assignee_id: uuid.UUID | None,
    previous_id: uuid.UUID | None,
    reason: AssignmentReason,
    actor_id: uuid.UUID | None,
    now: dt.datetime,
) -> Change:
    """Write a change of owner and its history row (inside the caller's transaction,
    which holds the session's row)."""
    await db.fetch(
        "UPDATE chat_session SET assignee_id = {}, assigned_at = {}, assignment_reason = {},"
        " updated_at = {} WHERE id = {}",
        assignee_id,
        now if assignee_id is not None else None,
        reason,
        now,
        session_id,
    )
    await db.fetch(
        "INSERT INTO assignment (id, session_id, assignee_id, previous_assignee_id, reason,"
        " actor_id, created_at) VALUES ({}, {}, {}, {}, {}, {}, {})",
        uuid.uuid4(),
        session_id,
        assignee_id,
        previous_id,
        reason,
        actor_id,
        now,
    )
    return Change(session_id, assignee_id, previous_id, reason, now)


async def display_names(ids: list[uuid.UUID]) -> dict[str, str | None]:
    """Staff display names (never emails: customers see them)."""
    if not ids:
        return {}
    marks = ", ".join("{}" for _ in ids)
    rows = await db.fetch(f"SELECT id, full_name FROM admin WHERE id IN ({marks})", *ids)
    return {str(r["id"]): r["full_name"] for r in rows}


async def tell(ctx: Services, changes: list[Change]) -> None:
    """`session_assigned` for each committed change, to staff and the session's room."""
    if not changes:
        return
    names = await display_names([c.assignee_id for c in changes if c.assignee_id is not None])
    for change in changes:
        event = SessionAssigned(
            sessionId=change.session_id,
            assigneeId=change.assignee_id,
            assigneeName=names.get(str(change.assignee_id)) if change.assignee_id else None,
            previousAssigneeId=change.previous_id,
            reason=change.reason,
            assignedAt=iso(change.at) if change.assignee_id else None,
        )
        await ctx.broadcaster.emit(
            "session_assigned", event, [ADMINS_ROOM, session_room(change.session_id)]
        )


async def _locked_owner(session_id: uuid.UUID) -> uuid.UUID | None:
    row = await db.fetch_one(
        f"SELECT assignee_id FROM chat_session WHERE id = {{}}{for_update()}", session_id
    )
    if row is None:
        raise NotFound("Session not found")
    return _uuid_or_none(row["assignee_id"])


async def _check_assignee(assignee_id: uuid.UUID) -> None:
    row = await db.fetch_one(
        "SELECT id FROM admin WHERE id = {} AND deactivated_at IS NULL AND password <> ''",
        assignee_id,
    )
    if row is None:
        raise BadRequest(
            "assigneeId is not an active team member",
            fields={"assigneeId": "is not an active team member"},
        )


async def claim(ctx: Services, principal: Principal | None, session_id: uuid.UUID) -> Change:
    """The caller takes an unassigned session; 409 `assignment_conflict` when it has an
    owner (the caller included: a double click is not a second claim)."""
    principal = require_admin(principal)
    return await _change(ctx, principal, session_id, principal.subject, None, "claim")


async def assign(
    ctx: Services,
    principal: Principal | None,
    session_id: uuid.UUID,
    assignee_id: uuid.UUID | None,
    expected: object = ANY,
) -> Change | None:
    """Give a session to a member, or back to the queue (None). With `expected` (a member
    id or None) only if that is still the owner. None when nothing changed."""
    principal = require_admin(principal)
    if assignee_id is not None:
        await _check_assignee(assignee_id)
    try:
        return await _change(ctx, principal, session_id, assignee_id, expected, "manual")
    except _Unchanged:
        return None


class _Unchanged(Exception):
    pass


async def _change(
    ctx: Services,
    principal: Principal,
    session_id: uuid.UUID,
    assignee_id: uuid.UUID | None,
    expected: object,
    reason: AssignmentReason,
) -> Change:
    now = dt.datetime.now(dt.UTC)
    async with db.transaction():
        current = await _locked_owner(session_id)
        if expected is not ANY and current != expected:
            raise AssignmentConflict(current)
        if current == assignee_id:
            if reason == "claim":
                raise AssignmentConflict(current)
            raise _Unchanged
        change = await change_owner(
            session_id, assignee_id, current, reason, principal.subject, now
        )
    await tell(ctx, [change])
    return change


async def history(
    ctx: Services, principal: Principal | None, session_id: uuid.UUID
) -> list[Assignment]:
    """The session's owners over time, oldest first (staff only)."""
    require_admin(principal)
    rows = await db.fetch(
        "SELECT assignee_id, previous_assignee_id, reason, actor_id, created_at"
        " FROM assignment WHERE session_id = {} ORDER BY created_at, id",
        session_id,
    )
    return [
        Assignment(
            assigneeId=r["assignee_id"],
            previousAssigneeId=r["previous_assignee_id"],
            reason=r["reason"],
            actorId=r["actor_id"],
            at=iso(r["created_at"]),
        )
        for r in rows
    ]
