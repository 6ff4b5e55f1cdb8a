from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-25T16:26:39:492315"
VERSION = "1.38.0"
DESCRIPTION = "chat_session.client_session_key: idempotent session creation"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="helpline", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="ChatSession",
        tablename="chat_session",
        column_name="client_session_key",
        db_column_name="client_session_key",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 64,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
