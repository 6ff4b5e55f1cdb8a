"""The system under test: a throwaway database, and server processes started from the
Procfile's `web:` line, with their CPU and memory read from /proc (psutil)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
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
import orjson
import psutil
import redis

from bench import stats

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
# Unset: the run starts a Redis server of its own (see `private_redis`), so its CPU is
# the benchmark's alone and not the other test runs' sharing the machine's Redis.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
REDIS_PRIVATE = False
JWT_SECRET = "bench-secret-" + "x" * 32

# Production settings except the limits a load test would trip over by design.
SERVER_ENV = {
    "ENV": "production",
    "JWT_SECRET": JWT_SECRET,
    "RATE_LOGIN_FAILURES": "1000000",
    "RATE_REGISTER": "1000000",
    "RATE_SESSION_CREATE": "1000000",
    "RATE_MESSAGES": "1000000",
    "RATE_LOGIN_FAILURES_IP": "1000000",
    # A few generator processes drive every agent and thousands of idle sockets from
    # 127.0.0.1: the per-connection and per-IP socket guards are load-test limits too.
    "SOCKET_EVENTS_PER_SECOND": "1000000",
    "SOCKET_EVENT_BURST": "1000000",
    "SOCKET_EVENTS_IN_FLIGHT": "1000000",
    "CONNECTIONS_PER_IP": "1000000",
    "LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web_command(code_dir: Path) -> list[str]:
    """The Procfile's `web:` line, run with this interpreter (older checkouts say
    `helpline`, i.e. `python -m app.cli`), so a baseline checkout serves its own code."""
    for line in (code_dir / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line.partition(":")[2])
            if argv and argv[0] == "helpline":
                return [sys.executable, "-m", "app.cli", *argv[1:]]
            if argv and argv[0] in ("python", "python3"):
                return [sys.executable, *argv[1:]]
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


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free port for this run (when BENCH_REDIS_URL is unset
    and redis-server is installed); otherwise the shared one."""
    global REDIS_URL, REDIS_PRIVATE
    binary = shutil.which("redis-server")
    if "BENCH_REDIS_URL" in os.environ or binary is None:
        yield REDIS_URL
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=stats.raise_nofile,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            time.sleep(0.05)
        saved = REDIS_URL
        REDIS_URL, REDIS_PRIVATE = url, True
        try:
            yield url
        finally:
            REDIS_URL, REDIS_PRIVATE = saved, False
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


CpuSnapshot = dict[str, dict[int, float]]


def _times(processes: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in processes:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each group spent between two snapshots (a process that appeared in
    between counts from zero; one that exited in between is not counted)."""
    return {
        group: round(sum(t - before.get(group, {}).get(pid, 0.0) for pid, t in times.items()), 3)
        for group, times in after.items()
    }


# PostgreSQL's shared helpers that work for every database (WAL, checkpoints).
_PG_HELPERS = ("walwriter", "checkpointer", "background writer", "wal writer")


@dataclass
class Server:
    """One `web` process (and its workers) on a free port."""

    code_dir: Path
    database_url: str
    workers: int
    namespace: str = field(default_factory=lambda: f"helpline-bench-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Another entry point than the Procfile's (the memory account's traced server).
    command: list[str] | None = None
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
            self.command or web_command(self.code_dir),
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

    def postgres_processes(self) -> list[psutil.Process]:
        """The backends serving this server's database, and PostgreSQL's shared WAL and
        checkpoint helpers (which other databases' writes also use)."""
        database = self.database_url.rsplit("/", 1)[-1]
        out = []
        for p in psutil.process_iter(["name", "cmdline"]):
            title = " ".join(p.info["cmdline"] or [])
            if p.info["name"] == "postgres" and (
                f" {database} " in title or any(h in title for h in _PG_HELPERS)
            ):
                out.append(p)
        return out

    def redis_processes(self) -> list[psutil.Process]:
        """The Redis server (the run's own one unless BENCH_REDIS_URL names a shared one)."""
        port = REDIS_URL.rsplit(":", 1)[-1].split("/")[0]
        out = []
        for p in psutil.process_iter(["name", "cmdline"]):
            title = " ".join(p.info["cmdline"] or [])  # redis-server shows host:port
            if p.info["name"] == "redis-server" and (not REDIS_PRIVATE or f":{port}" in title):
                out.append(p)
        return out

    def cpu_snapshot(self) -> CpuSnapshot:
        """Cumulative CPU seconds per process of every group that serves a message."""
        return {
            "workers": _times(self.all_processes()),
            "postgres": _times(self.postgres_processes()),
            "redis": _times(self.redis_processes()),
        }

    def pubsub_counters(self) -> dict[str, dict[str, int]]:
        """Each worker's Socket.IO listener counters (app/realtime/manager.py reports
        them to Redis about once a second); empty for a server without them."""
        client = redis.Redis.from_url(REDIS_URL)
        try:
            raw = client.hgetall(f"{self.namespace}:socketio:counters")
        finally:
            client.close()
        return {
            (k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in raw.items()
        }

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
