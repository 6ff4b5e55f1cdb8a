"""Labels on a session: staff tag conversations and filter the inbox by a tag.

Setting labels replaces the whole set (idempotent: the same request twice leaves the
same set and tells staff the same thing). Labels are private (app/domain/visibility.py):
the change goes to staff as `session_updated`, never to the session's room.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from app import db
from app.auth import Principal
from app.context import Services
from app.domain import sessions, visibility
from app.domain.visibility import Kind
from app.errors import BadRequest
from app.models import MAX_LABEL, MAX_LABELS, LabelUse, Session

# Lower-case words joined by - _ : or . (a label is a tag, not a sentence).
LABEL = re.compile(r"[a-z0-9][a-z0-9_.:-]*")


def normalise(raw: Any) -> list[str]:
    """A set of labels from a request: trimmed, lower-cased, deduplicated, sorted."""
    if not isinstance(raw, list):
        raise BadRequest("labels must be a list", fields={"labels": "must be a list"})
    out: set[str] = set()
    for item in raw:
        label = item.strip().lower() if isinstance(item, str) else None
        if label is None or not (0 < len(label) <= MAX_LABEL) or not LABEL.fullmatch(label):
            raise BadRequest(
                f"each label is 1-{MAX_LABEL} characters: a-z, 0-9, and - _ : . inside",
                fields={"labels": "invalid label"},
            )
        out.add(label)
    if len(out) > MAX_LABELS:
        raise BadRequest(
            f"at most {MAX_LABELS} labels",
            fields={"labels": f"at most {MAX_LABELS}"},
        )
    return sorted(out)


async def replace(
    ctx: Services, principal: Principal | None, session_id: uuid.UUID, labels: list[str]
) -> Session:
    """Make the session's labels exactly `labels`; answers the session as staff see it."""
    visibility.require(principal, Kind.LABELS)
    async with db.transaction():
        if db.is_postgres():
            # Two replaces at once end with one of the two sets, never their union.
            await db.fetch("SELECT id FROM chat_session WHERE id = {} FOR UPDATE", session_id)
        row = await sessions.load(session_id)
        marks = ", ".join("{}" for _ in labels)
        keep = f" AND label NOT IN ({marks})" if labels else ""
        await db.fetch(
            f"DELETE FROM session_label WHERE session_id = {{}}{keep}", session_id, *labels
        )
        for label in labels:
            await db.fetch(
                "INSERT INTO session_label (id, session_id, label) VALUES ({}, {}, {})"
                " ON CONFLICT (session_id, label) DO NOTHING",
                uuid.uuid4(),
                session_id,
                label,
            )
    body = (await sessions.with_summaries([row]))[0]
    await sessions.broadcast_updated(ctx, body, to_customer=False)
    return body


async def in_use(principal: Principal | None) -> list[LabelUse]:
    """Every label on some session, with how many sessions carry it (for pickers)."""
    visibility.require(principal, Kind.LABELS)
    rows = await db.fetch(
        "SELECT label, count(*) AS n FROM session_label GROUP BY label ORDER BY label"
    )
    return [LabelUse(label=r["label"], sessions=int(r["n"])) for r in rows]
