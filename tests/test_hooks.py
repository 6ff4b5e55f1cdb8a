"""Guarded library hooks (app/hooks.py): each fits the installed release, a changed library
is refused at start-up with a message naming what changed, every private override is
declared, and the hooks without a test elsewhere have their effect pinned here."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.querystring import QueryString

import app
from app import db, hooks
from tests.support import ROOT

LIBRARIES = ("engineio", "socketio", "piccolo", "sanic", "sanic_ext", "redis", "asyncpg", "asyncio")


def test_every_hook_fits_the_installed_libraries():
    assert hooks.problems() == []


def test_each_hooked_name_is_declared_once():
    names = [hook.name for hook in hooks.HOOKS]
    assert sorted(names) == sorted(set(names))


def test_every_hook_names_a_test_that_exists():
    for hook in hooks.HOOKS:
        path, _, name = hook.test.partition("::")
        assert f"def {name}(" in (ROOT / path).read_text(), hook.test


def test_every_private_override_of_a_library_class_is_declared():
    """A class of ours that redefines a private name of a library class it extends must
    have that name in app/hooks.py."""
    classes = []
    for info in pkgutil.walk_packages(app.__path__, "app."):
        module = importlib.import_module(info.name)
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)]
    undeclared = []
    for cls in set(classes):
        if not cls.__module__.startswith("app."):
            continue
        for name, value in vars(cls).items():
            if not name.startswith("_") or name.startswith("__"):
                continue
            func = getattr(value, "__func__", value)
            if not inspect.isfunction(func) or not func.__module__.startswith("app."):
                continue  # set by the library itself (Piccolo's Table._meta)
            for base in cls.__mro__[1:]:
                if base.__module__.split(".")[0] in LIBRARIES and name in vars(base):
                    declared = f"{base.__name__}.{name}"
                    if not any(h.name.endswith(declared) for h in hooks.HOOKS):
                        undeclared.append(f"{cls.__module__}.{cls.__name__}.{name}")
                    break
    assert undeclared == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("del AsyncServer._trigger_event", "_trigger_event is missing"),
        (
            "AsyncServer._trigger_event = lambda self, event: None",
            "_trigger_event is no longer a coroutine function",
        ),
        (
            "async def renamed(self, name, *args): pass\nAsyncServer._trigger_event = renamed",
            "_trigger_event takes (self, name, args), expected (self, event, …)",
        ),
    ],
    ids=["removed", "not-async", "renamed-parameter"],
)
def test_a_changed_library_is_refused_at_start_up(change, expected):
    """`helpline serve` on a python-engineio whose _trigger_event changed (simulated by
    changing it before the CLI starts) refuses to start and says what changed."""
    script = textwrap.dedent(
        """
        import sys
        from engineio.async_server import AsyncServer
        {change}
        from app.cli import main
        sys.exit(main(["serve"]))
        """
    ).format(change=change)
    env = {**os.environ, "DATABASE_URL": "", "REDIS_URL": "", "PORT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "helpline: cannot start: python-engineio" in out.stderr
    assert expected in out.stderr
    assert "app/realtime/engine.py EngineIO._trigger_event relies on it" in out.stderr


def test_a_worker_refuses_to_build_the_app_on_a_changed_library(monkeypatch):
    from engineio.async_socket import AsyncSocket

    from app.main import create_app

    monkeypatch.delattr(AsyncSocket, "_send_ping")
    with pytest.raises(hooks.HookError, match=r"AsyncSocket\._send_ping is missing"):
        create_app()


@pytest.fixture(params=["postgres", "sqlite"])
async def engine(request, database_url, tmp_path, monkeypatch):
    if request.param == "postgres":
        found: Any = PostgresEngine(config={"dsn": database_url})
        await found.start_connection_pool(min_size=1, max_size=2)
    else:
        found = SQLiteEngine(path=str(tmp_path / "hooks.sqlite3"))
    monkeypatch.setattr(db, "engine", lambda: found)
    yield found
    if request.param == "postgres":
        try:
            await asyncio.wait_for(found.close_connection_pool(), timeout=5)
        except TimeoutError:  # a connection leaked (the test failed): do not wait on it
            found.pool.terminate()


FAILS_AT_COMMIT = {
    "postgres": [
        "CREATE TEMP TABLE t (x int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP",
        "INSERT INTO t VALUES (1), (1)",
    ],
    "sqlite": [
        # Piccolo turns foreign keys on for every SQLite connection.
        "CREATE TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO c VALUES (42)",
    ],
}


async def test_a_transaction_whose_commit_fails_gives_its_connection_back(engine):
    """More failing COMMITs than the pool holds (2): each must give its connection back and
    clear Piccolo's current-transaction marker, or the next query waits forever or runs
    inside a dead transaction."""
    kind = "postgres" if isinstance(engine, PostgresEngine) else "sqlite"

    async def failing_commit() -> None:
        async with db.transaction():
            for sql in FAILS_AT_COMMIT[kind]:
                await _run(engine, sql)

    for attempt in range(3):
        with pytest.raises(Exception) as failed:
            # A leaked connection shows as a wait for the pool (or SQLite's write lock).
            await asyncio.wait_for(failing_commit(), timeout=10)
        assert not isinstance(failed.value, TimeoutError), f"attempt {attempt} waited"
        assert "constraint" in str(failed.value).lower() or "duplicate" in str(failed.value)
        assert engine.current_transaction.get() is None
    rows = await asyncio.wait_for(_run(engine, "SELECT 1 AS ok"), timeout=5)
    assert [dict(row) for row in rows] == [{"ok": 1}]


async def _run(engine: Any, sql: str) -> Any:
    """Piccolo's own raw query path: inside the engine's current transaction, if any."""
    return await engine.run_querystring(QueryString(sql))
