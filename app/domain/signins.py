"""Sign-in sessions: one per login, named by every staff token, revocable one by one.

Every way credentials end goes through `end`: log out, log out everywhere, revoke one
sign-in, password change or reset (ends the others), deactivation, an admin's force
logout. It marks the rows and publishes one Revocation, which drops the cached account
checks and disconnects the matching sockets on every worker.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from app import db
from app.auth import Principal, require_admin
from app.context import Services
from app.errors import InvalidToken, NotFound
from app.models import MAX_DEVICE, Admin, SignedIn, SignIn, as_uuid
from app.revocation import Revocation

ADMIN_COLUMNS = "id, email, full_name, role, created_at"


async def issue(ctx: Services, admin: dict[str, Any], *, device: str | None, ip: str) -> SignedIn:
    """A new sign-in for `admin` (a row of ADMIN_COLUMNS): `{token, admin}`, as login
    has always answered."""
    now = dt.datetime.now(dt.UTC)
    sign_in = uuid.uuid4()
    admin_id = as_uuid(admin["id"])
    await db.fetch(
        "INSERT INTO sign_in (id, admin_id, device, ip, created_at, last_seen_at)"
        " VALUES ({}, {}, {}, {}, {}, {})",
        sign_in,
        admin_id,
        (device or "")[:MAX_DEVICE] or None,
        ip[:64],
        now,
        now,
    )
    await db.fetch("UPDATE admin SET last_seen_at = {} WHERE id = {}", now, admin_id)
    return SignedIn(token=ctx.tokens.admin(admin_id, sign_in), admin=Admin.of(admin))


async def listing(ctx: Services, principal: Principal | None) -> list[SignIn]:
    """The caller's live sign-ins, newest first; `current` marks this token's."""
    principal = require_admin(principal)
    rows = await db.fetch(
        "SELECT id, device, ip, created_at, last_seen_at FROM sign_in"
        " WHERE admin_id = {} AND revoked_at IS NULL ORDER BY created_at DESC, id",
        principal.subject,
    )
    return [SignIn.of(row, str(row["id"]) == str(principal.sign_in)) for row in rows]


async def revoke_own(ctx: Services, principal: Principal | None, sign_in: uuid.UUID) -> None:
    """End one of the caller's sign-ins; another account's answers as unknown."""
    principal = require_admin(principal)
    row = await db.fetch_one(
        "SELECT id FROM sign_in WHERE id = {} AND admin_id = {} AND revoked_at IS NULL",
        sign_in,
        principal.subject,
    )
    if row is None:
        raise NotFound("Sign-in session not found")
    await end(ctx, "logout", sign_in=sign_in, account=principal.subject)


async def logout(ctx: Services, principal: Principal | None) -> None:
    principal = _signed_in(principal)
    await end(ctx, "logout", sign_in=principal.sign_in, account=principal.subject)


async def logout_everywhere(ctx: Services, principal: Principal | None) -> None:
    principal = _signed_in(principal)
    await end(ctx, "logout_all", account=principal.subject, everywhere=True)


def _signed_in(principal: Principal | None) -> Principal:
    principal = require_admin(principal)
    if principal.sign_in is None:
        raise InvalidToken("This credential has no sign-in session")
    return principal


async def end(
    ctx: Services,
    reason: str,
    *,
    account: uuid.UUID,
    sign_in: uuid.UUID | None = None,
    everywhere: bool = False,
    keep: uuid.UUID | None = None,
) -> None:
    """Revoke one sign-in (`sign_in`), or all of `account`'s (`everywhere`) except
    `keep`, then tell every worker."""
    now = dt.datetime.now(dt.UTC)
    if everywhere:
        await db.fetch(
            "UPDATE sign_in SET revoked_at = {} WHERE admin_id = {} AND revoked_at IS NULL"
            " AND id <> {}",
            now,
            account,
            keep or uuid.UUID(int=0),
        )
        revocation = Revocation(reason, account=account, keep=keep)
    else:
        assert sign_in is not None
        await db.fetch(
            "UPDATE sign_in SET revoked_at = {} WHERE id = {} AND revoked_at IS NULL",
            now,
            sign_in,
        )
        revocation = Revocation(reason, sign_in=sign_in)
    await ctx.revocations.publish(revocation)
