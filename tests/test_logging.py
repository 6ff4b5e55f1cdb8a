"""The log an operator reads: one format, an access line per request with its id, JSON on
request, no credentials, and one line per Redis outage rather than one per failure."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.logs import redact
from app.outage import Outage
from tests.sockets import Client
from tests.support import PASSWORD, Factory, LiveServer, bearer, free_port


def started(name: str, **env: str) -> LiveServer:
    live = LiveServer(name, env)
    live.log_path.unlink(missing_ok=True)
    live.start()
    return live


@pytest.fixture
def json_server(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    live = started(
        f"json-{uuid.uuid4().hex[:6]}",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    try:
        yield live
    finally:
        live.stop()


def json_lines(live: LiveServer) -> list[dict[str, object]]:
    """Every line the server wrote after its CLI's start-up lines, each parsed as JSON."""
    lines = live.log_path.read_text().splitlines()
    ours = [line for line in lines if not line.startswith(("helpline:", "migrations:"))]
    return [json.loads(line) for line in ours]


async def test_json_log_parses_line_by_line_and_access_lines_carry_the_request_id(json_server):
    async with httpx.AsyncClient(base_url=json_server.url) as api:
        ok = await api.get("/health", headers={"X-Request-Id": "probe-1"})
        missing = await api.get("/api/sessions/not-a-session")
        await Factory(api).session()
    assert ok.headers["x-request-id"] == "probe-1"
    generated = missing.headers["x-request-id"]
    assert len(generated) == 32
    json_server.stop()  # flushes and adds the shutdown lines, which must parse too

    records = json_lines(json_server)
    access = [r for r in records if r["logger"] == "app.access"]
    [health] = [r for r in access if r.get("requestId") == "probe-1"]
    assert health["requestId"] == "probe-1" and health["status"] == 200
    assert health["method"] == "GET" and health["clientIp"] == "127.0.0.1"
    assert isinstance(health["durationMs"], float)
    assert [r["status"] for r in access if r.get("requestId") == generated] == [404]
    assert any(r["path"] == "/api/sessions" and r["status"] == 201 for r in access)
    loggers = {r["logger"] for r in records}
    assert {"sanic.server", "app.access", "app.main"} <= loggers


def test_start_line_names_the_port_and_the_mode(json_server):
    [line] = [r for r in json_lines(json_server) if "listening on" in str(r["message"])]
    assert f"http://127.0.0.1:{json_server.port}" in str(line["message"])
    assert "distributed mode" in str(line["message"])


async def test_an_error_line_carries_the_id_of_the_request_that_caused_it(redis_url):
    # PostgreSQL unreachable: the login answers 503 and the app logs why, for that request.
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/helpline"
    live = started(
        "dberror", DATABASE_URL=dead, REDIS_URL=redis_url, LOG_FORMAT="json", LOG_LEVEL="INFO"
    )
    try:
        async with httpx.AsyncClient(base_url=live.url) as api:
            r = await api.post(
                "/api/auth/login",
                json={"email": "a@example.com", "password": PASSWORD},
                headers={"X-Request-Id": "login-42"},
            )
    finally:
        live.stop()
    assert r.status_code == 503 and r.headers["x-request-id"] == "login-42"
    mine = [rec for rec in json_lines(live) if rec.get("requestId") == "login-42"]
    assert [rec["logger"] for rec in mine] == ["app.client_errors", "app.access"]
    assert mine[0]["level"] == "WARNING" and "unavailable" in str(mine[0]["message"])


async def test_no_token_or_password_reaches_the_log(database_url, redis_url):
    live = started("secrets", DATABASE_URL=database_url, REDIS_URL=redis_url, LOG_LEVEL="DEBUG")
    secret_password = f"pw-{uuid.uuid4().hex}"
    try:
        async with httpx.AsyncClient(base_url=live.url) as api:
            make = Factory(api)
            admin = await make.admin()
            token = admin["token"]
            email = admin["admin"]["email"]
            session = await make.session()
            customer_token = session["customerToken"]
            await api.post("/api/auth/login", json={"email": email, "password": secret_password})
            await api.get(f"/api/sessions?token={token}", headers=bearer(token))
            await api.get(f"/api/sessions/{session['id']}?password={secret_password}")
            # Socket.IO: the token in `auth`, and in the query string for older clients.
            client = await Client(live.url, customer_token, ["polling"]).connect()
            await client.call("join_session", session["id"])
            await client.close()
            polled = await api.get(f"/socket.io/?EIO=4&transport=polling&token={token}")
            assert polled.status_code == 200
    finally:
        live.stop()
    text = live.log_path.read_text()
    assert "GET /api/sessions?token=[redacted]" in text  # the line is there, the value not
    for secret in (token, customer_token, secret_password, PASSWORD):
        assert secret not in text
        # Nor any recognisable part of a token (a JWT's signature).
        assert secret.rsplit(".", 1)[-1] not in text


async def test_a_redis_outage_is_one_warning_not_one_per_failure(database_url):
    live = started(
        "redisdown",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        LOG_LEVEL="INFO",
    )
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as api:
            # Each creation hits the (failing open) rate limit; the sweep fails twice a second.
            for _ in range(10):
                assert (await api.post("/api/sessions", json={"userId": "u"})).status_code == 201
        await asyncio.sleep(2)
    finally:
        live.stop()
    log = live.log_path.read_text().splitlines()
    lines = [line for line in log if "Redis" in line and "WARNING" in line]
    assert len([line for line in lines if "Redis unavailable" in line]) == 1, lines
    assert len(lines) == 1, lines


def test_an_outage_logs_once_on_loss_and_once_on_recovery_with_the_count(caplog):
    outage = Outage("Redis")
    with caplog.at_level(logging.WARNING, logger="app.outage"):
        for _ in range(50):
            outage.failed("rate limit", ConnectionError("refused"))
        time.sleep(0.01)
        outage.succeeded()
        outage.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("Redis unavailable (rate limit: ConnectionError: refused)")
    assert "Redis available again after" in messages[1] and "(50 failed calls" in messages[1]


@pytest.mark.parametrize(
    ("line", "leak"),
    [
        ('body {"email": "a@b.co", "password": "two words"}', "two words"),
        ("{'password': 'hunter22'}", "hunter22"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("GET /socket.io/?EIO=4&token=eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGci"),
        ("dsn postgres://app:s3cret@db.example.com/helpline", "s3cret"),
        ('"customerToken": "eyJhbGciOiJIUzI1NiJ9.e30.sig"', "sig"),
    ],
)
def test_redaction_hides_credentials_in_any_spelling(line, leak):
    assert leak not in redact(line)
    assert "[redacted]" in redact(line)
