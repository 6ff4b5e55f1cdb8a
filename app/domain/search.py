"""Search (staff only): messages and sessions by text, newest first, cursor-paged.

PostgreSQL: words go through the generated `message.search` tsvector column (config
'english', spelled out so the column's expression is IMMUTABLE and the GIN index serves
the query; Chatwoot's search timed out because its query named a config the index did
not), fragments such as order numbers or emails through `pg_trgm`'s GIN index with
ILIKE. No time window: the indexes make the whole history searchable. The SQL is built
by `message_query` / `session_query`, which the EXPLAIN test and bench/search.py run too.
SQLite (embedded mode): the same filters with LIKE, a scan: fine for one desk's history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app import db
from app.auth import Principal, require_admin
from app.context import Services
from app.domain import sessions
from app.domain.sessions import MESSAGE_COLUMNS
from app.errors import BadRequest
from app.models import MAX_QUERY, Hit, HitSession, Message, Session, iso

CONFIG = "english"
MODES = ("auto", "words", "fragment")
# pg_trgm needs three characters to use its index.
MIN_FRAGMENT = 3
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# ts_headline's markers: control characters no message is expected to carry; the
# snippet is HTML-escaped and they become <mark> … </mark>.
START, STOP = "\x02", "\x03"
HEADLINE_OPTIONS = f"StartSel={START}, StopSel={STOP}, MaxWords=24, MinWords=8, MaxFragments=2"
SNIPPET_RADIUS = 60
# Anything but letters and spaces (digits, @ . - # _) makes `auto` look for a fragment.
FRAGMENT_HINT = re.compile(r"[^\w\s]|\d")
MESSAGE_FIELDS = [c.strip() for c in MESSAGE_COLUMNS.split(",")]
SESSION_FIELDS = (
    "id",
    "user_id",
    "user_name",
    "user_email",
    "status",
    "last_activity_at",
    "assignee_id",
)
# The customer's searchable text; on PostgreSQL the session_who table holds it (migration
# 10:30:00), maintained by a trigger from this same expression.
WHO = "(s.user_id || ' ' || coalesce(s.user_name, '') || ' ' || coalesce(s.user_email, ''))"


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    label: str | None = None
    # As asked: `me`, `unassigned`, `all` or a member's id; `owner` is it resolved.
    assignee: str | None = None
    owner: uuid.UUID | str | None = None


def resolved(filters: Filters, principal: Principal) -> Filters:
    """The filters with `assignee` turned into an owner to match (400 if malformed)."""
    owner = sessions.assignee_filter(filters.assignee)
    if owner == "me":
        owner = principal.subject
    return dataclasses.replace(filters, owner=None if owner == "all" else owner)


def mode_of(q: str, mode: str) -> str:
    """`auto`: a query with digits or punctuation (an order number, an email) is a
    fragment; plain words are words."""
    if mode != "auto":
        return mode
    return "fragment" if FRAGMENT_HINT.search(q) else "words"


def check_query(q: str | None, mode: str) -> tuple[str, str]:
    text = (q or "").strip()
    if not text:
        raise BadRequest("q is required", details={"fields": {"q": "is required"}})
    if len(text) > MAX_QUERY:
        raise BadRequest(
            f"q must be at most {MAX_QUERY} characters",
            details={"fields": {"q": f"at most {MAX_QUERY} characters"}},
        )
    resolved = mode_of(text, mode)
    if resolved == "fragment" and len(text) < MIN_FRAGMENT:
        raise BadRequest(
            f"a fragment needs {MIN_FRAGMENT}+ characters",
            details={"fields": {"q": f"needs {MIN_FRAGMENT}+ characters"}},
        )
    return text, resolved


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(filters: Filters, alias: str, args: list[object]) -> list[str]:
    where = []
    if filters.status is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM chat_session fs WHERE fs.id = {alias}.session_id"
            " AND fs.status = {})"
        )
        args.append(filters.status)
    if filters.label is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM session_label fl WHERE fl.session_id = {alias}.session_id"
            " AND fl.label = {})"
        )
        args.append(filters.label)
    if filters.owner == "unassigned":
        where.append(
            f"EXISTS (SELECT 1 FROM chat_session fa WHERE fa.id = {alias}.session_id"
            " AND fa.assignee_id IS NULL)"
        )
    elif filters.owner is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM chat_session fa WHERE fa.id = {alias}.session_id"
            " AND fa.assignee_id = {})"
        )
        args.append(filters.owner)
    return where


def message_query(
    text: str,
    mode: str,
    filters: Filters,
    limit: int,
    before: tuple[dt.datetime, uuid.UUID] | None,
    postgres: bool = True,
) -> tuple[str, list[object]]:
    """The SQL of one page of message hits (newest first, `limit` + 1 rows) and its args.

    The page is chosen in an inner query that reads only the index and the rows it
    needs; the headline and the session are added to that page alone.
    """
    args: list[object] = []
    where: list[str]
    if not postgres:
        needles = text.split() if mode == "words" else [text]
        where = ["m.content LIKE {} ESCAPE '\\'" for _ in needles]
        args += [like_pattern(n) for n in needles]
    elif mode == "words":
        where = [f"m.search @@ websearch_to_tsquery('{CONFIG}', {{}})"]
        args.append(text)
    else:
        where = ["m.content ILIKE {} ESCAPE '\\'"]
        args.append(like_pattern(text))
    where += _filters(filters, "m", args)
    if before is not None:
        where.append("(m.created_at < {} OR (m.created_at = {} AND m.id < {}))")
        args += [before[0], before[0], before[1]]
    inner_cols = ", ".join(f"m.{c}" for c in MESSAGE_FIELDS)
    headline = (
        f"ts_headline('{CONFIG}', p.content, websearch_to_tsquery('{CONFIG}', {{}}),"
        f" '{HEADLINE_OPTIONS}')"
        if postgres and mode == "words"
        else "NULL"
    )
    if headline != "NULL":
        args_head: list[object] = [text]
    else:
        args_head = []
    session_cols = ", ".join(f"s.{c} AS s_{c}" for c in SESSION_FIELDS)
    sql = (
        f"SELECT p.*, {headline} AS headline, {session_cols} FROM ("
        f"SELECT {inner_cols} FROM message m WHERE {' AND '.join(where)}"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT {}"
        ") AS p JOIN chat_session s ON s.id = p.session_id"
        " ORDER BY p.created_at DESC, p.id DESC"
    )
    # The headline's placeholder comes first in the text, so its argument does too.
    return sql, [*args_head, *args, limit + 1]


def session_query(
    text: str,
    filters: Filters,
    limit: int,
    before: tuple[dt.datetime, uuid.UUID] | None,
    postgres: bool = True,
) -> tuple[str, list[object]]:
    """Sessions whose customer (id, name, email) contains the text, newest activity first.

    PostgreSQL matches `session_who.who`, the same text kept off chat_session (whose
    every message UPDATE would re-index it) by a trigger; SQLite scans WHO itself.
    """
    args: list[object] = [like_pattern(text)]
    where = ["w.who ILIKE {} ESCAPE '\\'" if postgres else f"{WHO} LIKE {{}} ESCAPE '\\'"]
    if filters.status is not None:
        where.append("s.status = {}")
        args.append(filters.status)
    if filters.label is not None:
        where.append(
            "EXISTS (SELECT 1 FROM session_label fl WHERE fl.session_id = s.id AND fl.label = {})"
        )
        args.append(filters.label)
    if filters.owner == "unassigned":
        where.append("s.assignee_id IS NULL")
    elif filters.owner is not None:
        where.append("s.assignee_id = {}")
        args.append(filters.owner)
    if before is not None:
        where.append("(s.last_activity_at < {} OR (s.last_activity_at = {} AND s.id < {}))")
        args += [before[0], before[0], before[1]]
    source = (
        "session_who w JOIN chat_session s ON s.id = w.session_id" if postgres else "chat_session s"
    )
    sql = (
        f"SELECT s.id FROM {source} WHERE "
        + " AND ".join(where)
        + " ORDER BY s.last_activity_at DESC, s.id DESC LIMIT {}"
    )
    return sql, [*args, limit + 1]


def encode_cursor(at: Any, row_id: Any) -> str:
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    micros = (at - EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}_{row_id}"


def decode_cursor(cursor: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        micros, rid = cursor.split("_", 1)
        return EPOCH + dt.timedelta(microseconds=int(micros)), uuid.UUID(rid)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            "before is not a valid cursor", details={"fields": {"before": "invalid cursor"}}
        ) from None


def mark(snippet: str) -> str:
    """An escaped snippet whose only markup is <mark> around the hits."""
    return html.escape(snippet).replace(START, "<mark>").replace(STOP, "</mark>")


def fragment_snippet(content: str, text: str, mode: str) -> str:
    """The content around the first hit (and every hit inside that window), marked."""
    needles = text.split() if mode == "words" else [text]
    low = content.lower()
    first = min((i for n in needles if (i := low.find(n.lower())) >= 0), default=0)
    start = max(0, first - SNIPPET_RADIUS)
    end = min(len(content), first + SNIPPET_RADIUS * 2)
    window = content[start:end]
    pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
    marked = pattern.sub(lambda m: f"{START}{m.group(0)}{STOP}", window)
    return ("…" if start > 0 else "") + mark(marked) + ("…" if end < len(content) else "")


def _hit(row: Mapping[str, Any], text: str, mode: str) -> Hit:
    headline = row["headline"]
    highlight = mark(headline) if headline else fragment_snippet(row["content"], text, mode)
    return Hit(
        message=Message.of(row),
        session=HitSession(
            id=row["s_id"],
            userId=row["s_user_id"],
            userName=row["s_user_name"],
            userEmail=row["s_user_email"],
            status=row["s_status"],
            lastActivityAt=iso(row["s_last_activity_at"]),
            assigneeId=row["s_assignee_id"],
        ),
        highlight=highlight,
        cursor=encode_cursor(row["created_at"], row["id"]),
    )


async def messages(
    ctx: Services,
    principal: Principal | None,
    *,
    q: str | None,
    mode: str = "auto",
    filters: Filters = Filters(),
    limit: int = 20,
    before: str | None = None,
) -> tuple[list[Hit], str | None]:
    """A page of `{message, session, highlight, cursor}`, newest first, and the next
    page's cursor if more remain."""
    staff = require_admin(principal)
    text, kind = check_query(q, mode)
    sql, args = message_query(
        text,
        kind,
        resolved(filters, staff),
        limit,
        decode_cursor(before),
        postgres=db.is_postgres(),
    )
    rows = await db.fetch(sql, *args)
    more = len(rows) > limit
    items = [_hit(r, text, kind) for r in rows[:limit]]
    return items, (items[-1].cursor if more and items else None)


async def sessions_by_text(
    ctx: Services,
    principal: Principal | None,
    *,
    q: str | None,
    filters: Filters = Filters(),
    limit: int = 20,
    before: str | None = None,
) -> tuple[list[Session], str | None]:
    """Sessions whose customer id, name or email contains `q`, as the inbox shows them."""
    staff = require_admin(principal)
    text, _ = check_query(q, "fragment")
    sql, args = session_query(
        text, resolved(filters, staff), limit, decode_cursor(before), db.is_postgres()
    )
    ids = [r["id"] for r in await db.fetch(sql, *args)]
    more = len(ids) > limit
    ids = ids[:limit]
    if not ids:
        return [], None
    marks = ", ".join("{}" for _ in ids)
    rows = await db.fetch(
        f"SELECT {sessions.SESSION_COLUMNS} FROM chat_session WHERE id IN ({marks})"
        " ORDER BY last_activity_at DESC, id DESC",
        *ids,
    )
    items = await sessions.with_summaries(list(rows))
    following = encode_cursor(rows[-1]["last_activity_at"], rows[-1]["id"]) if more else None
    return items, following
