"""Joining a session's live feed: access, what was missed, and the live state now."""

from __future__ import annotations

import uuid

from app.auth import Principal, require_session_access
from app.context import Services
from app.domain import messages, notes, presence, routing
from app.models import JOIN_PAGE_MAX, Joined, Message, Typing
from app.outage import REDIS
from app.state import StateUnavailable


async def join(
    ctx: Services,
    principal: Principal | None,
    session_id: uuid.UUID,
    after: int | None,
    notes_after: int | None = None,
) -> Joined:
    """What a (re)joining client needs: the messages after its cursor (so a reconnect has
    no gap and no repeat), who is typing, whether the customer is online, and while
    routing is on and the session waits, its place in the queue; for staff who ask
    (`notesAfter`), the notes after their own cursor too (app/domain/notes.py decides
    through app/domain/visibility.py: a customer's ack never has them)."""
    if after is None:
        require_session_access(principal, session_id)
        await messages.require_session_exists(session_id)
        missed: list[Message] = []
        more = None
    else:
        missed, more = await messages.history(
            ctx,
            principal,
            session_id,
            limit=JOIN_PAGE_MAX,
            after=after,
            max_chars=ctx.settings.join_page_chars,
        )
    private, more_private = await notes.for_join(
        require_session_access(principal, session_id), session_id, notes_after, JOIN_PAGE_MAX
    )
    try:
        typing = await presence.typing_now(ctx, session_id)
        online = await presence.is_online(ctx, session_id)
    except StateUnavailable as exc:
        # The history is what a reconnecting client cannot do without; live state is
        # best effort, like the rate limits, while Redis is away.
        REDIS.failed("join without typing/presence", exc)
        typing, online = Typing(user=False, admin=False), False
    return Joined(
        sessionId=session_id,
        messages=missed,
        hasMore=more is not None,
        typing=typing,
        customerOnline=online,
        queuePosition=await routing.queue_position(ctx, session_id),
        notes=private,
        notesHasMore=more_private,
    )
