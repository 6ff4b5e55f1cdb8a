"""The Procfile as a Heroku-style platform runs it: release migrates, web serves on $PORT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support import JWT_SECRET, REDIS_NAMESPACE, ROOT, free_port, pg_admin, url_of_database


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def platform_env(**extra: str) -> dict[str, str]:
    """A dyno's environment: the venv's scripts on PATH, config in variables only."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return {**env, **extra}


@pytest.fixture(scope="module")
def empty_database() -> Iterator[str]:
    name = f"helpline_deploy_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    yield url_of_database(name)
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_release(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", procfile()["release"]],
        cwd=ROOT,
        env=platform_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_procfile_declares_web_and_release():
    assert set(procfile()) == {"web", "release"}


def test_release_migrates_an_empty_database_and_is_repeatable(empty_database):
    first = run_release(empty_database)
    assert first.returncode == 0, first.stdout + first.stderr

    async def tables() -> set[str]:
        conn = await asyncpg.connect(empty_database)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    assert {"admin", "chat_session", "message"} <= asyncio.run(tables())
    again = run_release(empty_database)
    assert again.returncode == 0, again.stdout + again.stderr


class Web:
    """The Procfile's web line in a subprocess, its output collected as it comes."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile()['web']}"],
            cwd=ROOT,
            env=platform_env(PORT=str(self.port), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_workers_ready(self, workers: int) -> None:
        """Every worker up, not just the first to answer: a SIGTERM that reaches Sanic's
        manager while a worker is still starting is not acted on until it has started."""
        deadline = time.monotonic() + 60
        while sum("Worker ready" in line for line in self.lines) < workers:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.1)

    def exit_code(self) -> int:
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def test_web_serves_on_port_with_two_workers(empty_database, redis_url):
    assert run_release(empty_database).returncode == 0
    server = Web(
        DATABASE_URL=empty_database,
        REDIS_URL=redis_url,
        JWT_SECRET=JWT_SECRET,
        WEB_CONCURRENCY="2",
        ENV="production",
        REDIS_NAMESPACE=REDIS_NAMESPACE,
        LOG_LEVEL="WARNING",
    )
    try:
        server.wait_workers_ready(2)
        url = f"http://127.0.0.1:{server.port}"
        r = httpx.get(f"{url}/health", timeout=5)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        ready = httpx.get(f"{url}/health/ready", timeout=5)
        body = ready.json()
        assert {k: body[k] for k in ("status", "checks")} == {
            "status": "ok",
            "checks": {"database": "ok", "redis": "ok"},
        }
        assert body["relay"]["worker"]  # the answering worker's relay counters
        made = httpx.post(f"{url}/api/sessions", json={"userId": "u"}, timeout=5)
        assert made.status_code == 201
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "JWT_SECRET"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"JWT_SECRET": JWT_SECRET, "REDIS_URL": ""}, "REDIS_URL"),
    ],
)
def test_production_refuses_to_start_with_unsafe_configuration(
    empty_database, redis_url, env, says
):
    base = {"ENV": "production", "DATABASE_URL": empty_database, "REDIS_URL": redis_url}
    server = Web(**{**base, **env})
    assert server.exit_code() != 0
    assert "cannot start" in server.output and says in server.output
