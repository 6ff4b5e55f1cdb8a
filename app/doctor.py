"""`helpline doctor`: what stops this configuration from serving, found before users do.

Every check answers a list of problems (empty when fine), so the command prints one line
per problem and fails when there is any. Checks never change anything: a missing SQLite
file is reported, not created.
"""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.apps.migrations.tables import Migration

from app import db, hooks
from app.config import Settings

TIMEOUT = 5
# RETURNING, used by every insert and update, arrived in SQLite 3.35.
SQLITE_MIN = (3, 35, 0)

T = TypeVar("T")


async def _bounded(probe: Awaitable[T]) -> T:
    return await asyncio.wait_for(probe, timeout=TIMEOUT)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def configuration(settings: Settings) -> list[str]:
    found = list(settings.problems())
    secret = settings.secret_problem()
    if secret and secret not in found:
        found.append(secret)
    return found + hooks.problems()


def _sqlite_file(settings: Settings) -> Path | None:
    return None if settings.database_url else Path(settings.sqlite_path)


async def database(settings: Settings) -> list[str]:
    path = _sqlite_file(settings)
    if path is not None:
        if sqlite3.sqlite_version_info < SQLITE_MIN:
            return [f"database: SQLite {sqlite3.sqlite_version} is too old (3.35+ needed)"]
        if not path.exists():
            return []  # Not created yet: reported as pending migrations.
    try:
        await _bounded(db.ping())
    except Exception as exc:  # any failure to answer SELECT 1 is "unreachable"
        return [f"database unreachable ({where(settings)}): {_reason(exc)}"]
    return []


def where(settings: Settings) -> str:
    if not settings.database_url:
        return f"SQLite {settings.sqlite_path}"
    # Host and database only: the URL may carry a password.
    tail = settings.database_url.rsplit("@", 1)[-1]
    return f"PostgreSQL {tail}"


async def redis(settings: Settings) -> list[str]:
    if not settings.redis_url:
        return []
    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=TIMEOUT)
    try:
        await _bounded(client.ping())
    except Exception as exc:  # refused, timed out, auth failed: all mean "not usable"
        return [f"Redis unreachable: {_reason(exc)}"]
    finally:
        await client.aclose()
    return []


def known_migrations() -> list[tuple[str, str]]:
    """(app, migration id) of every migration in the code, in order."""
    finder = BaseMigrationManager()
    out = []
    for app_name in finder.get_sorted_app_names():
        config = finder.get_app_config(app_name)
        modules = finder.get_migration_modules(config.resolved_migrations_folder_path)
        out += [(app_name, mid) for mid in finder.get_migration_ids(modules)]
    return out


async def pending_migrations(settings: Settings) -> list[str]:
    """Migration ids in the code that the database has not run."""
    known = known_migrations()
    path = _sqlite_file(settings)
    if path is not None and not path.exists():
        return [mid for _, mid in known]
    if not await _bounded(Migration.table_exists().run()):
        return [mid for _, mid in known]
    rows = await _bounded(Migration.select(Migration.name, Migration.app_name).run())
    ran = {(r["app_name"], r["name"]) for r in rows}
    return [mid for app, mid in known if (app, mid) not in ran]


async def migrations(settings: Settings) -> list[str]:
    try:
        pending = await pending_migrations(settings)
    except Exception as exc:  # the database check already says why it cannot answer
        return [f"migrations: cannot be checked ({_reason(exc)})"]
    if not pending:
        return []
    return [f"migrations pending: {len(pending)} ({', '.join(pending)}): run `helpline migrate`"]


async def run(settings: Settings) -> list[str]:
    found = configuration(settings)
    if settings.url_problems():
        return found  # nothing to probe at a malformed URL
    found += await redis(settings)
    with warnings.catch_warnings():
        # Piccolo warns on a failed connection; the problem line already says it.
        warnings.simplefilter("ignore")
        unreachable = await database(settings)
        found += unreachable
        if not unreachable:
            found += await migrations(settings)
    return found


def describe(settings: Settings) -> str:
    """The environment as this process sees it (no credentials)."""
    redis_part = (
        f"Redis {settings.redis_url.rsplit('@', 1)[-1]}" if settings.redis_url else "no REDIS_URL"
    )
    return (
        f"ENV={settings.env}, {where(settings)}, {redis_part}, "
        f"WEB_CONCURRENCY={settings.web_concurrency}, PORT={settings.port}, "
        f"LOG_FORMAT={settings.log_format}, JWT_SECRET "
        f"{'set' if not settings.secret_problem() else 'weak or missing'}"
    )


def checked(settings: Settings) -> str:
    """What a clean run of the checks has vouched for."""
    if settings.redis_url:
        return "configuration, database, Redis and migrations"
    return "configuration, database and migrations (no Redis in this mode)"
