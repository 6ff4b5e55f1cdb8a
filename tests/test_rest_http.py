"""REST at the HTTP level: every failure is the JSON error shape, never HTML or a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import LiveServer, assert_error, bearer


async def test_an_unknown_route_is_a_json_404(api):
    assert_error(await api.get("/api/nothing-here"), 404, "not_found")
    assert_error(await api.get("/"), 404, "not_found")


async def test_a_wrong_method_is_a_json_405(api):
    assert_error(await api.delete("/api/sessions"), 405, "method_not_allowed")
    assert_error(await api.put("/api/auth/login", json={}), 405, "method_not_allowed")


async def test_a_body_over_the_cap_is_a_json_413(api):
    r = await api.post("/api/sessions", content=b'{"userId": "' + b"x" * 70_000 + b'"}')
    assert_error(r, 413, "payload_too_large")


async def test_a_url_over_the_cap_is_a_json_413_that_every_route_documents(api, make):
    # The REST fuzzer found it: a long query string on a GET is refused before any handler.
    token = await make.admin_token()
    r = await api.get("/api/canned-responses?q=" + "x" * 20_000, headers=bearer(token))
    assert_error(r, 413, "payload_too_large")
    spec = (await api.get("/docs/openapi.json")).json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op and "413" not in op["responses"]
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"userId": "a"', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"", "invalid_body"),
        (b"[]", "invalid_body"),
        (b'"a string"', "invalid_body"),
        (b"42", "invalid_body"),
        (b"null", "invalid_body"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(api, content, code):
    for path in ("/api/sessions", "/api/auth/register", "/api/auth/login"):
        r = await api.post(path, content=content, headers={"content-type": "application/json"})
        assert_error(r, 400, code)


async def test_a_message_body_that_is_not_an_object_is_a_400(api, make):
    session = await make.session()
    r = await api.post(
        "/api/chat/messages", content=b"[1, 2]", headers=bearer(session["customerToken"])
    )
    assert_error(r, 400, "invalid_body")


async def test_cors_preflight_allows_the_widget_origin(api):
    r = await api.options(
        "/api/sessions",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] in ("*", "https://shop.example.com")


# PostgreSQL unreachable: a server whose DATABASE_URL points at a closed port.


@pytest.fixture(scope="module")
def no_database(redis_url: str) -> Iterator[LiveServer]:
    dead = "postgres://postgres@127.0.0.1:9/helpline_nowhere"
    with LiveServer.running("no-db", dead, redis_url) as live:
        yield live


async def test_with_the_database_down_requests_answer_503_json_with_retry_after(no_database):
    async with httpx.AsyncClient(base_url=no_database.url, timeout=10) as api:
        r = await api.post("/api/sessions", json={"userId": "u"})
        assert_error(r, 503, "service_unavailable")
        assert int(r.headers["retry-after"]) > 0
        r = await api.post("/api/auth/login", json={"email": "a@example.com", "password": "x" * 8})
        assert_error(r, 503, "service_unavailable")
        assert (await api.get("/health")).status_code == 200


async def test_readiness_names_the_database_as_down(no_database):
    async with httpx.AsyncClient(base_url=no_database.url, timeout=10) as api:
        r = await api.get("/health/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("down")
    assert body["checks"]["redis"] == "ok"
