"""REST adapters for staff accounts and their sign-in sessions: /api/auth/*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty

from app.api.common import (
    ADMIN,
    AUTH,
    SIGN_IN,
    STR,
    body_of,
    documented,
    json,
    obj,
    principal_of,
    services,
)
from app.client_ip import client_ip
from app.domain import admins, signins
from app.validation import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    Reader,
    normalise_email,
    path_uuid,
    read_registration,
)

bp = Blueprint("auth", url_prefix="/api/auth")

CREDENTIALS = obj(
    ["email", "password"],
    email={"type": "string", "format": "email", "maxLength": 254},
    password={"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD},
    fullName={"type": "string", "maxLength": 200},
)


@bp.post("/register")
@documented(
    "Create an admin",
    tag="auth",
    body=CREDENTIALS,
    ok=(201, AUTH),
    errors=(400, 401, 403, 409, 413, 429, 503),
    description="Open while no admin exists; afterwards an admin token is required "
    "unless OPEN_SIGNUP is set.",
)
async def register(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    email, password, full_name = read_registration(body_of(request))
    out = await admins.register(
        services(request),
        principal,
        email=email,
        password=password,
        full_name=full_name,
        ip=client_ip(request),
        device=device_of(request),
    )
    return json(out, status=201)


@bp.post("/login")
@documented(
    "Log in (admin or agent): a new sign-in session",
    tag="auth",
    body=obj(["email", "password"], email=STR, password=STR),
    ok=(200, AUTH),
    errors=(400, 401, 403, 413, 429, 503),
    description="403 `account_deactivated` for a deactivated account (right password).",
)
async def login(request: Request) -> HTTPResponse:
    r = Reader(body_of(request))
    email = r.string("email", required=True, max_len=254)
    password = r.string("password", required=True, strip=False, max_len=MAX_PASSWORD)
    r.done()
    assert email is not None and password is not None
    out = await admins.login(
        services(request),
        email=normalise_email(email)[0],
        password=password,
        ip=client_ip(request),
        device=device_of(request),
    )
    return json(out)


@bp.get("/me")
@documented(
    "The staff member of this token",
    tag="auth",
    ok=(200, ADMIN),
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
    tag="auth",
    ok=(200, {"type": "array", "items": SIGN_IN}),
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
    tag="auth",
    ok=(204, {}),
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
    tag="auth",
    ok=(204, {}),
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
    tag="auth",
    ok=(204, {}),
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
    tag="auth",
    body=obj(
        ["currentPassword", "newPassword"],
        currentPassword=STR,
        newPassword={"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD},
    ),
    ok=(204, {}),
    errors=(400, 401, 403, 413, 429, 503),
    secured=True,
    description="Ends every other sign-in session of the account; this one stays. "
    "403 `wrong_password` when the current password is wrong.",
)
async def change_password(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    r = Reader(body_of(request))
    current = r.string("currentPassword", required=True, strip=False, max_len=MAX_PASSWORD)
    new = r.password("newPassword")
    r.done()
    assert current is not None and new is not None
    await admins.change_password(services(request), principal, current=current, new=new)
    return empty()
