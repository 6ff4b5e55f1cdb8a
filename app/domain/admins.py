"""Staff accounts: bootstrap registration, login, lookup, password change."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from app import db
from app.auth import Principal, require_admin
from app.context import Services
from app.domain import signins
from app.domain.signins import ADMIN_COLUMNS
from app.errors import (
    AccountDeactivated,
    AdminRoleRequired,
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    LastAdmin,
    RateLimited,
    RegistrationClosed,
    WrongPassword,
)
from app.models import Admin, SignedIn, StaffRole
from app.validation import normalise_email

INVALID_LOGIN = "Invalid email or password"


async def register(
    ctx: Services,
    principal: Principal | None,
    *,
    email: str,
    password: str,
    full_name: str | None,
    ip: str,
    device: str | None = None,
    role: StaffRole = "admin",
) -> SignedIn:
    """Open while no admin exists (the first one bootstraps the desk), then for admins
    (by role; agents may not) unless open sign-up is configured. Creates an account with
    `role` (REST: always `admin`; the CLI may ask for an agent) and signs it in:
    `{token, admin}`. An agent is never a desk's first account: a desk without an active
    admin could manage no one (the rule `last_admin` keeps for demotions)."""
    await ctx.limiter.hit("register", ip, ctx.settings.rate_register)
    # Checked before hashing too, so refused sign-ups cost no CPU.
    await _check_may_register(ctx, principal)
    hashed = await ctx.passwords.hash(password)
    now = dt.datetime.now(dt.UTC)
    async with serialised():
        await _check_may_register(ctx, principal)
        if await db.fetch_one("SELECT id FROM admin WHERE email = {}", email):
            raise EmailTaken()
        if role != "admin" and not await db.fetch_one(
            "SELECT id FROM admin WHERE role = 'admin' AND deactivated_at IS NULL LIMIT 1"
        ):
            raise LastAdmin("A desk's first account must be an admin: create one first")
        row = await db.fetch_one(
            "INSERT INTO admin (id, email, password, full_name, created_at, updated_at, role)"
            f" VALUES ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}) RETURNING {ADMIN_COLUMNS}",
            uuid.uuid4(),
            email,
            hashed,
            full_name,
            now,
            now,
            role,
        )
    assert row is not None
    return await signins.issue(ctx, row, device=device, ip=ip)


@contextlib.asynccontextmanager
async def serialised() -> AsyncIterator[None]:
    """A transaction that changes to who is on the team take one at a time (two racing
    "first admins", two admins demoting each other). SQLite's default (deferred) one would
    read first and fail "database is locked" on upgrading to write; IMMEDIATE takes the
    write lock at BEGIN, so racers wait their turn (PostgreSQL: an advisory lock)."""
    if isinstance(db.engine(), SQLiteEngine):
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield
        return
    async with db.transaction():
        await db.fetch("SELECT pg_advisory_xact_lock(4242) AS locked")
        yield


async def _check_may_register(ctx: Services, principal: Principal | None) -> None:
    if ctx.settings.open_signup or (principal and principal.is_team_admin):
        return
    if principal is not None and principal.is_admin:
        raise AdminRoleRequired()
    if await db.fetch_one("SELECT id FROM admin LIMIT 1"):
        raise RegistrationClosed()


async def login(
    ctx: Services, *, email: str, password: str, ip: str, device: str | None = None
) -> SignedIn:
    """One answer for an unknown email and a wrong password; each success is a new
    sign-in session, and a deactivated account with the right password answers 403
    `account_deactivated`.

    Attempts are counted before the password is checked (a concurrent burst cannot slip
    past the limit) and a right password takes its attempt back. Limits: per (email, IP)
    and per IP they refuse (429); per email alone they only slow, so a stranger failing
    for an email from many addresses cannot lock its owner out.
    """
    settings = ctx.settings
    # Whatever way it is written, an address is counted and looked up as its one spelling.
    email = normalise_email(email)[0]
    pair = f"{email}|{ip}"
    await ctx.limiter.hit("login-ip", ip, settings.rate_login_failures_ip)
    try:
        await ctx.limiter.hit("login-pair", pair, settings.rate_login_failures)
    except RateLimited:
        await ctx.limiter.refund("login-ip", ip)
        raise
    failures, _ = await ctx.limiter.count("login-email", email)
    if failures > settings.rate_login_email_ceiling:
        await asyncio.sleep(settings.login_slowdown)
    row = await db.fetch_one(
        f"SELECT {ADMIN_COLUMNS}, password, deactivated_at FROM admin WHERE email = {{}}", email
    )
    if not await ctx.passwords.verify(password, row["password"] if row else None) or row is None:
        raise InvalidCredentials()
    await ctx.limiter.reset("login-pair", pair)
    await ctx.limiter.refund("login-ip", ip)
    await ctx.limiter.refund("login-email", email)
    if row["deactivated_at"] is not None:
        raise AccountDeactivated()
    return await signins.issue(ctx, row, device=device, ip=ip)


async def me(ctx: Services, principal: Principal | None) -> Admin:
    principal = require_admin(principal)
    row = await db.fetch_one(
        f"SELECT {ADMIN_COLUMNS} FROM admin WHERE id = {{}}", principal.subject
    )
    if row is None:
        # A token for an admin that was since deleted is no longer a credential.
        raise InvalidToken()
    return Admin.of(row)


async def count(ctx: Services) -> int:
    row = await db.fetch_one("SELECT count(*) AS n FROM admin")
    return int(row["n"]) if row else 0


async def change_password(
    ctx: Services, principal: Principal | None, *, current: str, new: str
) -> None:
    """Needs the current password; ends every other sign-in of the account (this one
    stays). Wrong guesses count against the account's login limit."""
    principal = require_admin(principal)
    row = await db.fetch_one("SELECT email, password FROM admin WHERE id = {}", principal.subject)
    if row is None:
        raise InvalidToken()
    # Counted first, as logins are: a stolen token cannot try passwords without limit.
    account = str(principal.subject)
    await ctx.limiter.hit("password", account, ctx.settings.rate_login_failures)
    if not await ctx.passwords.verify(current, row["password"]):
        raise WrongPassword()
    await ctx.limiter.refund("password", account)
    await set_password(ctx, principal.subject, new)
    await signins.end(
        ctx,
        "password_changed",
        account=principal.subject,
        everywhere=True,
        keep=principal.sign_in,
    )


async def set_password(ctx: Services, admin_id: uuid.UUID, password: str) -> None:
    hashed = await ctx.passwords.hash(password)
    now = dt.datetime.now(dt.UTC)
    await db.fetch(
        "UPDATE admin SET password = {}, updated_at = {} WHERE id = {}", hashed, now, admin_id
    )
