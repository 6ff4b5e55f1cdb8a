"""Piccolo's SQLite engine as embedded mode uses it (one worker owns the file).

Each transaction's connection syncs the disk at checkpoints rather than at every commit
(`synchronous = NORMAL`, safe with the WAL journal that app/db.py turns on): a process
crash loses nothing committed, a power loss may lose the last commits. Under a send burst
the fsync per commit was most of each queued write's time.
"""

from __future__ import annotations

from typing import Any

from piccolo.engine.sqlite import SQLiteEngine


class EmbeddedSQLiteEngine(SQLiteEngine):
    async def get_connection(self) -> Any:
        connection = await super().get_connection()
        await connection.execute("PRAGMA synchronous = NORMAL")
        return connection
