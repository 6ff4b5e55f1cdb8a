"""Rate limits, counted in Redis so that every worker and machine shares them.

Two server processes with tight limits share one Redis; clients pick their source address
on the loopback network (127.0.0.x) to act as different machines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from tests.support import PASSWORD, LiveServer, assert_error, bearer

LIMITS = {
    "RATE_LOGIN_FAILURES": "3",
    "RATE_REGISTER": "3",
    "RATE_SESSION_CREATE": "3",
    "RATE_MESSAGES": "5",
    "RATE_WINDOW": "60",
}

Client = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture(scope="module")
def strict(database_url: str, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    with (
        LiveServer.running("strict-a", database_url, redis_url, **LIMITS) as a,
        LiveServer.running("strict-b", database_url, redis_url, **LIMITS) as b,
    ):
        yield a, b


@pytest.fixture
async def client(strict: tuple[LiveServer, LiveServer]) -> AsyncIterator[Client]:
    """`await client(ip, server=0)`: an HTTP client whose requests come from that address."""
    opened: list[httpx.AsyncClient] = []

    async def open_client(ip: str = "127.0.0.1", server: int = 0) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=ip)
        c = httpx.AsyncClient(base_url=strict[server].url, transport=transport, timeout=10)
        opened.append(c)
        return c

    yield open_client
    for c in opened:
        await c.aclose()


def assert_limited(r: httpx.Response) -> None:
    body = assert_error(r, 429, "rate_limited")
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert body["details"]["retryAfter"] == retry_after


async def login(c: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await c.post("/api/auth/login", json={"email": email, "password": password})


@pytest.fixture
async def two_admins(client: Client) -> None:
    c = await client("127.0.0.9")
    r = await c.post("/api/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    token = r.json()["token"]
    r = await c.post(
        "/api/auth/register",
        json={"email": "bob@example.com", "password": PASSWORD},
        headers=bearer(token),
    )
    assert r.status_code == 201


async def test_failed_logins_are_limited_per_account_across_addresses_and_servers(
    client: Client, two_admins: None
):
    for i, ip in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4")):
        c = await client(ip, server=i % 2)
        assert_error(
            await login(c, "ada@example.com", "wrong password"), 401, "invalid_credentials"
        )
    fresh = await client("127.0.0.5", server=1)
    # Even the right password waits out the window: guessing cannot continue elsewhere.
    assert_limited(await login(fresh, "ada@example.com", PASSWORD))
    assert (await login(fresh, "bob@example.com", PASSWORD)).status_code == 200


async def test_failed_logins_are_limited_per_address(client: Client, two_admins: None):
    c = await client("127.0.0.2")
    for email in ("x@example.com", "y@example.com", "z@example.com"):
        assert_error(await login(c, email, "wrong password"), 401, "invalid_credentials")
    assert_limited(await login(c, "ada@example.com", PASSWORD))
    other = await client("127.0.0.3")
    assert (await login(other, "ada@example.com", PASSWORD)).status_code == 200


async def test_a_successful_login_clears_the_accounts_failure_count(
    client: Client, two_admins: None
):
    for ip in ("127.0.0.2", "127.0.0.3"):
        await login(await client(ip), "ada@example.com", "wrong password")
    assert (await login(await client("127.0.0.4"), "ada@example.com", PASSWORD)).status_code == 200
    for ip in ("127.0.0.5", "127.0.0.6"):
        await login(await client(ip), "ada@example.com", "wrong password")
    assert (await login(await client("127.0.0.7"), "ada@example.com", PASSWORD)).status_code == 200


async def test_registration_is_limited_per_address(client: Client):
    c = await client("127.0.0.2")
    statuses = []
    for i in range(3):
        r = await c.post(
            "/api/auth/register", json={"email": f"a{i}@example.com", "password": PASSWORD}
        )
        statuses.append(r.status_code)
    assert statuses == [201, 403, 403]
    r = await c.post("/api/auth/register", json={"email": "a9@example.com", "password": PASSWORD})
    assert_limited(r)


async def test_session_creation_is_limited_per_address_across_servers(client: Client):
    a, b = await client("127.0.0.2", server=0), await client("127.0.0.2", server=1)
    for c in (a, b, a):
        assert (await c.post("/api/sessions", json={"userId": "u"})).status_code == 201
    assert_limited(await b.post("/api/sessions", json={"userId": "u"}))
    other = await client("127.0.0.3")
    assert (await other.post("/api/sessions", json={"userId": "u"})).status_code == 201


async def test_message_posting_is_limited_per_token_across_servers(client: Client, db):
    a, b = await client("127.0.0.2", server=0), await client("127.0.0.3", server=1)
    one = (await a.post("/api/sessions", json={"userId": "one"})).json()
    two = (await b.post("/api/sessions", json={"userId": "two"})).json()

    async def send(c: httpx.AsyncClient, session: dict[str, str]) -> httpx.Response:
        return await c.post(
            "/api/chat/messages",
            json={"sessionId": session["id"], "content": "spam"},
            headers=bearer(session["customerToken"]),
        )

    for c in (a, b, a, b, a):
        assert (await send(c, one)).status_code == 201
    assert_limited(await send(b, one))
    assert (await send(a, two)).status_code == 201
    assert await db.fetchval("SELECT count(*) FROM message") == 6
