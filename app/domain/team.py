"""The team: invitations, roles, deactivation, one-time password-reset links.

Roles: `admin` manages the team and chats, `agent` chats. The last active admin can be
neither demoted nor deactivated (409 `last_admin`); changes that could race on that rule
run one at a time (the registration lock). Links (invitations and password resets) are
random tokens stored as their sha256, single use, expiring after INVITATION_TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any

from app import db
from app.auth import Principal, require_admin, require_team_admin
from app.context import Services
from app.domain import availability, routing, signins
from app.domain.admins import serialised
from app.domain.signins import ADMIN_COLUMNS
from app.errors import (
    AlreadyJoined,
    BadRequest,
    EmailTaken,
    InvitationExpired,
    InvitationNotFound,
    InvitationUsed,
    LastAdmin,
    NotFound,
    NotJoined,
)
from app.models import STAFF_ROLES, Invitation, Invited, Member, SignedIn, as_uuid, iso
from app.revocation import Revocation

MEMBER_COLUMNS = f"{ADMIN_COLUMNS}, password, deactivated_at, last_seen_at, availability"
INVITE = "invite"
RESET = "reset"
# The demo console's page that takes each kind of link (the token rides in the fragment,
# which browsers never send to a server, so it stays out of access logs).
LINK_PAGES = {INVITE: "/demo/agent#invite=", RESET: "/demo/agent#reset="}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _online_key(admin_id: object) -> str:
    return f"staff-online:{admin_id}"


async def staff_online(ctx: Services, admin_id: uuid.UUID, connection: str) -> None:
    """Count a staff socket (any worker) for the team list's `online`."""
    await ctx.state.mark(_online_key(admin_id), connection, ctx.settings.presence_ttl)


async def staff_offline(ctx: Services, admin_id: uuid.UUID, connection: str) -> None:
    await ctx.state.unmark(_online_key(admin_id), connection)


async def _is_online(ctx: Services, admin_id: object) -> bool:
    return (await ctx.state.count_live([_online_key(admin_id)]))[0] > 0


async def _member(ctx: Services, admin_id: uuid.UUID) -> Member:
    row = await db.fetch_one(f"SELECT {MEMBER_COLUMNS} FROM admin WHERE id = {{}}", admin_id)
    if row is None:
        raise NotFound("Team member not found")
    return (await _members(ctx, [row]))[0]


async def _members(ctx: Services, rows: list[dict[str, Any]]) -> list[Member]:
    live = await availability.connected(ctx, [r["id"] for r in rows])
    return [
        Member.of_member(
            row,
            await _is_online(ctx, row["id"]),
            available=row["availability"] == "online"
            and row["deactivated_at"] is None
            and str(row["id"]) in live,
        )
        for row in rows
    ]


async def listing(ctx: Services, principal: Principal | None) -> list[Member]:
    """Every member (staff may see who is on the team), admins first, then by name."""
    require_admin(principal)
    rows = await db.fetch(
        f"SELECT {MEMBER_COLUMNS} FROM admin"
        " ORDER BY CASE WHEN role = 'admin' THEN 0 ELSE 1 END, lower(coalesce(full_name, email)),"
        " email"
    )
    return await _members(ctx, rows)


async def set_availability(ctx: Services, principal: Principal | None, status: str) -> Member:
    """A member's own switch (online, busy, offline): staff hear `agent_presence`, and
    routing reacts (offline hands their sessions back, online may take waiting ones)."""
    agent_id, old, new = await availability.set_status(ctx, principal, status)
    await routing.status_changed(ctx, agent_id, old, new)
    return await _member(ctx, agent_id)


async def invite(
    ctx: Services,
    principal: Principal | None,
    *,
    email: str,
    full_name: str | None,
    role: str,
    base_url: str,
) -> Invited:
    """A new member who cannot log in until they accept: `{agent, invitation}`."""
    principal = require_team_admin(principal)
    now = dt.datetime.now(dt.UTC)
    async with serialised():
        if await db.fetch_one("SELECT id FROM admin WHERE email = {}", email):
            raise EmailTaken()
        admin_id = uuid.uuid4()
        await db.fetch(
            "INSERT INTO admin (id, email, password, full_name, created_at, updated_at, role)"
            " VALUES ({}, {}, '', {}, {}, {}, {})",
            admin_id,
            email,
            full_name,
            now,
            now,
            role,
        )
        link = await _new_link(ctx, principal, admin_id, INVITE, base_url)
    return Invited(agent=await _member(ctx, admin_id), invitation=link)


async def reissue(
    ctx: Services, principal: Principal | None, admin_id: uuid.UUID, base_url: str
) -> Invitation:
    """A fresh invitation for a member who has not accepted yet (the old link stops)."""
    principal = require_team_admin(principal)
    row = await db.fetch_one("SELECT password FROM admin WHERE id = {}", admin_id)
    if row is None:
        raise NotFound("Team member not found")
    if row["password"]:
        raise AlreadyJoined()
    return await _new_link(ctx, principal, admin_id, INVITE, base_url)


async def reset_link(
    ctx: Services, principal: Principal | None, admin_id: uuid.UUID, base_url: str
) -> Invitation:
    """A one-time link that sets a member's password (handed over by the admin: no email
    yet). Using it ends the member's other sign-ins."""
    principal = require_team_admin(principal)
    row = await db.fetch_one("SELECT password FROM admin WHERE id = {}", admin_id)
    if row is None:
        raise NotFound("Team member not found")
    if not row["password"]:
        raise NotJoined()
    return await _new_link(ctx, principal, admin_id, RESET, base_url)


async def _new_link(
    ctx: Services, principal: Principal, admin_id: uuid.UUID, kind: str, base_url: str
) -> Invitation:
    """Revokes the member's earlier unused links of this kind: one live link at a time."""
    now = dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(seconds=ctx.settings.invitation_ttl)
    await db.fetch(
        "UPDATE invitation SET revoked_at = {} WHERE admin_id = {} AND kind = {}"
        " AND used_at IS NULL AND revoked_at IS NULL",
        now,
        admin_id,
        kind,
    )
    token = secrets.token_urlsafe(32)
    link_id = uuid.uuid4()
    await db.fetch(
        "INSERT INTO invitation (id, admin_id, kind, token_hash, created_by, created_at,"
        " expires_at) VALUES ({}, {}, {}, {}, {}, {}, {})",
        link_id,
        admin_id,
        kind,
        _hash(token),
        principal.subject,
        now,
        expires,
    )
    return Invitation(
        id=link_id,
        url=f"{base_url.rstrip('/')}{LINK_PAGES[kind]}{token}",
        token=token,
        expiresAt=iso(expires),
    )


async def revoke_invitation(
    ctx: Services, principal: Principal | None, invitation_id: uuid.UUID
) -> None:
    require_team_admin(principal)
    row = await db.fetch_one(
        "UPDATE invitation SET revoked_at = {} WHERE id = {} AND used_at IS NULL"
        " AND revoked_at IS NULL RETURNING id",
        dt.datetime.now(dt.UTC),
        invitation_id,
    )
    if row is None:
        raise NotFound("Invitation not found (or already used or revoked)")


async def redeem(
    ctx: Services,
    kind: str,
    *,
    token: str,
    password: str,
    full_name: str | None,
    ip: str,
    device: str | None,
) -> SignedIn:
    """Accept an invitation or use a reset link: sets the password and signs in,
    `{token, admin}`. Single use: of racing redeemers exactly one wins (the claim is one
    conditional UPDATE); the others get 409 `invitation_used`."""
    hashed_token = _hash(token)
    found = await db.fetch_one(
        "SELECT i.id, i.used_at, i.revoked_at, i.expires_at, a.deactivated_at"
        " FROM invitation i JOIN admin a ON a.id = i.admin_id"
        " WHERE i.token_hash = {} AND i.kind = {}",
        hashed_token,
        kind,
    )
    _check_redeemable(found)
    hashed = await ctx.passwords.hash(password)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction():
        claimed = await db.fetch_one(
            "UPDATE invitation SET used_at = {} WHERE token_hash = {} AND kind = {}"
            " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > {}"
            " RETURNING admin_id",
            now,
            hashed_token,
            kind,
            now,
        )
        if claimed is None:
            raise InvitationUsed()
        admin_id = as_uuid(claimed["admin_id"])
        await db.fetch(
            "UPDATE admin SET password = {}, updated_at = {},"
            " full_name = coalesce({}, full_name) WHERE id = {}",
            hashed,
            now,
            full_name,
            admin_id,
        )
    if kind == RESET:
        await signins.end(ctx, "password_reset", account=admin_id, everywhere=True)
    row = await db.fetch_one(f"SELECT {ADMIN_COLUMNS} FROM admin WHERE id = {{}}", admin_id)
    assert row is not None
    return await signins.issue(ctx, row, device=device, ip=ip)


def _check_redeemable(found: dict[str, Any] | None) -> None:
    if found is None or found["revoked_at"] is not None:
        raise InvitationNotFound()
    if found["used_at"] is not None:
        raise InvitationUsed()
    if found["deactivated_at"] is not None:
        raise InvitationNotFound()
    expires = found["expires_at"]
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires)
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    if expires <= dt.datetime.now(dt.UTC):
        raise InvitationExpired()


async def update(
    ctx: Services,
    principal: Principal | None,
    admin_id: uuid.UUID,
    *,
    full_name: str | None,
    role: str | None,
) -> Member:
    """Rename (anyone on their own account, admins on anyone's) or change a role
    (admins). Demoting the last active admin is 409 `last_admin`."""
    principal = require_admin(principal)
    if role is not None or principal.subject != admin_id:
        require_team_admin(principal)
    if role is not None and role not in STAFF_ROLES:
        raise BadRequest("role must be admin or agent")
    async with serialised():
        row = await db.fetch_one("SELECT role, deactivated_at FROM admin WHERE id = {}", admin_id)
        if row is None:
            raise NotFound("Team member not found")
        if role == "agent" and row["role"] == "admin" and row["deactivated_at"] is None:
            await _keep_an_admin(admin_id)
        await db.fetch(
            "UPDATE admin SET full_name = coalesce({}, full_name), role = coalesce({}, role),"
            " updated_at = {} WHERE id = {}",
            full_name,
            role,
            dt.datetime.now(dt.UTC),
            admin_id,
        )
    # Role and name live in every worker's account cache: refresh it, keep the sockets.
    await ctx.revocations.publish(Revocation("updated", account=admin_id, disconnect=False))
    return await _member(ctx, admin_id)


async def _keep_an_admin(leaving: uuid.UUID) -> None:
    row = await db.fetch_one(
        "SELECT count(*) AS n FROM admin WHERE role = 'admin' AND deactivated_at IS NULL"
        " AND password <> '' AND id <> {}",
        leaving,
    )
    if row is None or int(row["n"]) == 0:
        raise LastAdmin()


async def deactivate(ctx: Services, principal: Principal | None, admin_id: uuid.UUID) -> Member:
    """No more logins; every token and socket of the member stops at once (all
    workers). Their messages and sessions stay, attributed to them."""
    require_team_admin(principal)
    now = dt.datetime.now(dt.UTC)
    async with serialised():
        row = await db.fetch_one("SELECT role, deactivated_at FROM admin WHERE id = {}", admin_id)
        if row is None:
            raise NotFound("Team member not found")
        if row["deactivated_at"] is None:
            if row["role"] == "admin":
                await _keep_an_admin(admin_id)
            await db.fetch(
                "UPDATE admin SET deactivated_at = {}, updated_at = {} WHERE id = {}",
                now,
                now,
                admin_id,
            )
    await signins.end(ctx, "deactivated", account=admin_id, everywhere=True)
    return await _member(ctx, admin_id)


async def reactivate(ctx: Services, principal: Principal | None, admin_id: uuid.UUID) -> Member:
    """May log in again (old sign-ins stay ended)."""
    require_team_admin(principal)
    row = await db.fetch_one(
        "UPDATE admin SET deactivated_at = NULL, updated_at = {} WHERE id = {} RETURNING id",
        dt.datetime.now(dt.UTC),
        admin_id,
    )
    if row is None:
        raise NotFound("Team member not found")
    await ctx.revocations.publish(Revocation("reactivated", account=admin_id, disconnect=False))
    return await _member(ctx, admin_id)


async def sign_out(ctx: Services, principal: Principal | None, admin_id: uuid.UUID) -> None:
    """An admin ends every sign-in of a member (a lost laptop) without deactivating."""
    require_team_admin(principal)
    if await db.fetch_one("SELECT id FROM admin WHERE id = {}", admin_id) is None:
        raise NotFound("Team member not found")
    await signins.end(ctx, "signed_out_by_admin", account=admin_id, everywhere=True)
