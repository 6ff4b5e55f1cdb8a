"""Who can take conversations now: each member's own switch and their live sockets.

A member is *available* when their switch says `online` and at least one of their
sockets is alive on any worker. Each staff socket is a member of the Redis sorted set
`agent-sockets:<id>` with an expiry one grace (AVAILABILITY_GRACE) ahead, refreshed by
its worker's heartbeat. A clean disconnect refreshes it once more instead of removing it,
and a killed worker simply stops refreshing: either way the socket stops counting one
grace after its last sign of life, and a reconnect within the grace adds a new member
before the old one lapses, so a page reload or a phone in the background changes nothing.
No counter is kept that a killed process could leave wrong.

`busy` keeps the member's conversations but takes no new ones; `offline` hands them back
at once (app/domain/routing.py decides; this module only knows who is there).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import cast

from app import db
from app.auth import Principal, require_admin
from app.broadcast import ADMINS_ROOM
from app.context import Services
from app.models import AVAILABILITIES, AgentPresence, Availability, as_uuid

STATUSES = AVAILABILITIES
# Statuses that keep a member's conversations while connected.
KEEPING = ("online", "busy")
DEADLINES = "availability:deadlines"


def _sockets_key(agent_id: object) -> str:
    return f"agent-sockets:{agent_id}"


def heartbeat_every(grace: int) -> float:
    """Seconds between a worker's refreshes of its staff sockets: a quarter of the grace,
    so a busy event loop that is late by a beat or two does not lapse a live socket."""
    return max(grace / 4, 0.25)


async def socket_up(ctx: Services, agent_id: uuid.UUID, connection: str) -> bool:
    """Count a staff socket; True when it is the member's only live one (they were not
    connected a moment ago, so their availability may have changed)."""
    grace = ctx.settings.availability_grace
    live = await ctx.state.mark(_sockets_key(agent_id), connection, grace)
    await ctx.state.schedule(DEADLINES, str(agent_id), time.time() + grace)
    return live == 1


async def socket_down(ctx: Services, agent_id: uuid.UUID, connection: str) -> None:
    """A clean disconnect counts from now, like a dropped one: the socket lapses one grace
    later unless the member reconnects."""
    await socket_up(ctx, agent_id, connection)


async def heartbeat(ctx: Services, sockets: list[tuple[uuid.UUID, str]]) -> None:
    """A worker's staff sockets are alive: one grace more for each (two Redis calls)."""
    if not sockets:
        return
    grace = ctx.settings.availability_grace
    await ctx.state.mark_many([(_sockets_key(a), sid) for a, sid in sockets], grace)
    due = time.time() + grace
    await ctx.state.schedule_many(DEADLINES, {str(a): due for a, _ in sockets})


async def connected(ctx: Services, agent_ids: Iterable[object]) -> set[str]:
    """Which of these members have a live socket (within the grace) on any worker."""
    ids = [str(a) for a in agent_ids]
    counts = await ctx.state.count_live([_sockets_key(a) for a in ids])
    return {a for a, n in zip(ids, counts, strict=True) if n > 0}


async def lapsed(ctx: Services) -> list[uuid.UUID]:
    """Members whose last socket lapsed since the last sweep (each handed to one worker
    only): they are no longer connected, past the grace."""
    gone = []
    for member in await ctx.state.take_due(DEADLINES, time.time()):
        if await connected(ctx, [member]):
            # Refreshed meanwhile (a reconnect): look again a grace from now.
            await ctx.state.schedule(
                DEADLINES, member, time.time() + ctx.settings.availability_grace
            )
            continue
        gone.append(uuid.UUID(member))
    return gone


async def staff_statuses(agent_ids: Iterable[object] | None = None) -> dict[str, str]:
    """Active members' switches (all active members when no ids are given)."""
    ids = [str(a) for a in agent_ids] if agent_ids is not None else None
    if ids == []:
        return {}
    where = "deactivated_at IS NULL AND password <> ''"
    args: list[object] = []
    if ids is not None:
        where += f" AND id IN ({', '.join('{}' for _ in ids)})"
        args = [uuid.UUID(a) for a in ids]
    rows = await db.fetch(f"SELECT id, availability FROM admin WHERE {where}", *args)
    return {str(r["id"]): str(r["availability"]) for r in rows}


async def available_agents(ctx: Services) -> list[uuid.UUID]:
    """Members who may be given a conversation now: `online` and connected."""
    online = [a for a, status in (await staff_statuses()).items() if status == "online"]
    live = await connected(ctx, online)
    return [uuid.UUID(a) for a in online if a in live]


def presence_event(agent_id: object, status: str, is_connected: bool) -> AgentPresence:
    return AgentPresence(
        agentId=as_uuid(agent_id),
        status=cast(Availability, status),
        available=status == "online" and is_connected,
    )


async def announce(ctx: Services, agent_id: object) -> AgentPresence:
    """Tell staff a member's status and availability now (`agent_presence`)."""
    status = (await staff_statuses([agent_id])).get(str(agent_id), "offline")
    event = presence_event(agent_id, status, bool(await connected(ctx, [agent_id])))
    await ctx.broadcaster.emit("agent_presence", event, [ADMINS_ROOM])
    return event


async def set_status(
    ctx: Services, principal: Principal | None, status: str
) -> tuple[uuid.UUID, str, str]:
    """The member's own switch; returns (member, old status, new status). Routing reacts
    (app/domain/routing.py `status_changed`)."""
    principal = require_admin(principal)
    async with db.transaction():
        row = await db.fetch_one("SELECT availability FROM admin WHERE id = {}", principal.subject)
        old = str(row["availability"]) if row else "offline"
        await db.fetch(
            "UPDATE admin SET availability = {} WHERE id = {}", status, principal.subject
        )
    return principal.subject, old, status
