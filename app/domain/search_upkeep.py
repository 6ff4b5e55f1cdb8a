"""Keeps the message search indexes' pending lists short, off the send path.

A GIN index with `fastupdate` (PostgreSQL's default) appends new entries to a pending
list and merges the list into the index when it passes `gin_pending_list_limit` (4 MB),
inside whichever INSERT crossed the limit. At 2,000 msg/s that was a message batch about
every 20 s taking 240 ms instead of 5, and every send queued behind it on that worker
waited too: the 200-300 ms stalls of the `steps` benchmark (issue 15), seen as INSERTs
over 200 ms in PostgreSQL's log at the moments of the stalls.

Here each worker merges the lists itself, twice a second while it is storing messages,
on a pool connection of its own (`gin_clean_pending_list`), so no INSERT meets a full
list; searches read a short list too. An INSERT that does find a full list (this task
stopped, the database lagging) merges it as before. Two workers merging at once take
turns on the index's cleanup lock. Why 0.5 s (1 worker, 2,000 msg/s, 6 phases of 8 s
each): p99 15-34 ms against 44-73 ms with merges left to the INSERTs, for about 10 % more
PostgreSQL CPU (smaller merges visit each key more often); merging every 2 s gave p99
44-102 ms, a larger merge slowing the inserts beside it more.

PostgreSQL only (SQLite has no such index). Needs the database user to own the indexes,
as the one that runs the migrations does; otherwise this logs once and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app import db

log = logging.getLogger(__name__)

# The GIN indexes every message adds entries to (piccolo_migrations, 07:20:01).
INDEXES = ("message_search_idx", "message_content_trgm_idx")
FLUSH_SECONDS = 0.5
_FLUSH = "SELECT " + ", ".join(f"gin_clean_pending_list('{i}'::regclass)" for i in INDEXES)
# SQLSTATE 42501: not the indexes' owner.
_NOT_OWNER = "42501"


async def flush_forever(stored: Callable[[], int], interval: float = FLUSH_SECONDS) -> None:
    """Merge the pending lists every `interval` seconds in which `stored()` (this worker's
    count of stored messages) went up. A failure (the database away) is retried next time;
    the message path reports outages itself."""
    seen = stored()
    while True:
        await asyncio.sleep(interval)
        now = stored()
        if now == seen:
            continue
        seen = now
        try:
            await db.fetch_direct(_FLUSH)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == _NOT_OWNER:
                log.warning(
                    "search index pending lists left to PostgreSQL (%s): inserts merge them",
                    exc,
                )
                return
            log.debug("search index pending lists not merged this time: %r", exc)
