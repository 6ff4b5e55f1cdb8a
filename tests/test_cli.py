"""The `helpline` console script: create-admin and doctor, run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import PASSWORD, ROOT, SERVER_ENV, free_port, pg_admin, url_of_database

# Empty values, not absent ones: a developer's .env must not fill them in.
EMBEDDED = {"DATABASE_URL": "", "REDIS_URL": ""}


def helpline(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env={**os.environ, **SERVER_ENV, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "helpline.sqlite3")


@pytest.fixture
def migrated_sqlite(sqlite_path: str) -> str:
    out = helpline("migrate", **EMBEDDED, SQLITE_PATH=sqlite_path)
    assert out.returncode == 0, out.stderr
    return sqlite_path


@pytest.fixture
async def unmigrated_database_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database: reachable, but no migration has run."""
    name = f"helpline_empty_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield url_of_database(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def problems(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stdout.splitlines() if line.startswith("problem: ")]


async def test_create_admin_makes_an_account_that_can_log_in(api, database_url):
    out = helpline(
        "create-admin", " Boss@Example.com ", "--full-name", "Boss",
        stdin=PASSWORD + "\n", DATABASE_URL=database_url,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "created admin boss@example.com" in out.stdout
    r = await api.post("/api/auth/login", json={"email": "boss@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["admin"]["fullName"] == "Boss"


async def test_create_admin_works_after_registration_closed(api, make, database_url):
    await make.admin()
    out = helpline(
        "create-admin", "second@example.com", "--password", PASSWORD, DATABASE_URL=database_url
    )
    assert out.returncode == 0, out.stderr
    r = await api.post(
        "/api/auth/login", json={"email": "second@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200


async def test_create_admin_refuses_a_taken_email(make, database_url):
    taken = (await make.admin())["admin"]["email"]
    out = helpline("create-admin", taken, "--password", PASSWORD, DATABASE_URL=database_url)
    assert out.returncode == 1
    assert "already registered" in out.stderr


async def test_create_admin_applies_the_registration_rules(db, database_url):
    out = helpline("create-admin", "not-an-email", "--password", "short", DATABASE_URL=database_url)
    assert out.returncode == 1
    assert "email must be an email address" in out.stderr
    assert "password needs 8+ characters" in out.stderr
    assert await db.fetchval("SELECT count(*) FROM admin") == 0


def test_create_admin_on_the_embedded_database(migrated_sqlite):
    out = helpline(
        "create-admin", "solo@example.com", "--password", PASSWORD,
        **EMBEDDED, SQLITE_PATH=migrated_sqlite,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_doctor_passes_a_healthy_production_setup(database_url, redis_url):
    out = helpline("doctor", ENV="production", DATABASE_URL=database_url, REDIS_URL=redis_url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert problems(out) == []


def test_doctor_passes_a_migrated_embedded_setup(migrated_sqlite):
    out = helpline("doctor", **EMBEDDED, SQLITE_PATH=migrated_sqlite)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("secret", "expected"),
    [("", "JWT_SECRET is missing"), ("change-me", "JWT_SECRET is missing"),
     ("short-secret", "shorter than 32")],
    ids=["missing", "default", "short"],
)  # fmt: skip
def test_doctor_reports_a_weak_secret(migrated_sqlite, secret, expected):
    out = helpline("doctor", **EMBEDDED, SQLITE_PATH=migrated_sqlite, JWT_SECRET=secret)
    assert out.returncode == 1
    assert len(problems(out)) == 1
    assert expected in problems(out)[0]


def test_doctor_reports_an_unreachable_database(redis_url):
    url = f"postgres://postgres@127.0.0.1:{free_port()}/helpline"
    out = helpline("doctor", DATABASE_URL=url, REDIS_URL=redis_url)
    assert out.returncode == 1
    assert [p for p in problems(out) if p.startswith("problem: database unreachable")]
    assert not [p for p in problems(out) if "Redis" in p]


def test_doctor_reports_an_unreachable_redis(database_url):
    out = helpline(
        "doctor", DATABASE_URL=database_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}"
    )
    assert out.returncode == 1
    assert [p for p in problems(out) if p.startswith("problem: Redis unreachable")]
    assert len(problems(out)) == 1


def test_doctor_reports_pending_migrations_without_creating_the_database(sqlite_path):
    out = helpline("doctor", **EMBEDDED, SQLITE_PATH=sqlite_path)
    assert out.returncode == 1
    assert [p for p in problems(out) if p.startswith("problem: migrations pending")]
    assert not Path(sqlite_path).exists()


def test_doctor_reports_pending_migrations_on_postgresql(unmigrated_database_url, redis_url):
    out = helpline("doctor", DATABASE_URL=unmigrated_database_url, REDIS_URL=redis_url)
    assert out.returncode == 1
    [problem] = problems(out)
    assert problem.startswith("problem: migrations pending")


def test_doctor_reports_more_than_one_embedded_worker(migrated_sqlite):
    out = helpline("doctor", **EMBEDDED, SQLITE_PATH=migrated_sqlite, WEB_CONCURRENCY="2")
    assert out.returncode == 1
    assert "one worker only" in problems(out)[0]


def test_serve_refuses_more_than_one_embedded_worker(sqlite_path):
    out = helpline("serve", **EMBEDDED, SQLITE_PATH=sqlite_path, WEB_CONCURRENCY="2")
    assert out.returncode == 2
    assert "embedded mode (no DATABASE_URL/REDIS_URL) runs one worker only" in out.stderr
