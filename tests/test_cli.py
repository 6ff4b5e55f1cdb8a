"""The `helpline` console script: create-admin and doctor, run as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.doctor import known_migrations
from tests.support import (
    PASSWORD,
    ROOT,
    SERVER_ENV,
    LiveServer,
    free_port,
    pg_admin,
    url_of_database,
)

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


async def test_create_admin_with_role_agent_makes_an_agent(api, make, database_url):
    await make.admin()
    out = helpline(
        "create-admin", "helper@example.com", "--role", "agent", "--password", PASSWORD,
        DATABASE_URL=database_url,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "created agent helper@example.com" in out.stdout
    r = await api.post(
        "/api/auth/login", json={"email": "helper@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    assert r.json()["admin"]["role"] == "agent"


async def test_create_admin_refuses_an_unknown_role_in_one_line(make, db, database_url):
    await make.admin()
    out = helpline(
        "create-admin", "boss@example.com", "--role", "owner", "--password", PASSWORD,
        DATABASE_URL=database_url,
    )  # fmt: skip
    line = one_line_failure(out, code=2)
    assert "'owner'" in line and "admin" in line and "agent" in line
    assert await db.fetchval("SELECT count(*) FROM admin") == 1


async def test_create_admin_refuses_an_agent_as_the_first_account(db, database_url):
    out = helpline(
        "create-admin", "helper@example.com", "--role", "agent", "--password", PASSWORD,
        DATABASE_URL=database_url,
    )  # fmt: skip
    assert "first account must be an admin" in one_line_failure(out)
    assert await db.fetchval("SELECT count(*) FROM admin") == 0


@pytest.mark.parametrize("argv", [["serv"], ["create-admn", "a@example.com"], []])
def test_an_unknown_or_missing_command_is_one_line_naming_the_commands(argv):
    line = one_line_failure(helpline(*argv), code=2)
    assert "serve, migrate, create-admin, doctor" in line


@pytest.mark.parametrize("argv", [["create-admin"], ["--verbose", "doctor"], ["migrate", "now"]])
def test_any_other_command_line_mistake_is_one_line(argv):
    assert "helpline --help" in one_line_failure(helpline(*argv), code=2)


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
    assert "embedded mode (no REDIS_URL) runs one worker only" in out.stderr


def one_line_failure(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The command failed with `code` and said why in exactly one line, no traceback."""
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == code, out.stdout + out.stderr
    assert len(lines) == 1 and lines[0].startswith("helpline: "), out.stderr
    return lines[0]


def missing_database_url() -> str:
    return url_of_database(f"helpline_missing_{uuid.uuid4().hex[:8]}")


def unreachable_database_url() -> str:
    return f"postgres://postgres:hunter22@127.0.0.1:{free_port()}/helpline"


@pytest.mark.parametrize("command", ["migrate", "create-admin"])
def test_a_missing_database_is_one_line_naming_it(command):
    args = ["create-admin", "a@example.com", "--password", PASSWORD] if command != "migrate" else []
    out = helpline(*(args or [command]), DATABASE_URL=missing_database_url(), REDIS_URL="")
    line = one_line_failure(out)
    assert "does not exist" in line and "createdb" in line


@pytest.mark.parametrize("command", ["migrate", "create-admin"])
def test_an_unreachable_database_is_one_line_without_the_password(command):
    args = ["create-admin", "a@example.com", "--password", PASSWORD] if command != "migrate" else []
    out = helpline(*(args or [command]), DATABASE_URL=unreachable_database_url(), REDIS_URL="")
    line = one_line_failure(out)
    assert line.startswith("helpline: cannot reach PostgreSQL at 127.0.0.1:")
    assert "hunter22" not in out.stdout + out.stderr


def test_create_admin_on_an_unmigrated_database_says_to_migrate(unmigrated_database_url):
    out = helpline(
        "create-admin", "a@example.com", "--password", PASSWORD,
        DATABASE_URL=unmigrated_database_url,
    )  # fmt: skip
    assert "run `helpline migrate`" in one_line_failure(out)


@pytest.mark.parametrize("command", ["serve", "migrate", "create-admin", "doctor"])
@pytest.mark.parametrize(
    ("variable", "url"),
    [("DATABASE_URL", "mysql://db/helpline"), ("REDIS_URL", "localhost:6379"),
     ("DATABASE_URL", "postgres://db:port/x")],
    ids=["database-scheme", "redis-scheme", "bad-port"],
)  # fmt: skip
def test_a_malformed_url_is_named_in_one_line_by_every_command(command, variable, url):
    # A database that does not exist: a command that wrongly went on could change nothing.
    env = {"DATABASE_URL": missing_database_url(), "REDIS_URL": "redis://127.0.0.1:6379"}
    env[variable] = url
    args = ["a@example.com", "--password", PASSWORD] if command == "create-admin" else []
    out = helpline(command, *args, **env)
    assert "Traceback" not in out.stderr + out.stdout
    if command == "doctor":
        assert out.returncode == 1
        [problem] = problems(out)
        assert variable in problem
    else:
        assert variable in one_line_failure(out, code=2)


def test_redis_url_without_database_url_is_refused(sqlite_path):
    out = helpline("serve", DATABASE_URL="", REDIS_URL="redis://127.0.0.1:6379")
    assert "REDIS_URL is set without DATABASE_URL" in one_line_failure(out, code=2)


@pytest.mark.parametrize("command", ["migrate", "create-admin"])
def test_a_failure_without_jwt_secret_is_still_one_line(command):
    """No JWT_SECRET (a fresh clone before its first serve): the per-start secret's
    warning is the server's business, not a second line before these commands' one."""
    args = ["create-admin", "a@example.com", "--password", PASSWORD] if command != "migrate" else []
    env = {**SERVER_ENV, "DATABASE_URL": unreachable_database_url(), "REDIS_URL": ""}
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "JWT_SECRET"}
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", *(args or [command])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert one_line_failure(out).startswith("helpline: cannot reach PostgreSQL")


def test_create_admin_at_end_of_input_changes_nothing(db, database_url):
    out = helpline("create-admin", "a@example.com", stdin="", DATABASE_URL=database_url)
    assert "no input" in one_line_failure(out)


async def reading_stdin(pid: int, within: float = 60) -> None:
    """Until the process is blocked reading fd 0 (Linux: /proc/<pid>/syscall is `0 0x0 …`,
    read(0, …)): a Ctrl-C before that would land in the interpreter's start-up instead."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(OSError):
            syscall = await asyncio.to_thread(Path(f"/proc/{pid}/syscall").read_text)
            if syscall.startswith("0 0x0 "):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the command never waited for stdin")


async def test_create_admin_interrupted_by_ctrl_c_exits_130(database_url):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "create-admin", "a@example.com",
        cwd=ROOT, env={**os.environ, **SERVER_ENV, "DATABASE_URL": database_url},
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await reading_stdin(process.pid)
    process.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130
    assert stderr.decode().strip() == "helpline: interrupted"


def test_debug_shows_the_traceback():
    out = helpline("--debug", "migrate", DATABASE_URL=unreachable_database_url(), REDIS_URL="")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_migrate_reports_in_one_line(unmigrated_database_url):
    out = helpline("migrate", DATABASE_URL=unmigrated_database_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [
        f"migrations: {len(known_migrations())} applied, database up to date "
        f"(PostgreSQL {unmigrated_database_url.rsplit('@', 1)[-1]})"
    ]


@pytest.mark.parametrize(
    ("env", "mode"),
    [({"DATABASE_URL": "", "REDIS_URL": ""}, "embedded mode"),
     ({"REDIS_URL": ""}, "standalone mode: PostgreSQL, in-process state"),
     ({}, "distributed mode")],
    ids=["embedded", "standalone", "distributed"],
)  # fmt: skip
def test_doctor_names_the_mode_and_the_environment(env, mode, database_url, redis_url, tmp_path):
    base = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SQLITE_PATH": str(tmp_path / "x.sqlite3"),
    }
    out = helpline("doctor", **{**base, **env})
    first, second = out.stdout.splitlines()[:2]
    assert first.startswith(f"helpline doctor: {mode}")
    assert second.startswith("environment: ENV=development, ")
    if env.get("REDIS_URL") == "":
        assert "no REDIS_URL" in second
        assert "Redis" not in " ".join(problems(out))


def test_standalone_server_migrates_and_serves_without_redis(unmigrated_database_url):
    live = LiveServer("standalone", {"DATABASE_URL": unmigrated_database_url, "REDIS_URL": ""})
    live.log_path.unlink(missing_ok=True)
    live.start()
    try:
        r = httpx.get(f"{live.url}/health/ready")
    finally:
        live.stop()
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "redis": "embedded"}}
    assert "helpline: standalone mode" in live.log_path.read_text()
