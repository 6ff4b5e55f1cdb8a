"""The search indexes' pending lists are merged by the worker in the background
(app/domain/search_upkeep.py), not by whichever message INSERT finds them full."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from piccolo.engine.postgres import PostgresEngine

from app import db as app_db
from app.domain import search, search_upkeep


async def pending(db: asyncpg.Connection) -> dict[str, int]:
    """Entries waiting in each index's pending list (read without merging them)."""
    await db.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
    return {
        index: await db.fetchval("SELECT pending_tuples FROM pgstatginindex($1::regclass)", index)
        for index in search_upkeep.INDEXES
    }


async def test_a_workers_stored_messages_leave_the_pending_lists_within_a_second(make, db):
    session = await make.session()
    for i in range(30):
        await make.message(session["customerToken"], session["id"], f"pending words {i} here")
    deadline = time.monotonic() + 5
    left = await pending(db)
    while any(left.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        left = await pending(db)
    # Without the merge the entries stay listed until 4 MB of them make an INSERT merge.
    assert left == dict.fromkeys(search_upkeep.INDEXES, 0)
    # Merged, not lost: both indexes still find every message.
    words = "SELECT count(*) FROM message WHERE search @@ websearch_to_tsquery($1, 'pending')"
    assert await db.fetchval(words, search.CONFIG) == 30
    fragment = "SELECT count(*) FROM message WHERE content ILIKE '%ending word%'"
    assert await db.fetchval(fragment) == 30


@pytest.fixture
async def not_owner(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The app's database engine connected as a user who owns no index."""
    role = f"helpline_reader_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    parts = urlsplit(database_url)
    dsn = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    engine: Any = PostgresEngine(config={"dsn": dsn})
    await engine.start_connection_pool(min_size=1, max_size=1)
    monkeypatch.setattr(app_db, "engine", lambda: engine)
    try:
        yield engine
    finally:
        await engine.close_connection_pool()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_a_user_who_does_not_own_the_indexes_logs_once_and_stops(not_owner, caplog):
    stored = iter(range(100))
    task = asyncio.create_task(search_upkeep.flush_forever(lambda: next(stored), interval=0.01))
    with caplog.at_level(logging.WARNING, logger="app.domain.search_upkeep"):
        await asyncio.wait_for(task, 5)
    said = [r.getMessage() for r in caplog.records if r.name == search_upkeep.__name__]
    assert len(said) == 1 and "must be owner" in said[0], said
