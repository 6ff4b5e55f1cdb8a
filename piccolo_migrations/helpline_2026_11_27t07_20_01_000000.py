"""The workspace's indexes and search (raw SQL: Piccolo's columns cannot express them).

PostgreSQL: `pg_trgm` (a trusted extension since PostgreSQL 13: a role with CREATE on the
database may create it), a generated `tsvector` column on message with an explicit
configuration ('english', so the expression is IMMUTABLE and the GIN index serves every
query that names the same column), trigram GIN indexes for fragments (order numbers,
emails), and a (created_at, id) index for "newest first" over all sessions.
SQLite (embedded mode) gets the plain indexes only; its search is a documented scan.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-27T07:20:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "workspace: note order, labels, message search"

BOTH = [
    # A note's position in its session: its own cursor, never a message seq.
    "CREATE UNIQUE INDEX note_session_seq_uq ON note (session_id, seq)",
    # Labels are a set per session (idempotent replace) and the inbox filters by one.
    "CREATE UNIQUE INDEX session_label_uq ON session_label (session_id, label)",
    "CREATE INDEX session_label_label_idx ON session_label (label, session_id)",
    # Search answers newest first across every session.
    "CREATE INDEX message_created_idx ON message (created_at DESC, id DESC)",
]
POSTGRES = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "ALTER TABLE message ADD COLUMN search tsvector"
    " GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED",
    "CREATE INDEX message_search_idx ON message USING gin (search)",
    # With the default target ANALYZE keeps ~25 lexemes of a million messages and prices
    # every other word at 0.5 % of rows: a rare word then reads the newest-first index
    # backwards, 1.3 s at 1M messages (bench/search.py), instead of 100 GIN hits.
    "ALTER TABLE message ALTER COLUMN search SET STATISTICS 1000",
    "CREATE INDEX message_content_trgm_idx ON message USING gin (content gin_trgm_ops)",
    "CREATE INDEX chat_session_who_trgm_idx ON chat_session USING gin"
    " ((user_id || ' ' || coalesce(user_name, '') || ' ' || coalesce(user_email, ''))"
    " gin_trgm_ops)",
]

BACKWARDS_BOTH = [
    "DROP INDEX message_created_idx",
    "DROP INDEX session_label_label_idx",
    "DROP INDEX session_label_uq",
    "DROP INDEX note_session_seq_uq",
]
BACKWARDS_POSTGRES = [
    "DROP INDEX chat_session_who_trgm_idx",
    "DROP INDEX message_content_trgm_idx",
    "DROP INDEX message_search_idx",
    "ALTER TABLE message DROP COLUMN search",
]


class _Raw(Table, tablename="message"):
    pass


async def _run(statements: list[str]) -> None:
    for statement in statements:
        await _Raw.raw(statement)


def _on_postgres() -> bool:
    return isinstance(_Raw._meta.db, PostgresEngine)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="helpline", description=DESCRIPTION)

    async def run_forwards() -> None:
        await _run(BOTH)
        if _on_postgres():
            await _run(POSTGRES)

    async def run_backwards() -> None:
        if _on_postgres():
            await _run(BACKWARDS_POSTGRES)
        await _run(BACKWARDS_BOTH)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
