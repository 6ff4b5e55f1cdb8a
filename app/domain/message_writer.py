"""Group commit: the messages a worker is asked to store while its previous write is in
flight are stored together, by one statement and one round trip to PostgreSQL.

Per message, the numbering INSERT was the write path's cost on both sides: its round
trip in the worker and its statement in PostgreSQL. Batching by "what queued meanwhile"
rather than by a timer adds no wait at low load (a lone message is written at once, by
the one-row statement) and grows the batch exactly as the load does.

What each message keeps, batched or not:
- its place: positions are consecutive per session in arrival order (several messages
  of one session may share a batch), taken under the session rows' locks, which are
  taken in id order so two workers' batches never deadlock;
- its ack after its commit: a sender's await resolves once the statement has returned;
- idempotency: a clientMessageId its sender already stored answers that row
  (created False), and two sends of one id in a batch store one row. A racing duplicate
  stored by another worker meanwhile fails the whole statement (a unique violation,
  nothing numbered): the batch is then written one message at a time, as before;
- its own failure: a closed or unknown session answers None for its messages only.

PostgreSQL only: embedded mode (SQLite) keeps its per-message transaction
(messages._insert).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app import db, metrics
from app.domain.sessions import MESSAGE_COLUMNS

# One statement stores at most this many messages; more queued wait for the next one.
MAX_BATCH = 256

Row = Mapping[str, Any]
# The stored row (None: the session is unknown or closed) and whether this send stored it.
Stored = tuple[Row | None, bool]


@dataclass(frozen=True, slots=True)
class Draft:
    """A message to store; its id is chosen here so a batch's rows map back to senders."""

    session_id: uuid.UUID
    sender_type: str
    admin_id: str | None  # the staff sender; None: the session's customer
    content: str
    client_message_id: str | None
    sender_name: str | None
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def same_send(self) -> tuple[object, ...] | None:
        """What makes two drafts one message (a retry): its sender's clientMessageId."""
        if self.client_message_id is None:
            return None
        return (self.session_id, self.sender_type, self.admin_id, self.client_message_id)


# Taking the next position locks the session row: sends to one session are ordered by
# commit, and a closed session takes none. One statement, so one round trip, atomic
# without a transaction: a duplicate clientMessageId undoes the number.
_NUMBER = (
    "UPDATE chat_session SET last_seq = last_seq + 1, last_activity_at = {}, updated_at = {}"
    " WHERE id = {} AND status = 'active' RETURNING last_seq, user_id"
)
INSERT_ONE = (
    f"WITH s AS ({_NUMBER}) INSERT INTO message ({MESSAGE_COLUMNS})"
    " SELECT {}::uuid, {}::uuid, s.last_seq, {}::varchar, COALESCE({}::varchar, s.user_id),"
    " {}::text, false, {}::varchar, {}::timestamptz, {}::varchar FROM s"
    f" RETURNING {MESSAGE_COLUMNS}"
)

_KNOWN_COLUMNS = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))

# The batch: drafts in arrival order (ord); those whose clientMessageId is already stored
# (known) answer that row; the rest (fresh) are counted per session, the sessions locked
# in id order, each session's last_seq moved on by its count (base = the old value), and
# its drafts numbered base + 1, base + 2 … in arrival order. A customer's sender_id is
# the session's user_id, so every lookup of `known` is one probe of the unique index.
_BATCH_BODY = (
    " known AS (SELECT i.ord, m.* FROM input i CROSS JOIN LATERAL"
    f" (SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.session_id = i.session_id"
    " AND m.sender_type = i.sender_type AND m.client_message_id = i.client_message_id"
    " AND m.sender_id = COALESCE(i.admin_id,"
    " (SELECT user_id FROM chat_session WHERE id = i.session_id)) LIMIT 1) m),"
    " fresh AS (SELECT * FROM input i WHERE NOT EXISTS (SELECT FROM known k WHERE k.ord = i.ord)),"
    " counts AS (SELECT session_id, count(*)::int AS n FROM fresh GROUP BY session_id),"
    " locked AS (SELECT k.session_id AS id, k.n"
    " FROM (SELECT session_id, n FROM counts ORDER BY session_id) k CROSS JOIN LATERAL"
    " (SELECT FROM chat_session c WHERE c.id = k.session_id AND c.status = 'active'"
    " FOR UPDATE) c),"
    " numbered AS (UPDATE chat_session c"
    " SET last_seq = c.last_seq + locked.n, last_activity_at = {}, updated_at = {}"
    " FROM locked WHERE c.id = locked.id"
    " RETURNING c.id, c.last_seq - locked.n AS base, c.user_id),"
    f" stored AS (INSERT INTO message ({MESSAGE_COLUMNS})"
    " SELECT f.id, f.session_id,"
    " n.base + row_number() OVER (PARTITION BY f.session_id ORDER BY f.ord),"
    " f.sender_type, COALESCE(f.admin_id, n.user_id), f.content, false,"
    " f.client_message_id, {}::timestamptz, f.sender_name"
    f" FROM fresh f JOIN numbered n ON n.id = f.session_id RETURNING {MESSAGE_COLUMNS})"
    f" SELECT NULL::bigint AS ord, {MESSAGE_COLUMNS} FROM stored"
    f" UNION ALL SELECT ord, {MESSAGE_COLUMNS} FROM known"
)
_COLUMNS = "id, session_id, sender_type, admin_id, content, client_message_id, sender_name"

# Two spellings of the drafts, for PostgreSQL's plan cache (the same results). A small
# batch is the common one: `LIMIT <its length>` makes the generic plan expect one draft,
# so it is kept after five executions rather than planned afresh each time (~0.5 ms of
# PostgreSQL's CPU, as much as storing two messages; unnest of a parameter is otherwise
# expected to give 10 and that plan looks dearer than one made for 2). A plan made for one
# draft joins by nested loops, quadratic in a large batch (256 drafts: 165 ms against
# 20 ms), so a large one is numbered by generate_series, whose generic plan expects 1,000
# rows: it is planned for its real length every time, which it amortises.
SMALL_BATCH = 8
INSERT_SMALL_BATCH = (
    "WITH input AS (SELECT * FROM unnest({}::uuid[], {}::uuid[], {}::text[], {}::text[],"
    f" {{}}::text[], {{}}::text[], {{}}::text[]) WITH ORDINALITY AS t({_COLUMNS}, ord)"
    " LIMIT {}),"
) + _BATCH_BODY
INSERT_LARGE_BATCH = (
    "WITH input AS (SELECT ({}::uuid[])[g.ord] AS id, ({}::uuid[])[g.ord] AS session_id,"
    " ({}::text[])[g.ord] AS sender_type, ({}::text[])[g.ord] AS admin_id,"
    " ({}::text[])[g.ord] AS content, ({}::text[])[g.ord] AS client_message_id,"
    " ({}::text[])[g.ord] AS sender_name, g.ord::bigint AS ord"
    " FROM generate_series(1, {}::int) AS g(ord)),"
) + _BATCH_BODY


async def insert_one(draft: Draft, now: dt.datetime) -> Row | None:
    """One message by the one-row statement (None: the session is unknown or closed).
    A known clientMessageId raises the unique violation the caller handles."""
    return await db.fetch_one_direct(
        INSERT_ONE,
        now,
        now,
        draft.session_id,
        draft.id,
        draft.session_id,
        draft.sender_type,
        draft.admin_id,
        draft.content,
        draft.client_message_id,
        now,
        draft.sender_name,
    )


def batch_statement(size: int) -> str:
    """The statement storing `size` drafts. Its arguments: the drafts' ids, session ids,
    sender types, admin ids, contents, clientMessageIds and sender names (seven arrays),
    `size`, then the time three times."""
    return INSERT_SMALL_BATCH if size <= SMALL_BATCH else INSERT_LARGE_BATCH


async def insert_batch(drafts: list[Draft], now: dt.datetime) -> list[Stored]:
    """Distinct drafts (no two the same send) stored by one statement; each one's row and
    whether it is new, in the drafts' order."""
    rows = await db.fetch_direct(
        batch_statement(len(drafts)),
        [d.id for d in drafts],
        [d.session_id for d in drafts],
        [d.sender_type for d in drafts],
        [d.admin_id for d in drafts],
        [d.content for d in drafts],
        [d.client_message_id for d in drafts],
        [d.sender_name for d in drafts],
        len(drafts),
        now,
        now,
        now,
    )
    place = {d.id: n for n, d in enumerate(drafts)}
    out: list[Stored] = [(None, True)] * len(drafts)
    for row in rows:
        if row["ord"] is None:
            out[place[row["id"]]] = (row, True)
        else:
            out[row["ord"] - 1] = (row, False)
    return out


class _Pending:
    __slots__ = ("draft", "future")

    def __init__(self, draft: Draft, future: asyncio.Future[Stored]) -> None:
        self.draft = draft
        self.future = future


class MessageWriter:
    """This event loop's writer: one statement in flight; what queues meanwhile is the
    next statement."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        # Statements' messages so far (app/domain/search_upkeep.py: whether to merge).
        self.stored = 0

    async def store(self, draft: Draft) -> Stored:
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(draft, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._write(batch)
        except BaseException as exc:
            _fail(self._queue, exc)
            self._queue.clear()
            raise
        finally:
            self._task = None

    async def _write(self, batch: list[_Pending]) -> None:
        """Resolves every future of `batch`, whatever happens. A sender that stopped
        waiting before the write began (a cancelled request) is left out of it."""
        leaders: dict[tuple[object, ...], int] = {}
        distinct: list[Draft] = []
        owners: list[int] = []  # the place in `distinct` of each pending's message
        for pending in batch:
            if pending.future.done():
                owners.append(-1)
                continue
            key = pending.draft.same_send()
            if key is None or key not in leaders:
                if key is not None:
                    leaders[key] = len(distinct)
                distinct.append(pending.draft)
            owners.append(leaders[key] if key is not None else len(distinct) - 1)
        if not distinct:
            return
        metrics.MESSAGE_BATCH.observe(len(distinct))
        try:
            results = await _store(distinct)
        except BaseException as exc:
            _fail(batch, exc)
            raise
        self.stored += len(distinct)
        first = set[int]()
        for pending, owner in zip(batch, owners, strict=True):
            if owner < 0 or pending.future.done():
                continue
            result = results[owner]
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            elif owner in first:
                # A second send of one message in one batch: the first one's row, not new.
                pending.future.set_result((result[0], False))
            else:
                pending.future.set_result(result)
            first.add(owner)


async def _store(drafts: list[Draft]) -> list[Stored | Exception]:
    """Each draft's outcome: by one statement, or one at a time when the batch failed
    because of one of its messages."""
    now = dt.datetime.now(dt.UTC)
    if len(drafts) > 1:
        try:
            return list(await insert_batch(drafts, now))
        except Exception as exc:
            # Refused because of one message (a racing duplicate, a deadlock with another
            # writer's lock): each alone. Unreachable: that fails them all.
            if not db.is_refused(exc):
                return [exc] * len(drafts)
    out: list[Stored | Exception] = []
    for draft in drafts:
        try:
            out.append((await insert_one(draft, now), True))
        except Exception as exc:
            out.append(exc)
    return out


def _fail(pending: list[_Pending], exc: BaseException) -> None:
    for p in pending:
        if p.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            p.future.cancel()
        else:
            p.future.set_exception(exc)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MessageWriter] = (
    weakref.WeakKeyDictionary()
)


def writer() -> MessageWriter:
    """The running event loop's writer (a worker has one loop; tests may run several)."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        found = _writers[loop] = MessageWriter()
    return found
