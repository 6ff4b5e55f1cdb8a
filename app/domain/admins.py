"""Admin accounts: bootstrap registration, login, lookup."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from app import db, serialize
from app.auth import Principal, require_admin
from app.context import Services
from app.errors import Conflict, Forbidden, RateLimited, Unauthorized

INVALID_LOGIN = "Invalid email or password"


async def register(
    ctx: Services,
    principal: Principal | None,
    *,
    email: str,
    password: str,
    full_name: str | None,
    ip: str,
) -> dict[str, Any]:
    """Open while no admin exists (the first one bootstraps the desk), then admin-only
    unless open sign-up is configured. Returns `{token, admin}`."""
    await ctx.limiter.hit("register", ip, ctx.settings.rate_register)
    # Checked before hashing too, so refused sign-ups cost no CPU.
    await _check_may_register(ctx, principal)
    hashed = await ctx.passwords.hash(password)
    now = dt.datetime.now(dt.UTC)
    async with _serialised():
        if db.is_postgres():
            # Serialise registrations so two racing "first admins" cannot both pass.
            await db.fetch("SELECT pg_advisory_xact_lock(4242) AS locked")
        await _check_may_register(ctx, principal)
        if await db.fetch_one("SELECT id FROM admin WHERE email = {}", email):
            raise Conflict("Email is already registered", code="email_taken")
        row = await db.fetch_one(
            "INSERT INTO admin (id, email, password, full_name, created_at, updated_at)"
            " VALUES ({}, {}, {}, {}, {}, {}) RETURNING id, email, full_name, created_at",
            uuid.uuid4(),
            email,
            hashed,
            full_name,
            now,
            now,
        )
    assert row is not None
    return {"token": ctx.tokens.admin(serialize.as_uuid(row["id"])), "admin": serialize.admin(row)}


def _serialised() -> Any:
    """A transaction that registrations take one at a time. SQLite's default (deferred)
    one would read first and fail "database is locked" on upgrading to write; IMMEDIATE
    takes the write lock at BEGIN, so racers wait their turn (PostgreSQL: advisory lock)."""
    if isinstance(db.engine(), SQLiteEngine):
        return db.transaction(transaction_type=TransactionType.immediate)
    return db.transaction()


async def _check_may_register(ctx: Services, principal: Principal | None) -> None:
    if ctx.settings.open_signup or (principal and principal.is_admin):
        return
    if await db.fetch_one("SELECT id FROM admin LIMIT 1"):
        raise Forbidden(
            "Registration is closed: ask an admin to create your account",
            code="registration_closed",
        )


async def login(ctx: Services, *, email: str, password: str, ip: str) -> dict[str, Any]:
    """One answer for an unknown email and a wrong password.

    Attempts are counted before the password is checked (a concurrent burst cannot slip
    past the limit) and a right password takes its attempt back. Limits: per (email, IP)
    and per IP they refuse (429); per email alone they only slow, so a stranger failing
    for an email from many addresses cannot lock its owner out.
    """
    settings = ctx.settings
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
        "SELECT id, email, password, full_name, created_at FROM admin WHERE email = {}", email
    )
    if not await ctx.passwords.verify(password, row["password"] if row else None) or row is None:
        raise Unauthorized(INVALID_LOGIN, code="invalid_credentials")
    await ctx.limiter.reset("login-pair", pair)
    await ctx.limiter.refund("login-ip", ip)
    await ctx.limiter.refund("login-email", email)
    return {"token": ctx.tokens.admin(serialize.as_uuid(row["id"])), "admin": serialize.admin(row)}


async def me(ctx: Services, principal: Principal | None) -> dict[str, Any]:
    principal = require_admin(principal)
    row = await db.fetch_one(
        "SELECT id, email, full_name, created_at FROM admin WHERE id = {}", principal.subject
    )
    if row is None:
        # A token for an admin that was since deleted is no longer a credential.
        raise Unauthorized("Invalid token", code="invalid_token")
    return serialize.admin(row)


async def count(ctx: Services) -> int:
    row = await db.fetch_one("SELECT count(*) AS n FROM admin")
    return int(row["n"]) if row else 0
