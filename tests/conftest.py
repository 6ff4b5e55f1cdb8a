"""Fixtures: a fresh PostgreSQL database built by the migrations, Redis, live servers.

Servers run as real `helpline serve` processes (a Sanic app cannot start twice in one
process, and Socket.IO state must not straddle event loops). Each test starts from empty
tables and an empty Redis database.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from tests.support import (
    REDIS_NAMESPACE,
    REDIS_TEST_URL,
    Factory,
    LiveServer,
    migrate,
    pg_admin,
    url_of_database,
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    import asyncio

    name = f"helpline_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    url = url_of_database(name)
    migrate(url)
    yield url
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_TEST_URL


@pytest.fixture(scope="session")
def server(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer.running("a", database_url, redis_url) as live:
        yield live


@pytest.fixture(scope="session")
def server_b(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    """A second server process on the same database and Redis: another worker."""
    with LiveServer.running("b", database_url, redis_url) as live:
        yield live


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def clean(db: asyncpg.Connection, redis: aioredis.Redis) -> None:
    """Every test starts from empty tables and none of this run's Redis keys."""
    await db.execute(
        "DELETE FROM message; DELETE FROM chat_session; DELETE FROM admin;"
        " DELETE FROM canned_response;"
    )
    keys = [k async for k in redis.scan_iter(match=f"{REDIS_NAMESPACE}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def api(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def make(api: httpx.AsyncClient) -> Factory:
    return Factory(api)


# The files that take longest (most of a minute each on a quiet machine, 2026-11-27),
# started first: pytest-xdist hands out whole files (`--dist loadscope`, in collection
# order with `--no-loadscope-reorder`), so a long one started last would run alone at the
# end. Only the order depends on this list; a stale entry costs seconds, not coverage.
SLOW_FIRST = (
    "test_fuzz_rest.py",
    "test_fuzz_socket.py",
    "test_bench_smoke.py",
    "test_demo_browser.py",
    "test_cli.py",
    "test_routing.py",
    "test_embedded.py",
    "test_chaos.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A random UUID parameter (an id nothing has) is named `<argname>-uuid`: every xdist
    worker must collect the same test ids, and uuid4() differs in each."""
    if isinstance(val, uuid.UUID):
        return f"{argname}-uuid"
    if isinstance(val, str):
        with contextlib.suppress(ValueError):
            if str(uuid.UUID(val)) == val:
                return f"{argname}-uuid"
    return None


def pytest_configure(config: pytest.Config) -> None:
    os.makedirs(os.path.join(os.path.dirname(__file__), "artifacts"), exist_ok=True)
