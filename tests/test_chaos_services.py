"""A backing service goes away and comes back: the server says which, serves what it can
meanwhile, and recovers by itself (private Redis and PostgreSQL, never the shared ones)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.faults import PrivatePostgres, PrivateRedis
from tests.sockets import Client
from tests.support import PASSWORD, Factory, LiveServer, bearer


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis.running() as instance:
        yield instance


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres.running() as instance:
        yield instance


@pytest.fixture
def on_private_redis(database_url: str, private_redis: PrivateRedis) -> Iterator[LiveServer]:
    with LiveServer.running("services-redis", database_url, private_redis.url) as live:
        yield live


@pytest.fixture
def on_private_pg(private_pg: PrivatePostgres, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer.running("services-pg", private_pg.url, redis_url) as live:
        yield live


@pytest.fixture
async def redis_down(private_redis: PrivateRedis) -> AsyncIterator[PrivateRedis]:
    """Yields once Redis is stopped; starts it again whatever the test did."""
    try:
        yield private_redis
    finally:
        if private_redis.process is None:
            await asyncio.to_thread(private_redis.start)


async def until_ok(probe: Any, within: float = 15) -> Any:
    """Poll `probe()` until it answers below 400: recovery takes a retry or two."""
    deadline = time.monotonic() + within
    while True:
        answer = await probe()
        if answer.status_code < 400 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


async def test_with_redis_down_rest_and_sockets_keep_serving_and_ready_names_redis(
    on_private_redis, redis_down
):
    async with httpx.AsyncClient(base_url=on_private_redis.url, timeout=10) as api:
        make = Factory(api)
        admin = await make.admin("agent@example.com")
        session = await make.session()
        customer = await Client(on_private_redis.url, session["customerToken"]).connect()
        agent = await Client(on_private_redis.url, admin["token"]).connect()
        try:
            # The connect handler counts the customer before it answers the CONNECT.
            inbox = await api.get("/api/sessions", headers=bearer(admin["token"]))
            assert [s["customerOnline"] for s in inbox.json()] == [True]
            await asyncio.to_thread(redis_down.stop)

            ready = await api.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "ok"
            # The reason an operator can act on (README, Reliability), not a wrapper.
            assert ready.json()["checks"]["redis"] == "down: ConnectionError"

            login = await api.post(
                "/api/auth/login", json={"email": "agent@example.com", "password": PASSWORD}
            )
            assert login.status_code == 200
            other = await make.session()
            posted = await make.message(other["customerToken"], other["id"], "over REST")
            history = await api.get(
                f"/api/chat/messages/{other['id']}", headers=bearer(admin["token"])
            )
            assert [m["id"] for m in history.json()] == [posted["id"]]
            inbox = await api.get("/api/sessions", headers=bearer(admin["token"]))
            assert inbox.status_code == 200, inbox.text
            assert [s["customerOnline"] for s in inbox.json()] == [False, False]

            joined = await customer.call("join_session", {"sessionId": session["id"], "after": 0})
            assert joined["ok"] is True
            assert joined["typing"] == {"user": False, "admin": False}
            ack = await customer.call(
                "send_message", {"sessionId": session["id"], "content": "still here"}
            )
            assert ack["ok"] is True
            # Same worker: delivered without Redis.
            seen = await agent.wait_for("new_message", lambda m: m["content"] == "still here")
            assert seen["id"] == ack["message"]["id"]

            await asyncio.to_thread(redis_down.start)
            ready = await until_ok(lambda: api.get("/health/ready"))
            assert ready.status_code == 200, ready.text
        finally:
            await customer.close()
            await agent.close()


async def test_with_postgres_down_everything_answers_retryable_503_and_recovers(
    on_private_pg, private_pg
):
    pg = private_pg
    async with httpx.AsyncClient(base_url=on_private_pg.url, timeout=10) as api:
        make = Factory(api)
        token = await make.admin_token()
        session = await make.session()
        customer = await Client(on_private_pg.url, session["customerToken"]).connect()
        send = {"sessionId": session["id"], "content": "anyone?", "clientMessageId": "m-1"}
        try:
            await asyncio.to_thread(pg.stop)

            ready = await api.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("down")
            assert ready.json()["checks"]["redis"] == "ok"
            for answer in (
                await api.get("/api/sessions", headers=bearer(token)),
                await api.post("/api/sessions", json={"userId": "late"}),
                await api.get(f"/api/chat/messages/{session['id']}", headers=bearer(token)),
            ):
                assert answer.status_code == 503
                assert answer.headers["content-type"].startswith("application/json")
                assert answer.json()["code"] == "service_unavailable"
                assert "Retry-After" in answer.headers
            ack = await customer.call("send_message", send)
            assert ack["ok"] is False
            assert ack["error"]["code"] == "service_unavailable"
            assert ack["error"]["retryable"] is True
        finally:
            await asyncio.to_thread(pg.start)
        try:
            listed = await until_ok(lambda: api.get("/api/sessions", headers=bearer(token)))
            assert listed.status_code == 200, listed.text
            assert (await until_ok(lambda: api.get("/health/ready"))).status_code == 200
            ack = await customer.call("send_message", send)
            assert ack["ok"] is True and ack["message"]["seq"] == 1
        finally:
            await customer.close()
