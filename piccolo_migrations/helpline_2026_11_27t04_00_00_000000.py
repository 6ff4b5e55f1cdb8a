"""clientMessageId is unique per sender, not per session: one side guessing the other's
next id must not swallow its message (a retry is still recognised as its own)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-27T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "clientMessageId scoped to its sender"

FORWARDS = [
    "DROP INDEX message_session_client_id_uq",
    "CREATE UNIQUE INDEX message_sender_client_id_uq"
    " ON message (session_id, sender_type, sender_id, client_message_id)"
    " WHERE client_message_id IS NOT NULL",
]

BACKWARDS = [
    "DROP INDEX message_sender_client_id_uq",
    "CREATE UNIQUE INDEX message_session_client_id_uq ON message (session_id, client_message_id)"
    " WHERE client_message_id IS NOT NULL",
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
