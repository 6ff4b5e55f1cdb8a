"""Canned responses: reusable replies staff pick by short code, with placeholders
(`{{customer.name}}`, `{{agent.name}}`, …) filled for the session they answer."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from app import db
from app.auth import Principal, require_admin
from app.context import Services
from app.domain import sessions
from app.errors import BadRequest, NotFound, ShortCodeTaken
from app.models import MAX_SHORT_CODE, Canned

COLUMNS = "id, short_code, title, content, created_by, created_at, updated_at"
SHORT_CODE = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_SHORT_CODE - 1}}}")
PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_.]+)\s*\}\}")


def _customer(session: Mapping[str, Any], field: str) -> str:
    return str(session.get(field) or "")


# Every placeholder there is, and what fills it: (session row, staff principal) -> text.
PLACEHOLDERS: dict[str, Any] = {
    "customer.name": lambda s, p: _customer(s, "user_name"),
    "customer.email": lambda s, p: _customer(s, "user_email"),
    "customer.id": lambda s, p: _customer(s, "user_id"),
    "agent.name": lambda s, p: p.name or "",
    "session.id": lambda s, p: str(s["id"]),
}


def check_short_code(value: str) -> str:
    code = value.strip().lstrip("/").lower()
    if not SHORT_CODE.fullmatch(code):
        raise BadRequest(
            f"shortCode is 1-{MAX_SHORT_CODE} characters: a-z, 0-9, - and _",
            fields={"shortCode": "invalid short code"},
        )
    return code


def check_placeholders(content: str) -> None:
    """A typo in a placeholder would reach customers as `{{custmer.name}}`: refused here."""
    unknown = sorted({m for m in PLACEHOLDER.findall(content) if m not in PLACEHOLDERS})
    if unknown:
        raise BadRequest(
            f"unknown placeholder {{{{{unknown[0]}}}}}; known: "
            + ", ".join(f"{{{{{k}}}}}" for k in PLACEHOLDERS),
            fields={"content": "unknown placeholder"},
        )


def fill(content: str, session: Mapping[str, Any], principal: Principal) -> str:
    return PLACEHOLDER.sub(
        lambda m: (
            str(PLACEHOLDERS[m.group(1)](session, principal))
            if m.group(1) in PLACEHOLDERS
            else m.group(0)
        ),
        content,
    )


async def create(
    ctx: Services, principal: Principal | None, *, short_code: str, title: str | None, content: str
) -> Canned:
    author = require_admin(principal)
    code = check_short_code(short_code)
    check_placeholders(content)
    now = dt.datetime.now(dt.UTC)
    try:
        row = await db.fetch_one(
            f"INSERT INTO canned_response ({COLUMNS})"
            f" VALUES ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}) RETURNING {COLUMNS}",
            uuid.uuid4(),
            code,
            title,
            content,
            author.subject,
            now,
            now,
        )
    except Exception as exc:
        if db.is_unique_violation(exc):
            raise ShortCodeTaken(f"/{code} is taken") from None
        raise
    assert row is not None
    return Canned.of(row)


async def update(
    ctx: Services,
    principal: Principal | None,
    canned_id: uuid.UUID,
    *,
    short_code: str | None,
    title: str | None,
    content: str | None,
) -> Canned:
    require_admin(principal)
    sets: list[str] = []
    args: list[object] = []
    if short_code is not None:
        sets.append("short_code = {}")
        args.append(check_short_code(short_code))
    if title is not None:
        sets.append("title = {}")
        args.append(title)
    if content is not None:
        check_placeholders(content)
        sets.append("content = {}")
        args.append(content)
    sets.append("updated_at = {}")
    args.append(dt.datetime.now(dt.UTC))
    try:
        row = await db.fetch_one(
            f"UPDATE canned_response SET {', '.join(sets)} WHERE id = {{}} RETURNING {COLUMNS}",
            *args,
            canned_id,
        )
    except Exception as exc:
        if db.is_unique_violation(exc):
            raise ShortCodeTaken() from None
        raise
    if row is None:
        raise NotFound("Canned response not found")
    return Canned.of(row)


async def delete(ctx: Services, principal: Principal | None, canned_id: uuid.UUID) -> None:
    require_admin(principal)
    row = await db.fetch_one("DELETE FROM canned_response WHERE id = {} RETURNING id", canned_id)
    if row is None:
        raise NotFound("Canned response not found")


async def search(
    ctx: Services,
    principal: Principal | None,
    *,
    q: str | None,
    session_id: uuid.UUID | None,
    limit: int,
) -> list[Canned]:
    """Short-code matches first (what `/ref` in the composer means), then text matches;
    with a session, each item also carries `rendered`, its placeholders filled for it."""
    staff = require_admin(principal)
    session = await sessions.load(session_id) if session_id is not None else None
    if q:
        needle = q.strip().lstrip("/").lower()
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await db.fetch(
            f"SELECT {COLUMNS} FROM canned_response"
            " WHERE short_code LIKE {} ESCAPE '\\'"
            " OR lower(coalesce(title, '')) LIKE {} ESCAPE '\\'"
            " OR lower(content) LIKE {} ESCAPE '\\'"
            " ORDER BY CASE WHEN short_code LIKE {} ESCAPE '\\' THEN 0 ELSE 1 END, short_code"
            " LIMIT {}",
            pattern,
            pattern,
            pattern,
            pattern.removeprefix("%"),
            limit,
        )
    else:
        rows = await db.fetch(
            f"SELECT {COLUMNS} FROM canned_response ORDER BY short_code LIMIT {{}}", limit
        )
    items = [Canned.of(r) for r in rows]
    if session is None:
        return items
    return [msgspec.structs.replace(c, rendered=fill(c.content, session, staff)) for c in items]
