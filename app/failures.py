"""One line for each way a `helpline` command meets a broken environment.

The CLI prints `helpline: <explain(exc)>` and exits non-zero instead of a traceback
(`--debug` shows it): an operator reads what to fix, not where in asyncpg it failed.
"""

from __future__ import annotations

import socket
import sqlite3

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from app.config import ConfigError, Settings


def _database() -> str:
    """Where the configured database is, without credentials."""
    try:
        settings = Settings.from_env()
    except ConfigError:
        return "the database"
    if not settings.database_url:
        return f"SQLite file {settings.sqlite_path}"
    return f"PostgreSQL at {settings.database_url.rsplit('@', 1)[-1]}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def explain(exc: BaseException) -> str:
    """What went wrong and what to do, in one line."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, EOFError):
        return "no input (end of file): nothing was changed"
    if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
        return f"{_first_line(exc)} ({_database()}): create it, e.g. `createdb <name>`"
    if isinstance(
        exc,
        asyncpg.exceptions.InvalidPasswordError
        | asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    ):
        return f"{_database()} refused the credentials in DATABASE_URL: {_first_line(exc)}"
    if isinstance(exc, asyncpg.exceptions.UndefinedTableError) or (
        isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)
    ):
        return f"{_database()} has no tables yet: run `helpline migrate`"
    if isinstance(exc, sqlite3.OperationalError):
        return f"{_database()}: {_first_line(exc)}"
    if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        return f"DATABASE_URL: {_first_line(exc)}"
    if isinstance(exc, RedisConnectionError):
        return f"cannot reach Redis (REDIS_URL): {_first_line(exc)}"
    if isinstance(exc, RedisError):
        return f"Redis: {_first_line(exc)}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host of {_database()}: {_first_line(exc)}"
    if isinstance(exc, OSError | TimeoutError | asyncpg.exceptions.PostgresConnectionError):
        return f"cannot reach {_database()}: {_first_line(exc)} (is it running?)"
    if isinstance(exc, asyncpg.exceptions.PostgresError):
        return f"{_database()}: {_first_line(exc)}"
    return f"unexpected {type(exc).__name__}: {_first_line(exc)} (--debug shows the traceback)"
