"""REST adapters for staff accounts and their sign-in sessions: /api/auth/*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty

from app import contract, models
from app.api.common import (
    body_of,
    documented,
    json,
    principal_of,
    services,
)
from app.client_ip import client_ip
from app.domain import admins, signins
from app.validation import path_uuid

bp = Blueprint("auth", url_prefix="/api/auth")


@bp.post("/register")
@documented(
    "Create an admin",
    who="the first admin; then admins (or anyone with `OPEN_SIGNUP`)",
    tag="auth",
    body=models.Registration,
    ok=(201, models.SignedIn),
    errors=(400, 401, 403, 409, 413, 429, 503),
    description="Open while no admin exists; afterwards an admin token is required "
    "unless OPEN_SIGNUP is set.",
)
async def register(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    new = contract.read(models.Registration, body_of(request))
    out = await admins.register(
        services(request),
        principal,
        email=new.email,
        password=new.password,
        full_name=new.fullName,
        ip=client_ip(request),
        device=device_of(request),
    )
    return json(out, status=201)


@bp.post("/login")
@documented(
    "Log in (admin or agent): a new sign-in session",
    who="anyone",
    tag="auth",
    body=models.Login,
    ok=(200, models.SignedIn),
    errors=(400, 401, 403, 413, 429, 503),
    description="403 `account_deactivated` for a deactivated account (right password).",
)
async def login(request: Request) -> HTTPResponse:
    credentials = contract.read(models.Login, body_of(request))
    out = await admins.login(
        services(request),
        email=credentials.email,
        password=credentials.password,
        ip=client_ip(request),
        device=device_of(request),
    )
    return json(out)


@bp.get("/me")
@documented(
    "The staff member of this token",
    who="staff",
    tag="auth",
    ok=(200, models.Admin),
    errors=(401, 403, 503),
    secured=True,
)
async def me(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    return json(await admins.me(services(request), principal))


def device_of(request: Request) -> str | None:
    """What a person recognises a sign-in by in their list: the browser's User-Agent."""
    return request.headers.get("user-agent")


@bp.get("/sessions")
@documented(
    "This account's live sign-in sessions",
    who="staff",
    tag="auth",
    ok=(200, list[models.SignIn]),
    errors=(401, 403, 503),
    secured=True,
    description="Newest first; `current` marks the one of this token.",
)
async def list_sign_ins(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    return json(await signins.listing(services(request), principal))


@bp.delete("/sessions/<sign_in_id:str>")
@documented(
    "End one of this account's sign-in sessions",
    who="staff",
    tag="auth",
    ok=(204, None),
    errors=(401, 403, 404, 503),
    secured=True,
    description="Its tokens answer 401 `token_revoked` and its sockets are disconnected "
    "(after a `session_revoked` event), on every worker.",
)
async def revoke_sign_in(request: Request, sign_in_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sign_in = path_uuid(sign_in_id, "Sign-in session")
    await signins.revoke_own(services(request), principal, sign_in)
    return empty()


@bp.post("/logout")
@documented(
    "Log out: end this token's sign-in session",
    who="staff",
    tag="auth",
    ok=(204, None),
    errors=(401, 403, 503),
    secured=True,
)
async def logout(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    await signins.logout(services(request), principal)
    return empty()


@bp.post("/logout-all")
@documented(
    "Log out everywhere: end every sign-in session of this account",
    who="staff",
    tag="auth",
    ok=(204, None),
    errors=(401, 403, 503),
    secured=True,
)
async def logout_all(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    await signins.logout_everywhere(services(request), principal)
    return empty()


@bp.post("/password")
@documented(
    "Change this account's password",
    who="staff",
    tag="auth",
    body=models.PasswordChange,
    ok=(204, None),
    errors=(400, 401, 403, 413, 429, 503),
    secured=True,
    description="Ends every other sign-in session of the account; this one stays. "
    "403 `wrong_password` when the current password is wrong.",
)
async def change_password(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    change = contract.read(models.PasswordChange, body_of(request))
    await admins.change_password(
        services(request), principal, current=change.currentPassword, new=change.newPassword
    )
    return empty()
