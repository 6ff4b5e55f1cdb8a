"""Who is typing and whether the customer is online: TTL state shared by all workers.

Typing is a key per (session, side) that lives `typing_ttl` seconds unless refreshed, plus
a deadline in one sorted set. Every worker sweeps that set, so when a typer vanishes (tab
closed, worker killed) some worker tells the room "stopped typing" within about a TTL.
Presence works the same way: a customer's connections are members with an expiry, kept
alive by their worker's heartbeat; when a killed worker's members expire, a sweep on a
surviving worker announces the customer offline.
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from app.auth import Principal, require_session_access
from app.broadcast import ADMINS_ROOM, session_room
from app.context import Services
from app.errors import SenderMismatch
from app.models import SIDES, Presence, SenderType, Typing, TypingEvent, as_uuid

TYPING_DEADLINES = "typing:deadlines"
PRESENCE_DEADLINES = "presence:deadlines"


def _typing_key(session_id: str, side: str) -> str:
    return f"typing:{session_id}:{side}"


def _presence_key(session_id: str) -> str:
    return f"presence:{session_id}"


def typing_rooms(session_id: uuid.UUID | str, side: str) -> list[str]:
    """Who hears a typing change: the session's room, and for a customer's typing every
    staff socket too, so an inbox shows "typing…" on rows it has not opened."""
    rooms = [session_room(session_id)]
    if side == "user":
        rooms.append(ADMINS_ROOM)
    return rooms


async def set_typing(
    ctx: Services,
    principal: Principal | None,
    *,
    session_id: uuid.UUID,
    is_typing: bool,
    claimed_side: str | None,
    connection: str,
) -> TypingEvent:
    principal = require_session_access(principal, session_id)
    side = principal.sender_type
    if claimed_side is not None and claimed_side != side:
        raise SenderMismatch(f"This token types as '{side}', not '{claimed_side}'")
    key = _typing_key(str(session_id), side)
    ttl = ctx.settings.typing_ttl
    # Told to the room on a change only: a connection repeating `typing` refreshes the
    # TTL without making every other socket in the room hear it again.
    member = f"{session_id}:{side}"
    if is_typing:
        changed = await ctx.state.swap(key, connection, ttl) != connection
        await ctx.state.schedule(TYPING_DEADLINES, member, time.time() + ttl)
    else:
        changed = await ctx.state.take(key) is not None
        if changed:
            # Announced here: the sweep must not find the deadline and announce it again.
            await ctx.state.unschedule(TYPING_DEADLINES, member)
    event = TypingEvent(sessionId=session_id, userType=side, isTyping=is_typing)
    if changed:
        await _tell_typing(ctx, event, skip=connection)
    return event


async def _tell_typing(ctx: Services, event: TypingEvent, skip: str | None = None) -> None:
    """The one way a typing change is told (`user_typing`), to `typing_rooms`."""
    await ctx.broadcaster.emit(
        "user_typing", event, typing_rooms(event.sessionId, event.userType), skip=skip
    )


def _stopped(session_id: str, side: str) -> TypingEvent:
    """A typer's stop, from the (session, side) its state keys name."""
    return TypingEvent(
        sessionId=as_uuid(session_id), userType=cast(SenderType, side), isTyping=False
    )


async def typing_now(ctx: Services, session_id: uuid.UUID) -> Typing:
    user, admin = await ctx.state.get_many([_typing_key(str(session_id), s) for s in SIDES])
    return Typing(user=user is not None, admin=admin is not None)


async def clear_typing_of(ctx: Services, connection: str, sessions: list[tuple[str, str]]) -> None:
    """A connection closed: stop its typing at once in the sessions it was typing in."""
    for session_id, side in sessions:
        key = _typing_key(session_id, side)
        values = await ctx.state.get_many([key])
        if values[0] != connection:
            continue
        await ctx.state.delete(key)
        await ctx.state.unschedule(TYPING_DEADLINES, f"{session_id}:{side}")
        await _tell_typing(ctx, _stopped(session_id, side))


async def sweep(ctx: Services) -> int:
    """Announce what ran out of TTL (typing, customer presence); returns how many."""
    return await _sweep_typing(ctx) + await _sweep_presence(ctx)


async def _sweep_typing(ctx: Services) -> int:
    announced = 0
    for member in await ctx.state.take_due(TYPING_DEADLINES, time.time()):
        session_id, _, side = member.rpartition(":")
        left = await ctx.state.ttl(_typing_key(session_id, side))
        if left > 0:
            # Refreshed meanwhile: watch the new deadline instead.
            await ctx.state.schedule(TYPING_DEADLINES, member, time.time() + left)
            continue
        await _tell_typing(ctx, _stopped(session_id, side))
        announced += 1
    return announced


async def customer_online(ctx: Services, session_id: uuid.UUID, connection: str) -> None:
    """Count this connection; the first one of the session announces the customer online."""
    live = await customer_heartbeat(ctx, session_id, connection)
    if live == 1:
        await _announce(ctx, session_id, True)


async def customer_heartbeat(ctx: Services, session_id: uuid.UUID, connection: str) -> int:
    ttl = ctx.settings.presence_ttl
    live = await ctx.state.mark(_presence_key(str(session_id)), connection, ttl)
    await ctx.state.schedule(PRESENCE_DEADLINES, str(session_id), time.time() + ttl)
    return live


async def customer_heartbeats(ctx: Services, connections: list[tuple[uuid.UUID, str]]) -> None:
    """`customer_heartbeat` for a worker's connections at once: an idle worker's beat is
    two Redis round trips per batch instead of two per connection."""
    if not connections:
        return
    ttl = ctx.settings.presence_ttl
    sessions = [str(s) for s, _ in connections]
    await ctx.state.mark_many(
        [(_presence_key(s), sid) for s, (_, sid) in zip(sessions, connections, strict=True)], ttl
    )
    await ctx.state.schedule_many(PRESENCE_DEADLINES, dict.fromkeys(sessions, time.time() + ttl))


async def customer_offline(ctx: Services, session_id: uuid.UUID, connection: str) -> None:
    live = await ctx.state.unmark(_presence_key(str(session_id)), connection)
    if live == 0:
        await ctx.state.unschedule(PRESENCE_DEADLINES, str(session_id))
        await _announce(ctx, session_id, False)


async def _sweep_presence(ctx: Services) -> int:
    announced = 0
    for member in await ctx.state.take_due(PRESENCE_DEADLINES, time.time()):
        session_id = uuid.UUID(member)
        if await is_online(ctx, session_id):
            # Another connection is still alive: watch again a TTL from now.
            await ctx.state.schedule(
                PRESENCE_DEADLINES, member, time.time() + ctx.settings.presence_ttl
            )
            continue
        await _announce(ctx, session_id, False)
        announced += 1
    return announced


async def customers_online(ctx: Services, session_ids: list[uuid.UUID]) -> list[bool]:
    """`is_online` for a page of sessions in one read (no pruning write per session): an
    inbox loaded after a reload shows every row's dot right before any event arrives."""
    counts = await ctx.state.count_live([_presence_key(str(s)) for s in session_ids])
    return [n > 0 for n in counts]


async def is_online(ctx: Services, session_id: uuid.UUID) -> bool:
    return (await customers_online(ctx, [session_id]))[0]


async def _announce(ctx: Services, session_id: uuid.UUID, online: bool) -> None:
    event = Presence(sessionId=session_id, online=online)
    await ctx.broadcaster.emit("customer_presence", event, [session_room(session_id), ADMINS_ROOM])
