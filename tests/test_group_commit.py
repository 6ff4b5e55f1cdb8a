"""Group commit (app/domain/message_writer.py): messages queued while a write is in flight
are stored by one statement, and each keeps what a lone send promises: a gap-free place
in its session in arrival order, an ack only after its commit, idempotency, and a failure
of its own.

The writer's own tests run it in this process against the real PostgreSQL database, so
a batch's makeup is exact (sends gathered at once queue before the writer runs); the
end-to-end ones send over the socket and REST to two server processes at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from piccolo.engine.postgres import PostgresEngine
from prometheus_client import REGISTRY

from app import db as app_db
from app.domain import message_writer
from app.domain.message_writer import Draft, MessageWriter
from tests.sockets import Client
from tests.support import LiveServer, bearer

# -- the writer, in this process ------------------------------------------------------


@pytest.fixture
async def engine(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    found: Any = PostgresEngine(config={"dsn": database_url})
    await found.start_connection_pool(min_size=1, max_size=4)
    monkeypatch.setattr(app_db, "engine", lambda: found)
    yield found
    try:
        await asyncio.wait_for(found.close_connection_pool(), timeout=5)
    except TimeoutError:  # a connection leaked (the test failed): do not wait on it
        found.pool.terminate()


async def new_session(conn: asyncpg.Connection, status: str = "active") -> uuid.UUID:
    session_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO chat_session (id, user_id, status, last_seq, created_at, updated_at,"
        " last_activity_at) VALUES ($1, $2, $3, 0, now(), now(), now())",
        session_id,
        f"visitor-{session_id.hex[:6]}",
        status,
    )
    return session_id


def customer(session_id: uuid.UUID, content: str, client_id: str | None = None) -> Draft:
    return Draft(session_id, "user", None, content, client_id, None)


def staff(session_id: uuid.UUID, content: str, client_id: str | None = None) -> Draft:
    return Draft(session_id, "admin", "agent-1", content, client_id, "Ann")


def batches() -> tuple[float, float]:
    """(statements, messages) the writers of this process have stored so far."""
    count = REGISTRY.get_sample_value("helpline_message_batch_size_count") or 0.0
    total = REGISTRY.get_sample_value("helpline_message_batch_size_sum") or 0.0
    return count, total


async def seqs(conn: asyncpg.Connection, session_id: uuid.UUID) -> list[tuple[int, str]]:
    rows = await conn.fetch(
        "SELECT seq, content FROM message WHERE session_id = $1 ORDER BY seq", session_id
    )
    return [(r["seq"], r["content"]) for r in rows]


async def test_sends_queued_together_are_one_statement_numbered_in_arrival_order(engine, db):
    one, two = await new_session(db), await new_session(db)
    drafts = [customer(one, "a1"), staff(two, "b1"), customer(one, "a2"), staff(one, "a3")]
    before = batches()
    writer = MessageWriter()
    stored = await asyncio.gather(*(writer.store(d) for d in drafts))
    assert [(row and row["seq"], created) for row, created in stored] == [
        (1, True),
        (1, True),
        (2, True),
        (3, True),
    ]
    assert [row and row["id"] for row, _ in stored] == [d.id for d in drafts]
    assert batches() == (before[0] + 1, before[1] + 4)
    assert await seqs(db, one) == [(1, "a1"), (2, "a2"), (3, "a3")]
    assert await db.fetchval("SELECT last_seq FROM chat_session WHERE id = $1", two) == 1


async def test_a_lone_send_is_written_at_once_by_itself(engine, db):
    session = await new_session(db)
    before = batches()
    row, created = await MessageWriter().store(customer(session, "alone"))
    assert row is not None and (row["seq"], created) == (1, True)
    assert batches() == (before[0] + 1, before[1] + 1)


async def test_sends_arriving_during_a_write_are_the_next_statement(engine, db):
    session = await new_session(db)
    writer = MessageWriter()
    before = batches()
    first = asyncio.create_task(writer.store(customer(session, "first")))
    await asyncio.sleep(0)  # the writer has taken "first" and its statement is under way
    rest = [asyncio.create_task(writer.store(customer(session, f"m{n}"))) for n in range(5)]
    await asyncio.gather(first, *rest)
    assert batches() == (before[0] + 2, before[1] + 6)
    assert await seqs(db, session) == [(1, "first")] + [(n + 2, f"m{n}") for n in range(5)]


async def test_one_client_message_id_twice_in_a_batch_stores_one_row(engine, db):
    session = await new_session(db)
    writer = MessageWriter()
    stored = await asyncio.gather(
        writer.store(customer(session, "x", "c-1")),
        writer.store(customer(session, "other")),
        writer.store(customer(session, "x again", "c-1")),
    )
    (first, created_first), (_, _), (again, created_again) = stored
    assert (created_first, created_again) == (True, False)
    assert again == first
    assert await seqs(db, session) == [(1, "x"), (2, "other")]


async def test_a_known_client_message_id_in_a_batch_answers_the_stored_row_and_takes_no_seq(
    engine, db
):
    session = await new_session(db)
    writer = MessageWriter()
    original, _ = await writer.store(staff(session, "original", "c-1"))
    assert original is not None
    stored = await asyncio.gather(
        writer.store(customer(session, "before")),
        writer.store(staff(session, "retry", "c-1")),
        # Another sender's id is its own: the customer's "c-1" is a new message.
        writer.store(customer(session, "customer's own", "c-1")),
    )
    assert [created for _, created in stored] == [True, False, True]
    assert stored[1][0] is not None and stored[1][0]["id"] == original["id"]
    assert await seqs(db, session) == [(1, "original"), (2, "before"), (3, "customer's own")]
    assert await db.fetchval("SELECT last_seq FROM chat_session WHERE id = $1", session) == 3


async def test_a_closed_or_unknown_session_fails_only_its_own_sends_in_a_batch(engine, db):
    live, closed, unknown = await new_session(db), await new_session(db, "closed"), uuid.uuid4()
    writer = MessageWriter()
    stored = await asyncio.gather(
        writer.store(customer(live, "one")),
        writer.store(customer(closed, "refused")),
        writer.store(customer(unknown, "nowhere")),
        writer.store(customer(live, "two")),
    )
    assert [row is None for row, _ in stored] == [False, True, True, False]
    assert await seqs(db, live) == [(1, "one"), (2, "two")]
    assert await db.fetchval("SELECT last_seq FROM chat_session WHERE id = $1", closed) == 0


async def wait_for_lock_wait(conn: asyncpg.Connection) -> None:
    """Until some backend of this database waits for a lock (the writer's statement)."""
    for _ in range(500):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the writer never waited for the session's lock")


async def test_a_duplicate_committed_by_another_worker_meanwhile_costs_no_seq(
    engine, db, database_url
):
    """Another worker stores the same clientMessageId while this batch waits for the
    session's lock: the batch's statement fails whole (a unique violation), and its
    messages are then written one at a time: the duplicate fails as a lone retry does
    (the caller answers the stored row), the others are stored, no number is skipped."""
    one, two = await new_session(db), await new_session(db)
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        now = dt.datetime.now(dt.UTC)
        racing = customer(one, "racing", "c-1")
        await other.fetchrow(
            app_db._numbered(message_writer.INSERT_ONE),
            now,
            now,
            one,
            racing.id,
            one,
            "user",
            None,
            racing.content,
            "c-1",
            now,
            None,
        )
        writer = MessageWriter()
        sends = [
            asyncio.create_task(writer.store(d))
            for d in (customer(two, "b1"), customer(one, "dup", "c-1"), customer(one, "a2"))
        ]
        await wait_for_lock_wait(db)
        await tx.commit()
        b1, dup, a2 = await asyncio.gather(*sends, return_exceptions=True)
    finally:
        await other.close()
    assert isinstance(dup, BaseException) and app_db.is_unique_violation(dup)
    assert not isinstance(b1, BaseException) and b1[1] is True
    assert not isinstance(a2, BaseException) and a2[1] is True
    assert await seqs(db, one) == [(1, "racing"), (2, "a2")]
    assert await seqs(db, two) == [(1, "b1")]


async def test_a_connection_lost_mid_batch_fails_every_send_of_it_and_stores_none(
    engine, db, database_url
):
    """What a PostgreSQL restart does to a statement in flight: each sender hears the
    failure (and retries with its clientMessageId); nothing of the batch is stored."""
    one, two = await new_session(db), await new_session(db)
    holder = await asyncpg.connect(database_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT FROM chat_session WHERE id = $1 FOR UPDATE", one)
        writer = MessageWriter()
        sends = [
            asyncio.create_task(writer.store(d))
            for d in (customer(two, "b1", "c-b"), customer(one, "a1", "c-a"))
        ]
        await wait_for_lock_wait(db)
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        await tx.rollback()
    finally:
        await holder.close()
    assert all(isinstance(o, BaseException) for o in outcomes), outcomes
    assert await db.fetchval("SELECT count(*) FROM message") == 0
    # The writer carries on: a retry is stored.
    row, created = await writer.store(customer(one, "a1", "c-a"))
    assert row is not None and (row["seq"], created) == (1, True)


# -- end to end: two server processes, socket and REST ------------------------------


def rest_send(api: httpx.AsyncClient, token: str, **body: Any) -> Any:
    return api.post("/api/chat/messages", json=body, headers=bearer(token))


async def test_concurrent_sends_over_two_workers_are_acked_and_numbered_without_gaps(
    make, server: LiveServer, server_b: LiveServer, db
):
    sessions = [await make.session() for _ in range(5)]
    clients = [
        await Client(url, s["customerToken"]).connect()
        for s in sessions
        for url in (server.url, server_b.url)
    ]
    apis = [httpx.AsyncClient(base_url=url, timeout=20) for url in (server.url, server_b.url)]
    try:
        sends = []
        for n in range(200):
            session = sessions[n % 5]
            body = {"sessionId": session["id"], "content": f"m{n}", "clientMessageId": f"c{n}"}
            if n % 2:
                client = clients[(n % 5) * 2 + (n // 5) % 2]
                sends.append(client.call("send_message", body))
            else:
                api = apis[(n // 5) % 2]
                sends.append(rest_send(api, session["customerToken"], **body))
        answers = await asyncio.gather(*sends)
    finally:
        for client in clients:
            await client.close()
        for api in apis:
            await api.aclose()
    acked: list[dict[str, Any]] = []
    for answer in answers:
        if isinstance(answer, httpx.Response):
            assert answer.status_code == 201, answer.text
            acked.append(answer.json())
        else:
            assert answer["ok"] and answer["created"], answer
            acked.append(answer["message"])
    assert sorted(m["content"] for m in acked) == sorted(f"m{n}" for n in range(200))
    stored = await db.fetch("SELECT id, session_id, seq, content FROM message")
    assert {(str(r["id"]), r["seq"], r["content"]) for r in stored} == {
        (m["id"], m["seq"], m["content"]) for m in acked
    }
    for session in sessions:
        numbers = sorted(r["seq"] for r in stored if str(r["session_id"]) == session["id"])
        assert numbers == list(range(1, 41))


async def test_one_client_message_id_sent_at_once_to_two_workers_stores_one_row(
    make, server: LiveServer, server_b: LiveServer, db
):
    session = await make.session()
    token, sid = session["customerToken"], session["id"]
    clients = [await Client(url, token).connect() for url in (server.url, server_b.url)]
    apis = [httpx.AsyncClient(base_url=url, timeout=20) for url in (server.url, server_b.url)]
    same = {"sessionId": sid, "content": "once", "clientMessageId": "c-same"}
    try:
        sends: list[Any] = []
        for n in range(12):
            sends.append(clients[n % 2].call("send_message", same))
            sends.append(rest_send(apis[n % 2], token, **same))
            # Messages without an id around it: none may lose or skip a number.
            sends.append(rest_send(apis[(n + 1) % 2], token, sessionId=sid, content=f"x{n}"))
        answers = await asyncio.gather(*sends)
    finally:
        for client in clients:
            await client.close()
        for api in apis:
            await api.aclose()
    same_answers: list[tuple[dict[str, Any], bool]] = []
    for n, answer in enumerate(answers):
        if n % 3 == 0:
            assert answer["ok"], answer
            same_answers.append((answer["message"], answer["created"]))
        elif n % 3 == 1:
            assert answer.status_code in (200, 201), answer.text
            same_answers.append((answer.json(), answer.status_code == 201))
        else:
            assert answer.status_code == 201, answer.text
    assert len({m["id"] for m, _ in same_answers}) == 1
    assert sum(created for _, created in same_answers) == 1
    numbers = [r["seq"] for r in await db.fetch("SELECT seq FROM message ORDER BY seq")]
    assert numbers == list(range(1, 14))
    assert await db.fetchval("SELECT count(*) FROM message WHERE client_message_id = 'c-same'") == 1


async def test_a_closed_sessions_send_fails_alone_among_concurrent_sends(
    make, api, server: LiveServer, db
):
    token = await make.admin_token()
    live = [await make.session() for _ in range(3)]
    closed = await make.session()
    r = await api.patch(
        f"/api/sessions/{closed['id']}/status", json={"status": "closed"}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    sends = [rest_send(api, s["customerToken"], sessionId=s["id"], content="hi") for s in live * 10]
    sends.insert(15, rest_send(api, closed["customerToken"], sessionId=closed["id"], content="no"))
    answers = await asyncio.gather(*sends)
    refused = answers.pop(15)
    assert refused.status_code == 409 and refused.json()["code"] == "session_closed"
    assert [a.status_code for a in answers] == [201] * 30
    assert await db.fetchval("SELECT count(*) FROM message") == 30


@pytest.fixture
async def poison(db: asyncpg.Connection) -> AsyncIterator[str]:
    """Content PostgreSQL refuses to store (a trigger raises), as a bad row would be."""
    await db.execute(
        """
        CREATE FUNCTION w1_refuse_poison() RETURNS trigger AS $$
        BEGIN
          IF NEW.content = 'poison' THEN RAISE EXCEPTION 'refused'; END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER w1_refuse_poison BEFORE INSERT ON message
          FOR EACH ROW EXECUTE FUNCTION w1_refuse_poison();
        """
    )
    try:
        yield "poison"
    finally:
        await db.execute(
            "DROP TRIGGER w1_refuse_poison ON message; DROP FUNCTION w1_refuse_poison();"
        )


async def test_a_message_postgresql_refuses_fails_alone_and_takes_no_seq(engine, db, poison):
    one, two = await new_session(db), await new_session(db)
    writer = MessageWriter()
    outcomes = await asyncio.gather(
        writer.store(customer(one, "a1")),
        writer.store(customer(two, poison)),
        writer.store(customer(two, "b1")),
        writer.store(customer(one, "a2")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Exception) and "refused" in str(outcomes[1])
    assert [o[1] for o in outcomes if not isinstance(o, BaseException)] == [True] * 3
    assert await seqs(db, one) == [(1, "a1"), (2, "a2")]
    assert await seqs(db, two) == [(1, "b1")]


async def test_a_large_batch_keeps_every_rule_of_a_small_one(engine, db):
    """Past SMALL_BATCH drafts the batch is spelled another way (for the plan cache)."""
    sessions = [await new_session(db) for _ in range(3)]
    closed = await new_session(db, "closed")
    writer = MessageWriter()
    known, _ = await writer.store(customer(sessions[0], "known", "c-known"))
    assert known is not None
    drafts = [
        customer(sessions[n % 3], f"m{n}", f"c{n}") for n in range(message_writer.SMALL_BATCH * 5)
    ]
    drafts[7] = customer(sessions[0], "retry", "c-known")
    drafts[9] = customer(closed, "refused")
    drafts[11] = customer(sessions[2], "twice", "c2")  # the id of drafts[2], same session
    stored = await asyncio.gather(*(writer.store(d) for d in drafts))
    retry, created = stored[7]
    assert retry is not None and retry["id"] == known["id"] and created is False
    assert stored[9] == (None, True)
    assert stored[11][0] == stored[2][0] and stored[11][1] is False
    fresh = [n for n in range(len(drafts)) if n not in (7, 9, 11)]
    assert all(stored[n][1] for n in fresh)
    for session in sessions:
        mine = [stored[n][0] for n in fresh if drafts[n].session_id == session]
        first = 2 if session == sessions[0] else 1
        assert [r and r["seq"] for r in mine] == list(range(first, first + len(mine)))
        assert (
            await db.fetchval("SELECT last_seq FROM chat_session WHERE id = $1", session)
            == first + len(mine) - 1
        )
