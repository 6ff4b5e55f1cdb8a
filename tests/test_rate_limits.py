"""Rate limits, counted in Redis so that every worker and machine shares them.

Two server processes with tight limits share one Redis; clients pick their source address
on the loopback network (127.0.0.x) to act as different machines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from tests.support import PASSWORD, LiveServer, assert_error, bearer

LIMITS = {
    "RATE_LOGIN_FAILURES": "3",
    "RATE_LOGIN_FAILURES_IP": "5",
    "RATE_LOGIN_EMAIL_CEILING": "4",
    "LOGIN_SLOWDOWN": "1",
    "RATE_REGISTER": "3",
    "RATE_SESSION_CREATE": "3",
    "RATE_MESSAGES": "5",
    "RATE_WINDOW": "60",
    # Real hashing cost: a password check takes long enough for a burst to overlap it.
    "ARGON2_TIME_COST": "2",
    "ARGON2_MEMORY_KIB": "19456",
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


async def test_failed_logins_from_many_addresses_slow_but_never_lock_the_owner_out(
    client: Client, two_admins: None
):
    # Five addresses fail for ada (past the per-email ceiling of 4), on both servers.
    for i, ip in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")):
        c = await client(ip, server=i % 2)
        assert_error(
            await login(c, "ada@example.com", "wrong password"), 401, "invalid_credentials"
        )
    owner = await client("127.0.0.7", server=1)
    started = time.monotonic()
    assert (await login(owner, "ada@example.com", PASSWORD)).status_code == 200
    # Past the ceiling every login for the email waits LOGIN_SLOWDOWN (1 s) first.
    assert time.monotonic() - started >= 1
    assert (await login(owner, "bob@example.com", PASSWORD)).status_code == 200


async def test_failed_logins_are_limited_per_email_and_address_across_servers(
    client: Client, two_admins: None
):
    for server in (0, 1, 0):
        c = await client("127.0.0.2", server=server)
        assert_error(
            await login(c, "ada@example.com", "wrong password"), 401, "invalid_credentials"
        )
    # Even the right password waits out the window from that address...
    assert_limited(await login(await client("127.0.0.2", server=1), "ada@example.com", PASSWORD))
    # ... while the same address may still log in as someone else, and ada elsewhere.
    assert (await login(await client("127.0.0.2"), "bob@example.com", PASSWORD)).status_code == 200
    assert (await login(await client("127.0.0.3"), "ada@example.com", PASSWORD)).status_code == 200


async def test_failed_logins_are_limited_per_address(client: Client, two_admins: None):
    c = await client("127.0.0.2")
    for i in range(5):
        r = await login(c, f"x{i}@example.com", "wrong password")
        assert_error(r, 401, "invalid_credentials")
    assert_limited(await login(c, "ada@example.com", PASSWORD))
    other = await client("127.0.0.3")
    assert (await login(other, "ada@example.com", PASSWORD)).status_code == 200


async def test_a_concurrent_burst_of_logins_checks_no_more_passwords_than_the_limit(
    client: Client, two_admins: None
):
    clients = [await client("127.0.0.2", server=i % 2) for i in range(30)]
    # Connected beforehand, so the logins arrive together.
    await asyncio.gather(*(c.get("/health") for c in clients))
    answers = await asyncio.gather(
        *(login(c, "ada@example.com", "wrong password") for c in clients)
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 3 + [429] * 27


async def test_retry_after_says_when_the_window_really_frees(client: Client, two_admins: None):
    c = await client("127.0.0.2")
    for _ in range(3):
        await login(c, "ada@example.com", "wrong password")
    await asyncio.sleep(2.2)
    r = await login(c, "ada@example.com", "wrong password")
    assert_limited(r)
    # The window opened over 2 s ago: it frees in at most 58 s (rounded up), not 60.
    assert int(r.headers["retry-after"]) <= 58


async def test_a_successful_login_clears_the_failure_count(client: Client, two_admins: None):
    c = await client("127.0.0.2")
    for _ in range(2):
        await login(c, "ada@example.com", "wrong password")
    assert (await login(c, "ada@example.com", PASSWORD)).status_code == 200
    for _ in range(2):
        await login(c, "ada@example.com", "wrong password")
    assert (await login(c, "ada@example.com", PASSWORD)).status_code == 200


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


@pytest.fixture(scope="module")
def behind_proxy(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    """A server told that one proxy (Heroku's router, say) stands in front of it."""
    with LiveServer.running(
        "strict-proxied", database_url, redis_url, TRUSTED_PROXIES="1", **LIMITS
    ) as live:
        yield live


async def create_as(c: httpx.AsyncClient, forwarded_for: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    r = await c.post("/api/sessions", json={"userId": "u"}, headers=headers)
    return r.status_code


async def test_behind_a_trusted_proxy_one_visitor_is_limited_and_not_the_others(
    behind_proxy: LiveServer,
):
    # Every request comes from the proxy's address; the proxy appends the visitor's.
    async with httpx.AsyncClient(base_url=behind_proxy.url, timeout=10) as router:
        assert [await create_as(router, "203.0.113.7") for _ in range(3)] == [201] * 3
        assert await create_as(router, "203.0.113.7") == 429
        # Whatever the visitor writes into the header itself stays to the left: ignored.
        assert await create_as(router, "198.51.100.1, 203.0.113.7") == 429
        assert await create_as(router, "198.51.100.9") == 201


async def test_without_trusted_proxies_a_forwarded_for_header_is_ignored(client: Client):
    c = await client("127.0.0.2")
    statuses = [await create_as(c, f"198.51.100.{i}") for i in range(4)]
    assert statuses == [201, 201, 201, 429]


async def test_a_burst_of_messages_through_two_servers_stops_within_the_stated_bound(
    client: Client, db
):
    # RATE_MESSAGES = 5 on each of W = 2 servers: at most (W - 1) x 5 // 2 over the limit
    # (README, Security); every message past it answered 429 with its Retry-After.
    a, b = await client("127.0.0.2", server=0), await client("127.0.0.3", server=1)
    session = (await a.post("/api/sessions", json={"userId": "burst"})).json()
    senders = [a, b] * 10
    await asyncio.gather(*(c.get("/health") for c in senders))
    answers = await asyncio.gather(
        *(
            c.post(
                "/api/chat/messages",
                json={"sessionId": session["id"], "content": f"spam {i}"},
                headers=bearer(session["customerToken"]),
            )
            for i, c in enumerate(senders)
        )
    )
    created = [r for r in answers if r.status_code == 201]
    assert 5 <= len(created) <= 5 + 5 // 2
    for r in answers:
        if r.status_code != 201:
            assert_limited(r)
    assert await db.fetchval("SELECT count(*) FROM message") == len(created)
