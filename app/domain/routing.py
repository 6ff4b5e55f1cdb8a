"""Automatic routing: waiting sessions go to available agents under the cap, oldest first.

AUTO_ASSIGN picks the agent: `round_robin` (the one routed to longest ago) or
`least_open` (the fewest open sessions, then longest ago); `off` leaves sessions for
staff to claim. MAX_OPEN_PER_AGENT caps what routing gives anyone.

Every decision is one PostgreSQL transaction, so any number of workers may route at once:
`drain` locks the candidate agents' rows (`FOR UPDATE`, in id order, so two drains never
deadlock), counts their open sessions under those locks (no agent goes over the cap: every
automatic assignment to an agent holds its row), then takes the oldest waiting sessions
with `FOR UPDATE SKIP LOCKED` (two drains with different candidates never take the same
session, and a session held for a moment by a message post is left for the next drain
rather than waited on). Nothing is decided in a worker's memory. Embedded mode (SQLite,
one worker) runs one write transaction at a time (app/db.py), which stands in for both
locks.

Drains run when a session is created, reopened or unassigned, when an agent becomes
available or goes online, when a session closes (capacity frees), and on every worker's
sweep (a safety net: a drain that failed is retried within a tick). The sweep also
returns to the queue the open sessions of owners unavailable past the grace
(`unavailable`), which the same sweep then routes on.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from app import db
from app.context import Services
from app.domain import assignment, availability
from app.models import AgentPresence, as_uuid

TICK = dt.timedelta(microseconds=1)


def routing_on(ctx: Services) -> bool:
    return ctx.settings.auto_assign != "off"


def _marks(values: list[Any]) -> str:
    return ", ".join("{}" for _ in values)


async def drain(ctx: Services) -> int:
    """Route as many waiting sessions as there is capacity for; returns how many."""
    if not routing_on(ctx):
        return 0
    candidates = await availability.available_agents(ctx)
    if not candidates:
        return 0
    cap = ctx.settings.max_open_per_agent
    changes: list[assignment.Change] = []
    async with db.transaction():
        ids = sorted(candidates)
        agents = await db.fetch(
            f"SELECT id, last_routed_at FROM admin WHERE id IN ({_marks(ids)})"
            " AND availability = 'online' AND deactivated_at IS NULL"
            f" ORDER BY id{assignment.for_update()}",
            *ids,
        )
        if not agents:
            return 0
        locked = [as_uuid(a["id"]) for a in agents]
        counted = await db.fetch(
            "SELECT assignee_id, count(*) AS n FROM chat_session WHERE status = 'active'"
            f" AND assignee_id IN ({_marks(locked)}) GROUP BY assignee_id",
            *locked,
        )
        open_now = {str(r["assignee_id"]): int(r["n"]) for r in counted}
        turns = {str(a["id"]): _at(a["last_routed_at"]) for a in agents}
        # Taken under the locks, and after every turn already given: a drain that waited
        # for the locks must not write turns older than the one it waited for.
        now = max([dt.datetime.now(dt.UTC), *(t + TICK for t in turns.values() if t)])
        room = sum(max(cap - open_now.get(str(a), 0), 0) for a in locked)
        if room == 0:
            return 0
        skip = " FOR UPDATE SKIP LOCKED" if db.is_postgres() else ""
        waiting = await db.fetch(
            "SELECT id FROM chat_session WHERE assignee_id IS NULL AND status = 'active'"
            f" ORDER BY created_at, id LIMIT {{}}{skip}",
            room,
        )
        for tick, row in enumerate(waiting):
            chosen = _choose(ctx.settings.auto_assign, locked, open_now, turns, cap)
            if chosen is None:
                break
            key = str(chosen)
            open_now[key] = open_now.get(key, 0) + 1
            # One microsecond apart: the order of this drain's decisions survives the
            # database (round-robin's turns, and the history's order).
            turns[key] = at = now + tick * TICK
            changes.append(
                await assignment.change_owner(as_uuid(row["id"]), chosen, None, "auto", None, at)
            )
        for agent_id in {c.assignee_id for c in changes}:
            await db.fetch(
                "UPDATE admin SET last_routed_at = {} WHERE id = {}",
                turns[str(agent_id)],
                agent_id,
            )
    await assignment.tell(ctx, changes)
    return len(changes)


def _at(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _choose(
    mode: str,
    agents: list[uuid.UUID],
    open_now: dict[str, int],
    turns: dict[str, dt.datetime | None],
    cap: int,
) -> uuid.UUID | None:
    """The next agent under the cap: the one routed to longest ago (never first), or,
    for least_open, the one with the fewest open sessions first."""
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    under = [a for a in agents if open_now.get(str(a), 0) < cap]
    if not under:
        return None

    def order(agent: uuid.UUID) -> tuple[int, dt.datetime, str]:
        load = open_now.get(str(agent), 0) if mode == "least_open" else 0
        return (load, turns.get(str(agent)) or never, str(agent))

    return min(under, key=order)


async def requeue(
    ctx: Services, agent_ids: list[uuid.UUID], *, assigned_before: dt.datetime | None
) -> int:
    """Return these owners' open sessions to the queue (reason `unavailable`). Only
    sessions assigned before `assigned_before`, when given: one handed to a member who is
    momentarily away gets its own grace. Safe with workers racing: each session's row is
    changed by one of them."""
    if not agent_ids:
        return 0
    now = dt.datetime.now(dt.UTC)
    changes = []
    async with db.transaction():
        where = f"status = 'active' AND assignee_id IN ({_marks(agent_ids)})"
        args: list[Any] = list(agent_ids)
        if assigned_before is not None:
            where += " AND assigned_at <= {}"
            args.append(assigned_before)
        skip = " FOR UPDATE SKIP LOCKED" if db.is_postgres() else ""
        rows = await db.fetch(
            f"SELECT id, assignee_id FROM chat_session WHERE {where} ORDER BY created_at{skip}",
            *args,
        )
        for row in rows:
            changes.append(
                await assignment.change_owner(
                    as_uuid(row["id"]),
                    None,
                    as_uuid(row["assignee_id"]),
                    "unavailable",
                    None,
                    now,
                )
            )
    await assignment.tell(ctx, changes)
    return len(changes)


async def requeue_unavailable(ctx: Services) -> int:
    """Owners who are neither connected (within the grace) nor keeping their sessions by
    their switch lose their open sessions to the queue."""
    if not routing_on(ctx):
        return 0
    rows = await db.fetch(
        "SELECT DISTINCT assignee_id FROM chat_session"
        " WHERE status = 'active' AND assignee_id IS NOT NULL"
    )
    owners = [str(r["assignee_id"]) for r in rows]
    if not owners:
        return 0
    statuses = await availability.staff_statuses(owners)
    live = await availability.connected(ctx, owners)
    gone = [
        uuid.UUID(a) for a in owners if statuses.get(a) not in availability.KEEPING or a not in live
    ]
    grace = dt.timedelta(seconds=ctx.settings.availability_grace)
    return await requeue(ctx, gone, assigned_before=dt.datetime.now(dt.UTC) - grace)


async def sweep(ctx: Services) -> None:
    """Per worker, every tick: tell staff who lapsed, requeue what unavailable owners
    hold, route what waits. Any number of workers may run it at once."""
    for agent_id in await availability.lapsed(ctx):
        await availability.announce(ctx, agent_id)
    if not routing_on(ctx):
        return
    await requeue_unavailable(ctx)
    if await db.fetch_one(
        "SELECT id FROM chat_session WHERE assignee_id IS NULL AND status = 'active' LIMIT 1"
    ):
        await drain(ctx)


async def queue_position(ctx: Services, session_id: uuid.UUID) -> int | None:
    """Where a waiting session stands in the routing queue (1: next), None when it has
    an owner, is closed, or routing is off (nobody is coming in any order)."""
    if not routing_on(ctx):
        return None
    row = await db.fetch_one(
        "SELECT count(*) AS n FROM chat_session s JOIN chat_session w"
        " ON w.assignee_id IS NULL AND w.status = 'active'"
        " AND (w.created_at < s.created_at OR (w.created_at = s.created_at AND w.id <= s.id))"
        " WHERE s.id = {} AND s.assignee_id IS NULL AND s.status = 'active'",
        session_id,
    )
    n = int(row["n"]) if row else 0
    return n or None


async def agent_connected(ctx: Services, agent_id: uuid.UUID) -> None:
    """A member's first live socket: they may now be available."""
    await availability.announce(ctx, agent_id)
    await drain(ctx)


async def status_changed(ctx: Services, agent_id: uuid.UUID, old: str, new: str) -> AgentPresence:
    """After a member flips their switch: `offline` hands their sessions back at once (a
    decision, not a dropped line: no grace), `online` may take waiting ones."""
    event = await availability.announce(ctx, agent_id)
    if new == "offline" and routing_on(ctx):
        await requeue(ctx, [agent_id], assigned_before=None)
    await drain(ctx)
    return event
