"""Joining a session's live feed: access, what was missed, and the live state now."""

from __future__ import annotations

import uuid
from typing import Any

from app.auth import Principal, require_session_access
from app.context import Services
from app.domain import messages, presence

CATCHUP_LIMIT = 500


async def join(
    ctx: Services, principal: Principal | None, session_id: uuid.UUID, after: int | None
) -> dict[str, Any]:
    """What a (re)joining client needs: the messages after its cursor (so a reconnect has
    no gap and no repeat), who is typing, and whether the customer is online."""
    if after is None:
        require_session_access(principal, session_id)
        await messages.load_session_exists(session_id)
        missed: list[dict[str, Any]] = []
        more = None
    else:
        missed, more = await messages.history(
            ctx, principal, session_id, limit=CATCHUP_LIMIT, after=after
        )
    return {
        "sessionId": str(session_id),
        "messages": missed,
        "hasMore": more is not None,
        "typing": await presence.typing_now(ctx, session_id),
        "customerOnline": await presence.is_online(ctx, session_id),
    }
