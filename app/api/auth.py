"""REST adapters for admin accounts: /api/auth/*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app.api.common import (
    ADMIN,
    AUTH,
    STR,
    body_of,
    documented,
    json,
    obj,
    principal_of,
    services,
)
from app.client_ip import client_ip
from app.domain import admins
from app.validation import MAX_PASSWORD, MIN_PASSWORD, Reader, read_registration

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
    )
    return json(out, status=201)


@bp.post("/login")
@documented(
    "Log in as an admin",
    tag="auth",
    body=obj(["email", "password"], email=STR, password=STR),
    ok=(200, AUTH),
    errors=(400, 401, 413, 429, 503),
)
async def login(request: Request) -> HTTPResponse:
    r = Reader(body_of(request))
    email = r.string("email", required=True, max_len=254)
    password = r.string("password", required=True, strip=False, max_len=MAX_PASSWORD)
    r.done()
    assert email is not None and password is not None
    out = await admins.login(
        services(request), email=email.lower(), password=password, ip=client_ip(request)
    )
    return json(out)


@bp.get("/me")
@documented(
    "The admin of this token", tag="auth", ok=(200, ADMIN), errors=(401, 403, 503), secured=True
)
async def me(request: Request) -> HTTPResponse:
    return json(await admins.me(services(request), principal_of(request)))
