"""Constraints and indexes Piccolo's column options cannot express (raw SQL runs before
table creation inside one migration, hence a migration of its own)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T13:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "message ordering, idempotency and inbox indexes"

FORWARDS = [
    # A cursor is (session, seq): unique, so paging never skips or repeats.
    "CREATE UNIQUE INDEX message_session_seq_uq ON message (session_id, seq)",
    # A retried send with the same clientMessageId stores one row.
    "CREATE UNIQUE INDEX message_session_client_id_uq ON message (session_id, client_message_id)"
    " WHERE client_message_id IS NOT NULL",
    # Unread customer messages per session, for the inbox's unreadCount.
    "CREATE INDEX message_unread_idx ON message (session_id)"
    " WHERE sender_type = 'user' AND NOT is_read",
    # The inbox: newest activity first, optionally by status.
    "CREATE INDEX chat_session_activity_idx ON chat_session (last_activity_at DESC, id DESC)",
    "CREATE INDEX chat_session_status_activity_idx"
    " ON chat_session (status, last_activity_at DESC, id DESC)",
]

BACKWARDS = [
    "DROP INDEX chat_session_status_activity_idx",
    "DROP INDEX chat_session_activity_idx",
    "DROP INDEX message_unread_idx",
    "DROP INDEX message_session_client_id_uq",
    "DROP INDEX message_session_seq_uq",
]


class _Raw(Table, tablename="message"):
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
