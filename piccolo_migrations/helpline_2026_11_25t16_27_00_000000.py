"""The index behind idempotent session creation (raw SQL runs before a migration's column
changes, hence a migration of its own after the one adding the column)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T16:27:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one active session per userId and clientSessionId"

FORWARDS = [
    # A retried create with the same key finds, and concurrent ones race to, one row.
    "CREATE UNIQUE INDEX chat_session_client_key_uq ON chat_session (user_id, client_session_key)"
    " WHERE client_session_key IS NOT NULL AND status = 'active'",
]

BACKWARDS = ["DROP INDEX chat_session_client_key_uq"]


class _Raw(Table, tablename="chat_session"):
    pass


async def _run(statements: list[str]) -> None:
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
