"""Database access shared by the use cases: the engine, raw queries, failure mapping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
from piccolo.engine import engine_finder
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import TransactionType

from app.config import Settings
from app.piccolo_app import APP_CONFIG
from app.sqlite_engine import EmbeddedSQLiteEngine
from app.tables import Message

# Failures that mean "the database cannot be reached right now", not "this request is wrong".
UNAVAILABLE = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    # A connection the server terminated mid-operation (PostgreSQL shutting down) can
    # leave asyncpg's protocol in a state it reports this way; the pool drops it.
    asyncpg.exceptions.InternalClientError,
)


def make_engine(settings: Settings) -> Engine:
    """The engine the settings name: PostgreSQL at DATABASE_URL, else the SQLite file."""
    if settings.database_url:
        return PostgresEngine(config={"dsn": settings.database_url}, log_queries=False)
    # A statement outside a transaction waits this long for the one writer (see below).
    return EmbeddedSQLiteEngine(path=settings.sqlite_path, timeout=30)


_bound: Engine | None = None


def bind(database: Engine) -> None:
    """Send every query of this process to `database` (the app's `Services.database`).

    Piccolo keeps a table's engine in class state, so this is per process, like the app
    itself (Sanic runs one app per process). Unbound, queries use piccolo_conf.py's
    engine, as Piccolo's own CLI and the migrations do."""
    global _bound
    _bound = database
    for table in APP_CONFIG.table_classes:
        table._meta.db = database


def engine() -> Engine:
    if _bound is not None:
        return _bound
    found = engine_finder()
    if found is None:
        raise RuntimeError("piccolo_conf.py defines no engine")
    return found


# SQLite (embedded mode, one worker): one process owns the file, so its
# write transactions queue here, one at a time, instead of racing for SQLite's write lock.
_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _sqlite_writer() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _writers.get(loop)
    if lock is None:
        lock = _writers[loop] = asyncio.Lock()
    return lock


@contextlib.asynccontextmanager
async def transaction(**options: Any) -> AsyncIterator[None]:
    """A transaction; on SQLite, queued behind the process's one writer.

    SQLite's default (deferred) transactions read first and fail "database is locked"
    when two try to upgrade to writing at once: under 600 msg/s from 20 customers half
    the sends failed that way. Here they wait in line (an asyncio lock, then BEGIN
    IMMEDIATE), so overload shows as latency, not as failed sends.
    """
    db = engine()
    if isinstance(db, PostgresEngine) or db.current_transaction.get() is not None:
        async with _transaction(**options):
            yield
        return
    options.setdefault("transaction_type", TransactionType.immediate)
    async with _sqlite_writer(), _transaction(**options):
        yield


@contextlib.asynccontextmanager
async def _transaction(**options: Any) -> AsyncIterator[None]:
    """Piccolo's transaction, made safe when COMMIT itself fails (a deferred constraint,
    a dropped connection): Piccolo then neither releases the connection, which leaks it
    from the pool until shutdown hangs on it, nor resets its current-transaction marker.
    """
    tx = engine().transaction(**options)
    await tx.__aenter__()
    try:
        yield
    except BaseException as exc:
        await _finish(tx, exc)
        raise
    else:
        await _finish(tx, None)


async def _finish(tx: Any, exc: BaseException | None) -> None:
    try:
        await tx.__aexit__(type(exc) if exc else None, exc, None)
    except BaseException:
        pool = getattr(tx.engine, "pool", None)
        with contextlib.suppress(Exception):
            if pool is not None:
                await pool.release(tx.connection)
            else:
                await tx.connection.close()
        with contextlib.suppress(ValueError, LookupError):
            tx.engine.current_transaction.reset(tx.context)
        raise


def pool() -> Any:
    """The PostgreSQL connection pool (None on SQLite or before start)."""
    return getattr(engine(), "pool", None)


def pool_usage() -> str:
    """How many pool connections are checked out (what a stop may be waiting for)."""
    found = pool()
    if found is None:
        return "no pool"
    return f"{found.get_size() - found.get_idle_size()} of {found.get_size()} connections in use"


def terminate() -> None:
    """Close every pool connection now, in use or not (a stop that cannot wait)."""
    found = pool()
    if found is not None:
        found.terminate()


def is_postgres() -> bool:
    return isinstance(engine(), PostgresEngine)


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run SQL with `{}` placeholders (Piccolo's), inside the current transaction if any."""
    rows = await Message.raw(sql, *args)
    return list(rows)


async def fetch_one(sql: str, *args: Any) -> dict[str, Any] | None:
    rows = await fetch(sql, *args)
    return rows[0] if rows else None


async def fetch_one_direct(sql: str, *args: Any) -> dict[str, Any] | None:
    """`fetch_one` straight on an asyncpg pool connection, outside any transaction: for
    the hot path, where Piccolo's query layer costs more CPU than the query itself.
    asyncpg still prepares the statement once per connection and reuses it."""
    db = engine()
    pool = getattr(db, "pool", None)
    if pool is None:
        return await fetch_one(sql, *args)
    async with pool.acquire() as connection:
        row = await connection.fetchrow(_numbered(sql), *args)
    return dict(row) if row is not None else None


async def fetch_direct(sql: str, *args: Any) -> list[Mapping[str, Any]]:
    """`fetch` the same way as `fetch_one_direct` (hot read paths, outside transactions);
    rows stay asyncpg Records (read by key like dicts) rather than being copied."""
    pool = getattr(engine(), "pool", None)
    if pool is None:
        return list(await fetch(sql, *args))
    async with pool.acquire() as connection:
        rows: list[Mapping[str, Any]] = await connection.fetch(_numbered(sql), *args)
    return rows


@functools.cache
def _numbered(sql: str) -> str:
    """Piccolo's `{}` placeholders as PostgreSQL's `$1, $2, …`."""
    parts = sql.split("{}")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


def is_refused(exc: BaseException) -> bool:
    """PostgreSQL ran the statement and refused it (a constraint, a deadlock, bad data),
    as opposed to not being reachable: the same statement with other data may succeed."""
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, UNAVAILABLE)


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


async def start(min_size: int, max_size: int) -> None:
    db = engine()
    if isinstance(db, PostgresEngine):
        await db.start_connection_pool(
            min_size=min_size, max_size=max_size, reset=_keep_session_state
        )
    else:
        # Readers never wait for the writer, nor it for them (the mode stays in the file).
        await fetch("PRAGMA journal_mode=WAL")


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """Pool release hook replacing asyncpg's reset query (UNLISTEN, RESET ALL, advisory
    unlock…), one more round trip after every query: the app sets no session state, and
    asyncpg still rolls back a transaction left open before calling this."""


async def stop() -> None:
    db = engine()
    if isinstance(db, PostgresEngine) and db.pool is not None:
        await db.close_connection_pool()


async def ping() -> None:
    await fetch("SELECT 1 AS ok")
