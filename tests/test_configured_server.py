"""Settings that change what a server promises, each seen on a server started with it:
open sign-up, a restricted CORS_ORIGINS, token lifetimes, and presence that outlives
its TTL while the customer stays."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest
import redis.asyncio as aioredis

from tests.sockets import Client
from tests.support import PASSWORD, REDIS_NAMESPACE, Factory, LiveServer, assert_error

ALLOWED = ("https://desk.example", "https://help.example")
ADMIN_TTL, CUSTOMER_TTL, PRESENCE_TTL = 600, 900, 2


@pytest.fixture(scope="module")
def configured(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer.running(
        "configured",
        database_url,
        redis_url,
        OPEN_SIGNUP="true",
        CORS_ORIGINS=", ".join(ALLOWED),
        ADMIN_TOKEN_TTL=str(ADMIN_TTL),
        CUSTOMER_TOKEN_TTL=str(CUSTOMER_TTL),
        PRESENCE_TTL=str(PRESENCE_TTL),
    ) as live:
        yield live


@pytest.fixture
async def api(configured: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=configured.url, timeout=10) as client:
        yield client


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()


async def open_client(opened: list[Client], url: str, token: str) -> Client:
    client = Client(url, token)
    await client.connect()
    opened.append(client)
    return client


# --- OPEN_SIGNUP ---------------------------------------------------------------------


async def test_with_open_signup_anyone_registers_an_admin_after_the_first(api, make: Factory):
    await make.admin()
    r = await api.post(
        "/api/auth/register", json={"email": "walk-in@example.com", "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    assert r.json()["admin"]["email"] == "walk-in@example.com"
    assert r.json()["admin"]["role"] == "admin"


async def test_without_open_signup_the_same_registration_is_refused(server, make: Factory):
    await make.admin()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as default:
        r = await default.post(
            "/api/auth/register", json={"email": "walk-in@example.com", "password": PASSWORD}
        )
    assert_error(r, 403, "registration_closed")


# --- CORS_ORIGINS ---------------------------------------------------------------------


@pytest.mark.parametrize("origin", ALLOWED)
async def test_a_listed_origin_is_allowed_by_preflight_and_answer(api, origin):
    preflight = await api.options(
        "/api/sessions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    r = await api.post("/api/sessions", json={"userId": "u-cors"}, headers={"Origin": origin})
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == origin


async def test_an_unlisted_origin_gets_no_cors_grant(api):
    evil = "https://evil.example"
    preflight = await api.options(
        "/api/sessions",
        headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    r = await api.post("/api/sessions", json={"userId": "u-cors"}, headers={"Origin": evil})
    assert "access-control-allow-origin" not in r.headers


async def test_a_socket_from_a_listed_origin_connects_and_an_unlisted_one_is_refused(
    configured, make: Factory
):
    session = await make.session()
    allowed = Client(configured.url, session["customerToken"])
    await allowed.sio.connect(
        configured.url,
        auth={"token": session["customerToken"]},
        transports=["websocket"],
        headers={"Origin": ALLOWED[1]},
        wait_timeout=10,
    )
    await allowed.close()
    refused = Client(configured.url, session["customerToken"])
    with pytest.raises(Exception, match=r"(?i)connection error|failed to connect"):
        await refused.sio.connect(
            configured.url,
            auth={"token": session["customerToken"]},
            transports=["websocket"],
            headers={"Origin": "https://evil.example"},
            wait_timeout=10,
        )


# --- token lifetimes --------------------------------------------------------------------


def lifetime(token: str) -> int:
    claims = jwt.decode(token, options={"verify_signature": False})
    return int(claims["exp"]) - int(claims["iat"])


async def test_tokens_live_as_long_as_the_settings_say(api, make: Factory):
    staff = await make.admin()
    session = await make.session()
    assert lifetime(staff["token"]) == ADMIN_TTL
    assert lifetime(session["customerToken"]) == CUSTOMER_TTL
    login = await make.login(staff["admin"]["email"])
    assert lifetime(login["token"]) == ADMIN_TTL


async def test_the_default_lifetimes_are_twelve_hours_and_seven_days(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as default:
        factory = Factory(default)
        assert lifetime(await factory.admin_token()) == 12 * 3600
        assert lifetime((await factory.session())["customerToken"]) == 7 * 24 * 3600


# --- PRESENCE_TTL -----------------------------------------------------------------------


async def test_a_connected_customer_stays_online_past_the_presence_ttl(
    configured, make: Factory, clients, redis: aioredis.Redis
):
    admin = await open_client(clients, configured.url, await make.admin_token())
    session = await make.session()
    customer = await open_client(clients, configured.url, session["customerToken"])
    online = {"sessionId": session["id"], "online": True}
    assert await admin.wait_for("customer_presence") == online
    key = f"{REDIS_NAMESPACE}:presence:{session['id']}"
    first_expiry = await redis.zscore(key, customer.sio.get_sid())
    assert first_expiry is not None
    # Heartbeats have carried the entry past two of its TTLs: its first expiry is long past.
    deadline = time.monotonic() + 30
    while (await redis.zscore(key, customer.sio.get_sid()) or 0) < first_expiry + 2 * PRESENCE_TTL:
        assert time.monotonic() < deadline, "the presence entry was not kept alive"
        await asyncio.sleep(0.1)
    state = await admin.call("join_session", session["id"])
    assert state["customerOnline"] is True
    # The customer leaves: the offline that arrives is the first one the admin hears.
    await customer.close()
    assert await admin.wait_for("customer_presence", lambda e: not e["online"])
    assert admin.of("customer_presence") == [online, {**online, "online": False}]
