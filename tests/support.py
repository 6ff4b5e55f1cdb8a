"""Test helpers: live server processes, migrations, factories, token forging."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
JWT_SECRET = "test-secret-" + "x" * 32
PASSWORD = "correct horse battery"
# Keys and the Socket.IO channel of this test run: concurrent runs on one Redis stay apart
# (so do pytest-xdist's workers, each of which imports this module).
REDIS_NAMESPACE = f"helpline-test-{uuid.uuid4().hex[:8]}"
# "gw0", "gw1", … under pytest-xdist: what this worker's files are named after, so its
# servers' logs (which tests read) are not written by another worker's servers.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

# Cheap hashing and generous limits; rate-limit tests start servers with tight ones.
SERVER_ENV = {
    "JWT_SECRET": JWT_SECRET,
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "1024",
    "RATE_LOGIN_FAILURES": "1000",
    "RATE_REGISTER": "1000",
    "RATE_SESSION_CREATE": "10000",
    "RATE_MESSAGES": "100000",
    # Tests send bursts and open many sockets from 127.0.0.1; guard tests tighten these.
    "SOCKET_EVENTS_PER_SECOND": "100000",
    "SOCKET_EVENT_BURST": "100000",
    "SOCKET_EVENTS_IN_FLIGHT": "100000",
    "CONNECTIONS_PER_IP": "100000",
    "TYPING_TTL": "2",
    "LOG_LEVEL": "WARNING",
    "REDIS_NAMESPACE": REDIS_NAMESPACE,
}


async def pg_admin(sql: str) -> None:
    """One statement on the server's maintenance database (CREATE / DROP DATABASE)."""
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def url_of_database(name: str) -> str:
    """The URL of database `name` on the test server, in Heroku's `postgres://` spelling."""
    base = PG_ADMIN_DSN.replace("postgresql://", "postgres://").rsplit("/", 1)[0]
    return f"{base}/{name}"


def run_node(script: Path, scenario: dict[str, object], timeout: float = 120) -> dict[str, Any]:
    """Runs a node script of tests/js with `scenario` (as JSON in $SCENARIO); its last line
    of output is its JSON result, which must say `ok`."""
    out = subprocess.run(
        ["node", str(script)],
        cwd=script.parent,
        env={**os.environ, "SCENARIO": json.dumps(scenario)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = out.stdout.strip().splitlines()
    assert lines, f"node printed nothing; stderr: {out.stderr}"
    result = json.loads(lines[-1])
    assert out.returncode == 0 and result["ok"], result
    return dict(result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0 or "failed" in out.stdout.lower():
        raise RuntimeError(f"migrations failed:\n{out.stdout}\n{out.stderr}")


@dataclass
class LiveServer:
    """A `helpline serve` process on a free port, with its log under tests/artifacts."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        suffix = f"-{WORKER}" if WORKER else ""
        return ARTIFACTS / f"server-{self.name}{suffix}.log"

    def start(self, timeout: float = 90) -> None:
        """Starts the process and waits until /health answers. The bound is generous: on
        a loaded machine a two-worker server has taken over 30 s; a healthy start returns
        as soon as it answers."""
        ARTIFACTS.mkdir(exist_ok=True)
        env = {**os.environ, **SERVER_ENV, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} exited; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        # Nobody will stop a server whose start failed: it would outlive the run.
        self.kill()
        raise RuntimeError(f"server {self.name} did not come up; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, sig)
            else:
                # Only the main process: Sanic's manager stops its workers in order.
                os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, name: str, database_url: str, redis_url: str, **env: str
    ) -> Iterator[LiveServer]:
        live = cls(name, {"DATABASE_URL": database_url, "REDIS_URL": redis_url, **env})
        live.start()
        try:
            yield live
        finally:
            live.stop()


def forge(claims: dict[str, Any], secret: str = JWT_SECRET, alg: str = "HS256") -> str:
    """A token with chosen claims: for expired, tampered and wrong-audience cases."""
    base = {
        "sub": str(uuid.uuid4()),
        "aud": "helpline:admin",
        "iss": "helpline",
        "iat": int(time.time()),
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode({**base, **claims}, secret, algorithm=alg)


def sign_in_of(token: str) -> str:
    """The sign-in session a staff token names (its `sid` claim)."""
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Factory:
    """Builds admins, sessions and messages through the public API."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self._admin_token: str | None = None

    async def admin(self, email: str | None = None, full_name: str = "Agent") -> dict[str, Any]:
        """Registers an admin (the first bootstraps; later ones by the first's token)."""
        email = email or f"agent-{uuid.uuid4().hex[:8]}@example.com"
        headers = bearer(self._admin_token) if self._admin_token else {}
        r = await self.api.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "fullName": full_name},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        body = r.json()
        self._admin_token = self._admin_token or body["token"]
        return dict(body)

    async def admin_token(self) -> str:
        if self._admin_token is None:
            await self.admin()
        assert self._admin_token is not None
        return self._admin_token

    async def invite(
        self, role: str = "agent", email: str | None = None, full_name: str = "Agent"
    ) -> dict[str, Any]:
        """An admin invites a member: the answer `{agent, invitation}`."""
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        r = await self.api.post(
            "/api/agents",
            json={"email": email, "fullName": full_name, "role": role},
            headers=bearer(await self.admin_token()),
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def agent(self, role: str = "agent", full_name: str = "Agent") -> dict[str, Any]:
        """A member who accepted an invitation and is signed in: `{token, admin}`."""
        invited = await self.invite(role, full_name=full_name)
        r = await self.api.post(
            "/api/auth/accept-invite",
            json={"token": invited["invitation"]["token"], "password": PASSWORD},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def login(self, email: str) -> dict[str, Any]:
        """One more sign-in session of an account."""
        r = await self.api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def session(self, user_id: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"userId": user_id or f"user-{uuid.uuid4().hex[:8]}", **fields}
        r = await self.api.post("/api/sessions", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def message(
        self, token: str, session_id: str, content: str = "hello", **fields: Any
    ) -> dict[str, Any]:
        r = await self.api.post(
            "/api/chat/messages",
            json={"sessionId": session_id, "content": content, **fields},
            headers=bearer(token),
        )
        assert r.status_code in (200, 201), r.text
        return dict(r.json())


ISO_MS_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape: JSON `{error, code, details?}` with a human message."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    assert set(body) <= {"error", "code", "details"}
    return dict(body)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics scrape by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
