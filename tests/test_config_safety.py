"""Start-up safety: ENV is a closed set, and no known secret ever signs tokens."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.support import ROOT, SERVER_ENV, LiveServer, bearer, forge, sign_in_of


def test_an_unknown_env_value_refuses_to_start(database_url: str, redis_url: str):
    env = {**os.environ, **SERVER_ENV, "ENV": "prod", "DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=ROOT,
        env={**env, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "ENV must be one of development, test, production, got 'prod'" in out.stderr


def test_without_a_secret_outside_production_no_known_secret_signs_tokens(
    database_url: str, redis_url: str
):
    with LiveServer.running(
        "no-secret", database_url, redis_url, JWT_SECRET="", ENV="", WEB_CONCURRENCY="2"
    ) as live:
        r = httpx.post(
            f"{live.url}/api/auth/register",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
        assert r.status_code == 201, r.text
        admin_id = r.json()["admin"]["id"]
        # The random secret of this start is shared by both workers (new connection each).
        for _ in range(6):
            ok = httpx.get(f"{live.url}/api/sessions", headers=bearer(r.json()["token"]))
            assert ok.status_code == 200
        # The old published default signs nothing any more (an empty key cannot sign).
        forged = forge({"sub": admin_id}, secret="change-me")
        refused = httpx.get(f"{live.url}/api/sessions", headers=bearer(forged))
        assert refused.status_code == 401
        assert "random secret for this start" in live.log_path.read_text()


def test_a_start_draws_its_own_secret_and_never_one_from_its_environment(
    database_url: str, redis_url: str
):
    inherited = "secret-of-another-start-" + "y" * 24
    with LiveServer.running(
        "inherited-secret",
        database_url,
        redis_url,
        JWT_SECRET="",
        ENV="",
        HELPLINE_GENERATED_JWT_SECRET=inherited,
    ) as live:
        r = httpx.post(
            f"{live.url}/api/auth/register",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        claims = {"sub": r.json()["admin"]["id"], "sid": sign_in_of(token)}
        assert httpx.get(f"{live.url}/api/sessions", headers=bearer(token)).status_code == 200
        forged = forge(claims, secret=inherited)
        refused = httpx.get(f"{live.url}/api/sessions", headers=bearer(forged))
        assert refused.status_code == 401
