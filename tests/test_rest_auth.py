"""REST: admin registration, login, /me, and the token matrix every protected route shares."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from tests.support import ISO_MS_Z, JWT_SECRET, PASSWORD, Factory, assert_error, bearer, forge


async def register(api: httpx.AsyncClient, token: str | None = None, **body: Any) -> httpx.Response:
    payload = {"email": "ada@example.com", "password": PASSWORD, "fullName": "Ada", **body}
    return await api.post(
        "/api/auth/register", json=payload, headers=bearer(token) if token else {}
    )


async def test_first_registration_bootstraps_the_desk_with_exact_fields(api, db):
    r = await register(api)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "admin"}
    admin = body["admin"]
    assert set(admin) == {"id", "email", "fullName", "role", "createdAt"}
    assert admin["email"] == "ada@example.com"
    assert admin["fullName"] == "Ada"
    uuid.UUID(admin["id"])
    assert re.match(ISO_MS_Z, admin["createdAt"])
    claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"], audience="helpline:admin")
    assert claims["sub"] == admin["id"]
    stored = await db.fetchval("SELECT password FROM admin WHERE id = $1", uuid.UUID(admin["id"]))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_registration_is_closed_to_strangers_once_an_admin_exists(api):
    assert (await register(api)).status_code == 201
    assert_error(await register(api, email="eve@example.com"), 403, "registration_closed")


async def test_an_admin_can_register_another_admin(api, make: Factory):
    token = await make.admin_token()
    r = await register(api, token, email="bob@example.com")
    assert r.status_code == 201
    assert r.json()["admin"]["email"] == "bob@example.com"


async def test_a_customer_token_cannot_register_admins(api, make: Factory):
    await make.admin_token()
    session = await make.session()
    r = await register(api, session["customerToken"], email="eve@example.com")
    assert_error(r, 403, "registration_closed")


async def test_registering_a_taken_email_conflicts_case_insensitively(api, make: Factory):
    token = await make.admin_token()
    assert (await register(api, token)).status_code == 201
    assert_error(await register(api, token, email="ADA@Example.com"), 409, "email_taken")


async def test_racing_first_registrations_create_exactly_one_admin(api, db):
    results = await asyncio.gather(
        *(register(api, email=f"first-{i}@example.com") for i in range(5))
    )
    assert sorted(r.status_code for r in results) == [201, 403, 403, 403, 403]
    assert await db.fetchval("SELECT count(*) FROM admin") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": None}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": 42}, "email"),
        ({"password": None}, "password"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"password": ["a", "list"]}, "password"),
        ({"fullName": "x" * 201}, "fullName"),
        ({"fullName": {"an": "object"}}, "fullName"),
    ],
)
async def test_register_rejects_bad_fields_naming_them(api, body, field):
    r = await register(api, **body)
    error = assert_error(r, 400, "validation_error")
    assert field in error["details"]["fields"]


async def test_login_answers_token_and_admin(api, make: Factory):
    created = await make.admin("ada@example.com")
    r = await api.post("/api/auth/login", json={"email": "Ada@Example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "admin"}
    assert body["admin"] == created["admin"]
    me = await api.get("/api/auth/me", headers=bearer(body["token"]))
    assert me.json() == created["admin"]


async def test_wrong_password_and_unknown_email_get_the_same_answer(api, make: Factory):
    await make.admin("ada@example.com")
    wrong = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
    )
    unknown = await api.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert assert_error(wrong, 401, "invalid_credentials") == assert_error(
        unknown, 401, "invalid_credentials"
    )


@pytest.mark.parametrize(
    "body", [{}, {"email": "a@example.com"}, {"password": PASSWORD}, {"email": 1, "password": 2}]
)
async def test_login_rejects_missing_or_mistyped_fields(api, body):
    assert_error(await api.post("/api/auth/login", json=body), 400, "validation_error")


async def test_me_answers_the_tokens_admin(api, make: Factory):
    created = await make.admin("ada@example.com", full_name="Ada L")
    r = await api.get("/api/auth/me", headers=bearer(created["token"]))
    assert r.status_code == 200
    assert r.json() == created["admin"]
    assert set(r.json()) == {"id", "email", "fullName", "role", "createdAt"}


async def test_a_deleted_admins_token_is_no_longer_a_credential(
    api, make: Factory, db: asyncpg.Connection
):
    created = await make.admin()
    await db.execute("DELETE FROM admin")
    assert_error(
        await api.get("/api/auth/me", headers=bearer(created["token"])), 401, "invalid_token"
    )


# The token matrix, on a route of each kind: admin-only, and session-scoped.


def tampered(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"


def alg_none(subject: str, audience: str = "helpline:admin") -> str:
    now = int(time.time())
    claims = {"sub": subject, "aud": audience, "iss": "helpline", "iat": now, "exp": now + 600}
    return jwt.encode(claims, key="", algorithm="none")


BAD_TOKENS = {
    "garbage": lambda sub: ("Bearer not-a-jwt", "invalid_token"),
    "wrong_scheme": lambda sub: (f"Basic {forge({'sub': sub})}", "invalid_token"),
    "empty_bearer": lambda sub: ("Bearer", "invalid_token"),
    "tampered_signature": lambda sub: (f"Bearer {tampered(forge({'sub': sub}))}", "invalid_token"),
    "expired": lambda sub: (
        f"Bearer {forge({'sub': sub, 'exp': int(time.time()) - 10})}",
        "token_expired",
    ),
    "alg_none": lambda sub: (f"Bearer {alg_none(sub)}", "invalid_token"),
    "other_secret": lambda sub: (
        f"Bearer {forge({'sub': sub}, secret='another-secret-' + 'y' * 32)}",
        "invalid_token",
    ),
    "wrong_audience": lambda sub: (
        f"Bearer {forge({'sub': sub, 'aud': 'other'})}",
        "invalid_token",
    ),
    "wrong_issuer": lambda sub: (f"Bearer {forge({'sub': sub, 'iss': 'evil'})}", "invalid_token"),
    "subject_not_uuid": lambda sub: (f"Bearer {forge({'sub': 'root'})}", "invalid_token"),
}


@pytest.fixture
async def seeded(make: Factory) -> dict[str, Any]:
    created = await make.admin()
    session = await make.session()
    message = await make.message(session["customerToken"], session["id"])
    return {"admin": created, "session": session, "message": message}


def protected_routes(seeded: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    sid, mid = seeded["session"]["id"], seeded["message"]["id"]
    return [
        ("GET", "/api/auth/me", None),
        ("GET", "/api/sessions", None),
        ("GET", f"/api/sessions/{sid}", None),
        ("PATCH", f"/api/sessions/{sid}/status", {"status": "closed"}),
        ("GET", f"/api/chat/messages/{sid}", None),
        ("POST", "/api/chat/messages", {"sessionId": sid, "content": "hi"}),
        ("PATCH", f"/api/chat/messages/{mid}/read", None),
    ]


async def test_every_protected_route_refuses_a_request_without_token(api, seeded):
    for method, path, body in protected_routes(seeded):
        r = await api.request(method, path, json=body)
        assert_error(r, 401, "auth_required")


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_every_protected_route_refuses_a_bad_token(api, seeded, kind):
    header, code = BAD_TOKENS[kind](seeded["admin"]["admin"]["id"])
    for method, path, body in protected_routes(seeded):
        r = await api.request(method, path, json=body, headers={"Authorization": header})
        assert_error(r, 401, code)


async def test_a_customer_token_is_refused_on_admin_routes(api, seeded):
    session = seeded["session"]
    headers = bearer(session["customerToken"])
    assert_error(await api.get("/api/auth/me", headers=headers), 403, "admin_only")
    assert_error(await api.get("/api/sessions", headers=headers), 403, "admin_only")
    r = await api.patch(
        f"/api/sessions/{session['id']}/status", json={"status": "closed"}, headers=headers
    )
    assert_error(r, 403, "admin_only")


async def test_a_customer_token_for_another_session_answers_as_if_it_did_not_exist(
    api, make: Factory, seeded
):
    other = await make.session()
    headers = bearer(other["customerToken"])
    sid, mid = seeded["session"]["id"], seeded["message"]["id"]
    unknown = uuid.uuid4()
    for path in (f"/api/sessions/{sid}", f"/api/chat/messages/{sid}"):
        theirs = await api.get(path, headers=headers)
        nothing = await api.get(path.replace(sid, str(unknown)), headers=headers)
        assert assert_error(theirs, 404, "not_found") == assert_error(nothing, 404, "not_found")
    r = await api.post(
        "/api/chat/messages", json={"sessionId": sid, "content": "hi"}, headers=headers
    )
    assert_error(r, 404, "not_found")
    assert_error(
        await api.patch(f"/api/chat/messages/{mid}/read", headers=headers), 404, "not_found"
    )


@pytest.mark.parametrize(
    ("spelling", "status", "code"),
    [
        ("Ada@Example.COM.", 409, "email_taken"),  # case and a trailing dot
        ("\uff41\uff44\uff41@example.com", 409, "email_taken"),  # fullwidth "ada"
        ("ada\u200b@example.com", 400, "validation_error"),  # a zero-width space
        ("\u0430da@example.com", 400, "validation_error"),  # a Cyrillic "а"
    ],
    ids=["case-and-dot", "fullwidth", "zero-width", "cyrillic"],
)
async def test_look_alike_spellings_of_an_email_are_that_email_or_refused(
    api, make: Factory, spelling, status, code
):
    first = await make.admin("ada@example.com")
    r = await register(api, first["token"], email=spelling, password=PASSWORD)
    assert_error(r, status, code)


async def test_login_takes_any_spelling_of_the_same_email(api, make: Factory):
    await make.admin("ada@example.com")
    for spelling in ("ADA@example.com.", "\uff41\uff44\uff41@example.com"):
        r = await api.post("/api/auth/login", json={"email": spelling, "password": PASSWORD})
        assert r.status_code == 200, (spelling, r.text)


@pytest.mark.parametrize(
    "password",
    ["ada@example.com", " ADA@example.com ", " " * 12],
    ids=["email", "email-case", "blank"],
)
async def test_a_password_that_is_the_email_or_only_whitespace_is_refused(api, password):
    r = await register(api, email="ada@example.com", password=password)
    body = assert_error(r, 400, "validation_error")
    assert "password" in body["details"]["fields"]
