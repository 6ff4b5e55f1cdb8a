"""Indexes for ownership and routing: the inbox's `?assignee=` and the open sessions per
agent, the routing backlog (waiting sessions, oldest first), and the owners the sweep
checks. Both engines take
partial indexes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-27T06:34:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Ownership and routing indexes"

FORWARDS = [
    "CREATE INDEX chat_session_assignee_idx ON chat_session (assignee_id, status)",
    "CREATE INDEX chat_session_waiting_idx ON chat_session (created_at, id)"
    " WHERE assignee_id IS NULL AND status = 'active'",
    # Whose open sessions to check on every sweep: only the open, owned ones.
    "CREATE INDEX chat_session_open_owner_idx ON chat_session (assignee_id)"
    " WHERE assignee_id IS NOT NULL AND status = 'active'",
]

BACKWARDS = [
    "DROP INDEX chat_session_open_owner_idx",
    "DROP INDEX chat_session_waiting_idx",
    "DROP INDEX chat_session_assignee_idx",
]


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
