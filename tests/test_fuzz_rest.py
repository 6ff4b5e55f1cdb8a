"""Every REST route, fuzzed from its own OpenAPI description against a live server:
valid and invalid inputs, with no token, an admin's or a customer's, and with ids that
exist. Nothing may answer 5xx, every answer must be one the document describes (its
status, its body's schema, its declared headers), and the server must still be there
afterwards."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import LiveServer, bearer

EXAMPLES_PER_ROUTE = 120
FUZZ_EMAIL = "fuzz@example.com"
FUZZ_PASSWORD = "fuzz-password-1"
# What an answer must match in the OpenAPI document the models generate (app/contract.py).
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def world(server: LiveServer) -> dict[str, str]:
    """An admin, a session and a message, so fuzzed ids sometimes name real things."""
    with httpx.Client(base_url=server.url, timeout=10) as api:
        admin = api.post(
            "/api/auth/register",
            json={"email": FUZZ_EMAIL, "password": FUZZ_PASSWORD},
        ).json()
        session = api.post("/api/sessions", json={"userId": "fuzz"}).json()
        message = api.post(
            "/api/chat/messages",
            json={"sessionId": session["id"], "content": "seed"},
            headers=bearer(session["customerToken"]),
        ).json()
    return {
        "admin": admin["token"],
        "customer": session["customerToken"],
        "session_id": session["id"],
        "message_id": message["id"],
    }


MODES = ["none", "admin", "customer", "admin-real", "customer-real"]


def call(case: Any, mode: str, url: str, world: dict[str, str], figures: Counter[str]) -> None:
    headers = bearer(world[mode.split("-")[0]]) if mode != "none" else {}
    if mode.endswith("-real"):
        for name in case.path_parameters or {}:
            if name in world:
                case.path_parameters[name] = world[name]
    response = case.call(base_url=url, headers=headers, timeout=10)
    if mode.startswith("admin") and response.status_code == 401:
        # The fuzzer logged its admin out (logout, logout-all, a password change): sign in
        # again, so later cases keep exercising the routes as an admin.
        _sign_in_again(url, world, figures)
    figures["requests"] += 1
    figures[f"{response.status_code // 100}xx"] += 1
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        kind = response.headers.get("content-type") or [""]
        assert kind[0].startswith("application/json"), response.text
    case.validate_response(response, checks=CONFORMANCE)
    figures["validated"] += 1


def _sign_in_again(url: str, world: dict[str, str], figures: Counter[str]) -> None:
    with httpx.Client(base_url=url, timeout=10) as api:
        headers = bearer(world["admin"])
        if api.get("/api/auth/me", headers=headers).status_code != 401:
            return
        r = api.post("/api/auth/login", json={"email": FUZZ_EMAIL, "password": FUZZ_PASSWORD})
        if r.status_code == 200:
            world["admin"] = r.json()["token"]
            figures["signed_in_again"] += 1


# The routes are fuzzed in shards, one class each: pytest-xdist (`--dist loadscope`) gives
# each class to a worker of its own, so they share the work. Every route is in exactly one
# shard; together they are the whole document.
SHARDS = 4


class Shard:
    """One shard of the fuzzing: the routes whose position (by label) is `n` mod SHARDS."""

    n = 0

    def test_no_route_answers_5xx(self, server: LiveServer, world: dict[str, str]) -> None:
        fuzz_routes(server, world, self.n)


class TestShard0(Shard):
    n = 0


class TestShard1(Shard):
    n = 1


class TestShard2(Shard):
    n = 2


class TestShard3(Shard):
    n = 3


def test_the_shards_are_all_the_routes() -> None:
    assert sorted(shard.n for shard in Shard.__subclasses__()) == list(range(SHARDS))


def fuzz_routes(server: LiveServer, world: dict[str, str], shard: int) -> None:
    figures: Counter[str] = Counter()
    schema = schemathesis.openapi.from_url(f"{server.url}/docs/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "an operation the fuzzer cannot read"
    assert len(operations) > 10
    mine = sorted(operations, key=lambda operation: operation.label)[shard::SHARDS]
    for operation in mine:
        for generation in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation), mode=st.sampled_from(MODES))
            @settings(
                max_examples=EXAMPLES_PER_ROUTE,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def fuzz(case: Any, mode: str) -> None:
                call(case, mode, server.url, world, figures)

            try:
                fuzz()
            except Unsatisfiable:
                # Nothing in this route can be made invalid (no parameters, no body).
                assert generation is GenerationMode.NEGATIVE, operation.label
        figures["routes"] += 1
    print(f"\n[fuzz:rest shard {shard}] {dict(figures)}")
    assert figures["routes"] == len(mine) > 0
    assert figures["5xx"] == 0
    assert figures["validated"] == figures["requests"]
    # The server is still there afterwards.
    assert server.process is not None and server.process.poll() is None
    assert httpx.get(f"{server.url}/health/ready", timeout=5).status_code == 200


async def test_nul_character_found_by_the_fuzzer_is_refused_as_bad_input(api, make):
    login = await api.post("/api/auth/login", json={"email": "a\x00@b.c", "password": "x" * 8})
    assert login.status_code == 400
    session = await make.session()
    sent = await api.post(
        "/api/chat/messages",
        json={"sessionId": session["id"], "content": "nul \x00 byte"},
        headers=bearer(session["customerToken"]),
    )
    assert sent.status_code == 400
    assert sent.json()["details"]["fields"]["content"] == "must not contain NUL characters"
