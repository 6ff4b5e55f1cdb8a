"""REST adapters for the team: /api/agents*, /api/invitations/*, and the two link
redemptions under /api/auth (accept an invitation, reset a password)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty

from app import contract, models
from app.api.auth import device_of
from app.api.common import (
    body_of,
    documented,
    json,
    principal_of,
    services,
)
from app.client_ip import client_ip
from app.domain import team
from app.validation import path_uuid

agents = Blueprint("agents", url_prefix="/api/agents")
invitations = Blueprint("invitations", url_prefix="/api/invitations")
links = Blueprint("links", url_prefix="/api/auth")

LINK_ERRORS = (400, 404, 409, 410, 413, 429, 503)
LINK_TEXT = (
    "404 `invitation_not_found` (unknown or revoked), 409 `invitation_used`, "
    "410 `invitation_expired`."
)


def _base_url(request: Request) -> str:
    return f"{request.scheme}://{request.host}"


def _member_id(value: str) -> Any:
    return path_uuid(value, "Team member")


@agents.get("/")
@documented(
    "The team: every admin and agent",
    who="staff",
    tag="team",
    ok=(200, list[models.Member]),
    errors=(401, 403, 503),
    secured=True,
    description="Admins first, then by name; `online` means a socket is open.",
)
async def list_team(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    return json(await team.listing(services(request), principal))


@agents.post("/")
@documented(
    "Invite a member",
    who="admin",
    tag="team",
    body=models.NewMember,
    ok=(201, models.Invited),
    errors=(400, 401, 403, 409, 413, 503),
    secured=True,
    description="The member exists at once (`invited: true`) and can log in once they "
    "accept the link (single use, expires after INVITATION_TTL). 409 `email_taken`.",
)
async def invite(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    new = contract.read(models.NewMember, body_of(request))
    out = await team.invite(
        services(request),
        principal,
        email=new.email,
        full_name=new.fullName,
        role=new.role,
        base_url=_base_url(request),
    )
    return json(out, status=201)


@agents.patch("/me/availability")
@documented(
    "Set your own availability",
    who="staff",
    tag="team",
    body=models.AvailabilityChange,
    ok=(200, models.Member),
    errors=(400, 401, 403, 413, 503),
    secured=True,
    description="`online` takes conversations (when routing is on), `busy` keeps "
    "yours but takes no new ones, `offline` hands yours back to the queue at once (when "
    "routing is on). Emits `agent_presence {agentId, status, available}` to staff.",
)
async def set_availability(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    change = contract.read(models.AvailabilityChange, body_of(request))
    return json(await team.set_availability(services(request), principal, change.status))


@agents.patch("/<agent_id:str>")
@documented(
    "Rename a member or change their role",
    who="admin (anyone may rename themselves)",
    tag="team",
    body=models.MemberChange,
    ok=(200, models.Member),
    errors=(400, 401, 403, 404, 409, 413, 503),
    secured=True,
    description="Anyone may rename themselves; admins rename anyone and change roles. "
    "409 `last_admin` when it would leave no active admin.",
)
async def update(request: Request, agent_id: str) -> HTTPResponse:
    principal = principal_of(request)
    member = _member_id(agent_id)
    change = contract.read(models.MemberChange, body_of(request))
    out = await team.update(
        services(request), principal, member, full_name=change.fullName, role=change.role
    )
    return json(out)


def _member_action(path: str, summary: str, description: str, errors: tuple[int, ...]) -> Any:
    def register(func: Any) -> Any:
        documented_func = documented(
            summary,
            who="admin",
            tag="team",
            ok=(200, models.Member),
            errors=errors,
            secured=True,
            description=description,
        )(func)
        return agents.post(f"/<agent_id:str>/{path}")(documented_func)

    return register


@_member_action(
    "deactivate",
    "Deactivate a member",
    "No more logins; every token and socket of theirs stops at once, on every worker. "
    "Their messages and sessions stay. 409 `last_admin` for the last active admin.",
    (401, 403, 404, 409, 503),
)
async def deactivate(request: Request, agent_id: str) -> HTTPResponse:
    principal = principal_of(request)
    member = _member_id(agent_id)
    return json(await team.deactivate(services(request), principal, member))


@_member_action(
    "reactivate",
    "Reactivate a member",
    "They may log in again; sign-ins ended by the deactivation stay ended.",
    (401, 403, 404, 503),
)
async def reactivate(request: Request, agent_id: str) -> HTTPResponse:
    principal = principal_of(request)
    member = _member_id(agent_id)
    return json(await team.reactivate(services(request), principal, member))


@agents.post("/<agent_id:str>/logout-all")
@documented(
    "End every sign-in of a member",
    who="admin",
    tag="team",
    ok=(204, None),
    errors=(401, 403, 404, 503),
    secured=True,
    description="A lost laptop: the member stays active and may log in again.",
)
async def sign_out_member(request: Request, agent_id: str) -> HTTPResponse:
    principal = principal_of(request)
    member = _member_id(agent_id)
    await team.sign_out(services(request), principal, member)
    return empty()


@agents.post("/<agent_id:str>/reset-link")
@documented(
    "A one-time password-reset link for a member",
    who="admin",
    tag="team",
    ok=(201, models.Invitation),
    errors=(401, 403, 404, 409, 503),
    secured=True,
    description="Hand it over yourself (no email yet). Using it sets the password and ends "
    "the member's other sign-ins. 409 `not_joined` for a member still invited.",
)
async def reset_link(request: Request, agent_id: str) -> HTTPResponse:
    principal = principal_of(request)
    member = _member_id(agent_id)
    out = await team.reset_link(services(request), principal, member, _base_url(request))
    return json(out, status=201)


@agents.post("/<agent_id:str>/invitation")
@documented(
    "Re-issue a member's invitation",
    who="admin",
    tag="team",
    ok=(201, models.Invitation),
    errors=(401, 403, 404, 409, 503),
    secured=True,
    description="The earlier link stops working. 409 `already_joined` once accepted.",
)
async def reissue(request: Request, agent_id: str) -> HTTPResponse:
    principal = principal_of(request)
    member = _member_id(agent_id)
    out = await team.reissue(services(request), principal, member, _base_url(request))
    return json(out, status=201)


@invitations.delete("/<invitation_id:str>")
@documented(
    "Revoke an invitation or reset link",
    who="admin",
    tag="team",
    ok=(204, None),
    errors=(401, 403, 404, 503),
    secured=True,
)
async def revoke(request: Request, invitation_id: str) -> HTTPResponse:
    principal = principal_of(request)
    link = path_uuid(invitation_id, "Invitation")
    await team.revoke_invitation(services(request), principal, link)
    return empty()


async def _redeem(request: Request, kind: str, shape: type[models.PasswordReset]) -> HTTPResponse:
    ctx = services(request)
    ip = client_ip(request)
    # Per IP, as registrations: a valid link costs a password hash.
    await ctx.limiter.hit("redeem", ip, ctx.settings.rate_register)
    link = contract.read(shape, body_of(request))
    out = await team.redeem(
        ctx,
        kind,
        token=link.token,
        password=link.password,
        full_name=link.fullName if isinstance(link, models.InvitationAcceptance) else None,
        ip=ip,
        device=device_of(request),
    )
    return json(out)


@links.post("/accept-invite")
@documented(
    "Accept an invitation: set a password and sign in",
    who="anyone with the link",
    tag="auth",
    body=models.InvitationAcceptance,
    ok=(200, models.SignedIn),
    errors=LINK_ERRORS,
    description=f"Answers `{{token, admin}}` like login. {LINK_TEXT}",
)
async def accept_invite(request: Request) -> HTTPResponse:
    return await _redeem(request, team.INVITE, models.InvitationAcceptance)


@links.post("/reset-password")
@documented(
    "Use a password-reset link: set a new password and sign in",
    who="anyone with the link",
    tag="auth",
    body=models.PasswordReset,
    ok=(200, models.SignedIn),
    errors=LINK_ERRORS,
    description=f"Ends every other sign-in of the account. {LINK_TEXT}",
)
async def reset_password(request: Request) -> HTTPResponse:
    return await _redeem(request, team.RESET, models.PasswordReset)
