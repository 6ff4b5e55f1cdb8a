"""The system under test: a throwaway database, and server processes started from the
Procfile's `web:` line, with their CPU and memory read from /proc (psutil)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
import redis

from bench import stats

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
JWT_SECRET = "bench-secret-" + "x" * 32

# Production settings except the limits a load test would trip over by design.
SERVER_ENV = {
    "ENV": "production",
    "JWT_SECRET": JWT_SECRET,
    "RATE_LOGIN_FAILURES": "1000000",
    "RATE_REGISTER": "1000000",
    "RATE_SESSION_CREATE": "1000000",
    "RATE_MESSAGES": "1000000",
    "LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web_command(code_dir: Path) -> list[str]:
    """The Procfile's `web:` line, run with this interpreter (`helpline` is
    `python -m app.cli`), so a baseline checkout serves its own code."""
    for line in (code_dir / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line.partition(":")[2])
            if argv and argv[0] == "helpline":
                return [sys.executable, "-m", "app.cli", *argv[1:]]
            return argv
    raise RuntimeError(f"no web: line in {code_dir / 'Procfile'}")


def _admin_sql(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def database(code_dir: Path) -> Iterator[str]:
    """A fresh `helpline_bench_<hex>` database migrated by the checkout's own migrations."""
    name = f"helpline_bench_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            cwd=code_dir,
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=180,
        )
        if out.returncode != 0 or "failed" in out.stdout.lower():
            raise RuntimeError(f"migrations failed:\n{out.stdout}\n{out.stderr}")
        yield url
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    """One `web` process (and its workers) on a free port."""

    code_dir: Path
    database_url: str
    workers: int
    namespace: str = field(default_factory=lambda: f"helpline-bench-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, timeout: float = 60) -> None:
        env = {
            **os.environ,
            **SERVER_ENV,
            **self.extra_env,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_NAMESPACE": self.namespace,
            "WEB_CONCURRENCY": str(self.workers),
        }
        log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it
        self.process = subprocess.Popen(
            web_command(self.code_dir),
            cwd=self.code_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Thousands of idle sockets need more open files than a default soft limit.
            preexec_fn=stats.raise_nofile,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200
                if ready and len(self.worker_processes()) >= self.workers:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server did not come up; see {log_path}")

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests (the main one too when it is the only one)."""
        assert self.process is not None
        main = psutil.Process(self.process.pid)
        if self.workers == 1:
            return [main]
        # Sanic's workers are the children listening on the port (not its helpers).
        return [p for p in main.children(recursive=True) if self._listens(p)]

    def _listens(self, process: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port
                for c in process.net_connections(kind="tcp")
            )
        return False

    def all_processes(self) -> list[psutil.Process]:
        assert self.process is not None
        main = psutil.Process(self.process.pid)
        return [main, *main.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.all_processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_per_worker(self) -> list[int]:
        out = []
        for p in self.worker_processes():
            with contextlib.suppress(psutil.Error):
                out.append(p.memory_info().rss)
        return out

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{self.namespace}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@contextlib.contextmanager
def running(code_dir: Path, workers: int, log_path: Path, **env: str) -> Iterator[Server]:
    """A migrated throwaway database and a server on it, both gone afterwards."""
    with database(code_dir) as url:
        server = Server(code_dir, url, workers, extra_env=env)
        try:
            server.start(log_path)
            yield server
        finally:
            server.stop()
