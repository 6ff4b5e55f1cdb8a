"""The customer's searchable text (id, name, email) moves off the table every message
updates (PostgreSQL only; embedded mode has no such index).

Each message bumps its session's `last_seq` and `last_activity_at`. `last_activity_at`
is indexed (the inbox), so that UPDATE is never HOT: it adds an entry to *every* index
on chat_session, and the trigram GIN index on the customer's id, name and email (~40
trigrams) took another copy of text that had not changed, per message. Here that text
lives in `session_who`, one row per session, written by a trigger only when a session
is created or one of those three columns is named in an UPDATE (`UPDATE OF`: the
message's UPDATE names none, so the trigger does not even fire). bench/search_write.py
counts what it saved.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-27T10:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "session search text off the per-message UPDATE"

# The text session search matches (app/domain/search.py's WHO, as of this migration).
WHO = "{p}user_id || ' ' || coalesce({p}user_name, '') || ' ' || coalesce({p}user_email, '')"

FORWARDS = [
    "CREATE TABLE session_who (session_id uuid PRIMARY KEY REFERENCES chat_session (id)"
    " ON DELETE CASCADE ON UPDATE CASCADE, who text NOT NULL)",
    "CREATE FUNCTION session_who_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" INSERT INTO session_who (session_id, who) VALUES (NEW.id, {WHO.format(p='NEW.')})"
    " ON CONFLICT (session_id) DO UPDATE SET who = EXCLUDED.who; RETURN NULL; END $$",
    "CREATE TRIGGER session_who_sync AFTER INSERT OR UPDATE OF user_id, user_name, user_email"
    " ON chat_session FOR EACH ROW EXECUTE FUNCTION session_who_sync()",
    f"INSERT INTO session_who (session_id, who) SELECT id, {WHO.format(p='')} FROM chat_session",
    "CREATE INDEX session_who_trgm_idx ON session_who USING gin (who gin_trgm_ops)",
    "DROP INDEX chat_session_who_trgm_idx",
]
BACKWARDS = [
    "CREATE INDEX chat_session_who_trgm_idx ON chat_session USING gin"
    f" (({WHO.format(p='')}) gin_trgm_ops)",
    "DROP TRIGGER session_who_sync ON chat_session",
    "DROP FUNCTION session_who_sync()",
    "DROP TABLE session_who",
]


class _Raw(Table, tablename="session_who"):
    pass


async def _run(statements: list[str]) -> None:
    if isinstance(_Raw._meta.db, PostgresEngine):
        for statement in statements:
            await _Raw.raw(statement)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="helpline", description=DESCRIPTION)

    async def run_forwards() -> None:
        await _run(FORWARDS)

    async def run_backwards() -> None:
        await _run(BACKWARDS)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
