"""Search: staff only, words and fragments, newest first, cursor-paged, filtered,
highlighted; and every query the API runs is answered from its index (EXPLAIN)."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg
import pytest

from app.domain import search
from tests.support import assert_error, bearer


async def test_words_are_found_newest_first_with_marked_snippets(api, make):
    token = await make.admin_token()
    old = await make.session(userName="Ada")
    new = await make.session(userName="Bob")
    await make.message(old["customerToken"], old["id"], "I want refunds for <b>two</b> orders")
    await make.message(new["customerToken"], new["id"], "Where is my refund?")
    await make.message(new["customerToken"], new["id"], "nothing to see")
    r = await api.get("/api/search/messages?q=refund", headers=bearer(token))
    assert r.status_code == 200, r.text
    hits = r.json()
    assert [h["session"]["userName"] for h in hits] == ["Bob", "Ada"]
    assert "<mark>refund</mark>" in hits[0]["highlight"]
    # Stemmed ("refunds"), and the customer's markup never comes through: only <mark>.
    assert "<mark>refunds</mark>" in hits[1]["highlight"]
    assert "<b>" not in hits[1]["highlight"]


async def test_fragments_find_order_numbers_and_emails_inside_words(api, make):
    token = await make.admin_token()
    session = await make.session()
    await make.message(session["customerToken"], session["id"], "order #ORD-58213-X failed")
    await make.message(session["customerToken"], session["id"], "mail me: jo@example.org")
    r = await api.get("/api/search/messages?q=58213", headers=bearer(token))
    assert [h["message"]["content"] for h in r.json()] == ["order #ORD-58213-X failed"]
    assert "<mark>58213</mark>" in r.json()[0]["highlight"]
    r = await api.get("/api/search/messages?q=jo@example", headers=bearer(token))
    assert len(r.json()) == 1
    r = await api.get("/api/search/messages?q=58&mode=fragment", headers=bearer(token))
    assert_error(r, 400, "validation_error")


async def test_pages_follow_the_cursor_without_gap_or_repeat(api, make):
    token = await make.admin_token()
    session = await make.session()
    sent = [
        (await make.message(session["customerToken"], session["id"], f"parcel {i}"))["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    url = "/api/search/messages?q=parcel&limit=2"
    while url:
        r = await api.get(url, headers=bearer(token))
        seen += [h["message"]["id"] for h in r.json()]
        link = r.headers.get("link")
        url = link[1 : link.index(">")] if link else ""
    assert seen == sent[::-1]


async def test_filters_by_status_and_label(api, make):
    token = await make.admin_token()
    a = await make.session()
    b = await make.session()
    await make.message(a["customerToken"], a["id"], "invoice please")
    await make.message(b["customerToken"], b["id"], "invoice again")
    await api.put(
        f"/api/sessions/{a['id']}/labels", json={"labels": ["vip"]}, headers=bearer(token)
    )
    await api.patch(
        f"/api/sessions/{b['id']}/status", json={"status": "closed"}, headers=bearer(token)
    )
    r = await api.get("/api/search/messages?q=invoice&label=vip", headers=bearer(token))
    assert [h["session"]["id"] for h in r.json()] == [a["id"]]
    r = await api.get("/api/search/messages?q=invoice&status=closed", headers=bearer(token))
    assert [h["session"]["id"] for h in r.json()] == [b["id"]]


async def test_filters_by_assignee(api, make):
    token = await make.admin_token()
    mine = await make.session()
    other = await make.session()
    await make.message(mine["customerToken"], mine["id"], "parcel lost")
    await make.message(other["customerToken"], other["id"], "parcel late")
    r = await api.post(f"/api/sessions/{mine['id']}/claim", headers=bearer(token))
    assert r.status_code == 200, r.text
    for assignee, expected in (("me", mine), ("unassigned", other)):
        r = await api.get(
            f"/api/search/messages?q=parcel&assignee={assignee}", headers=bearer(token)
        )
        assert [h["session"]["id"] for h in r.json()] == [expected["id"]]
        r = await api.get(
            f"/api/search/sessions?q=user-&assignee={assignee}", headers=bearer(token)
        )
        assert [s["id"] for s in r.json()] == [expected["id"]]
    r = await api.get("/api/search/messages?q=parcel&assignee=nobody", headers=bearer(token))
    assert_error(r, 400, "validation_error")


async def test_sessions_are_found_by_customer_name_or_email(api, make):
    token = await make.admin_token()
    ada = await make.session(userName="Ada Lovelace", userEmail="ada@analytical.org")
    await make.session(userName="Bob")
    for q in ("lovelace", "analytical.org"):
        r = await api.get(f"/api/search/sessions?q={q}", headers=bearer(token))
        assert [s["id"] for s in r.json()] == [ada["id"]]


async def test_a_customer_cannot_search(api, make):
    session = await make.session()
    for path in ("/api/search/messages?q=hello", "/api/search/sessions?q=hello"):
        r = await api.get(path, headers=bearer(session["customerToken"]))
        assert_error(r, 403, "admin_only")


# EXPLAIN: the planner's own choice on a table big enough for an index to matter.

ROWS = 30_000
SESSIONS = 6_000


@pytest.fixture
async def corpus(db: asyncpg.Connection) -> asyncpg.Connection:
    """30,000 messages in 6,000 sessions: 'order' in every third message, 'zanzibar' in
    one in 3,000, an order number in each; 'vip' on about a third of the sessions;
    vacuumed and analysed."""
    await db.execute(
        """
        INSERT INTO chat_session (id, user_id, user_name, user_email, status, last_seq,
                                  created_at, updated_at, last_activity_at)
        SELECT gen_random_uuid(), 'u' || g, 'Name ' || g, 'u' || g || '@example.com',
               CASE WHEN g % 4 = 0 THEN 'closed' ELSE 'active' END, 0, now(), now(),
               now() - g * interval '1 minute'
        FROM generate_series(1, $1) AS g
        """,
        SESSIONS,
    )
    await db.execute(
        """
        WITH s AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM chat_session)
        INSERT INTO message (id, session_id, seq, sender_type, sender_id, content, is_read,
                             created_at)
        SELECT gen_random_uuid(), s.id, g, 'user', 'u', concat_ws(' ',
                 'hello there about my',
                 CASE WHEN g % 3 = 0 THEN 'order' ELSE 'parcel' END,
                 CASE WHEN g % 3000 = 7 THEN 'zanzibar' END,
                 'ref ORD-' || lpad(g::text, 6, '0')),
               false, now() - g * interval '1 second'
        FROM generate_series(1, $1) AS g JOIN s ON s.n = 1 + g % $2
        """,
        ROWS,
        SESSIONS,
    )
    # A label on a third of the sessions: a filter, not a shortcut around the text index.
    await db.execute(
        "INSERT INTO session_label (id, session_id, label)"
        " SELECT gen_random_uuid(), id, 'vip' FROM chat_session WHERE user_name LIKE '%3'"
        " OR user_name LIKE '%6' OR user_name LIKE '%9'"
    )
    # As autovacuum leaves a table: GIN's pending list merged (the planner prices a
    # long pending list as a scan of it), statistics fresh.
    for table in ("message", "chat_session", "session_label", "session_who"):
        await db.execute(f"VACUUM ANALYZE {table}")
    return db


def numbered(sql: str) -> str:
    parts = sql.split("{}")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


async def plan_of(db: asyncpg.Connection, sql: str, args: list[object]) -> str:
    rows = await db.fetch(f"EXPLAIN (FORMAT JSON) {numbered(sql)}", *args)
    return json.dumps(json.loads(rows[0][0]))


def scans_of(plan: str, table: str) -> set[str]:
    """The node types that read `table`, and the indexes they use."""
    found: set[str] = set()

    def walk(node: dict) -> None:
        if node.get("Relation Name") == table:
            found.add(node["Node Type"])
        if "Index Name" in node:
            found.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(json.loads(plan)[0]["Plan"])
    return found


FILTERS = [
    search.Filters(),
    search.Filters(status="closed"),
    search.Filters(label="vip"),
    search.Filters(owner="unassigned"),
]


async def test_a_selective_word_is_answered_from_the_tsvector_index(corpus):
    for filters in FILTERS:
        sql, args = search.message_query("zanzibar", "words", filters, 20, None)
        scans = scans_of(await plan_of(corpus, sql, args), "message")
        assert "message_search_idx" in scans and "Seq Scan" not in scans, (filters, scans)


async def test_a_fragment_is_answered_from_the_trigram_index(corpus):
    for filters in FILTERS:
        sql, args = search.message_query("ORD-004217", "fragment", filters, 20, None)
        scans = scans_of(await plan_of(corpus, sql, args), "message")
        assert "message_content_trgm_idx" in scans and "Seq Scan" not in scans, (filters, scans)


async def test_a_common_word_reads_the_newest_first_from_an_index(corpus):
    before = (dt.datetime.now(dt.UTC), search.uuid.UUID(int=0))
    for cursor in (None, before):
        sql, args = search.message_query("order", "words", search.Filters(), 50, cursor)
        scans = scans_of(await plan_of(corpus, sql, args), "message")
        assert scans & {"message_created_idx", "message_search_idx"}, scans
        assert "Seq Scan" not in scans, scans


async def test_a_session_fragment_is_answered_from_the_trigram_index(corpus):
    sql, args = search.session_query("u1234@example", search.Filters(), 20, None)
    plan = await plan_of(corpus, sql, args)
    scans = scans_of(plan, "session_who") | scans_of(plan, "chat_session")
    assert "session_who_trgm_idx" in scans and "Seq Scan" not in scans, scans


# Every message UPDATEs its session (last_seq, last_activity_at; never a HOT update, as
# last_activity_at is indexed), which adds an entry to every index on chat_session.


async def test_the_table_every_message_updates_has_no_text_index(db):
    """A trigram index there re-indexed the customer's unchanged id, name and email
    once per message (bench/search_write.py counts it)."""
    gin = await db.fetch(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am a ON a.oid = c.relam"
        " WHERE i.indrelid = 'chat_session'::regclass AND a.amname = 'gin'"
    )
    assert [r["relname"] for r in gin] == []


async def test_a_message_leaves_the_customers_search_text_unwritten(api, make, db):
    session = await make.session(userName="Ada", userEmail="ada@analytical.org")
    row = "SELECT xmin::text, who FROM session_who WHERE session_id = $1::uuid"
    before = await db.fetchrow(row, session["id"])
    await make.message(session["customerToken"], session["id"], "hello")
    assert await db.fetchrow(row, session["id"]) == before
    assert "Ada ada@analytical.org" in before["who"]


async def test_the_customers_search_text_follows_a_new_name_or_email(api, make, db):
    token = await make.admin_token()
    session = await make.session(userName="Ada", userEmail="ada@analytical.org")
    await db.execute(
        "UPDATE chat_session SET user_name = 'Grace', user_email = 'grace@navy.mil'"
        " WHERE id = $1::uuid",
        session["id"],
    )
    r = await api.get("/api/search/sessions?q=navy.mil", headers=bearer(token))
    assert [s["id"] for s in r.json()] == [session["id"]]
    r = await api.get("/api/search/sessions?q=analytical", headers=bearer(token))
    assert r.json() == []


async def test_the_search_column_keeps_enough_statistics_to_price_rare_words(db):
    """Default statistics price every word missing from ~25 tracked lexemes at 0.5 % of
    rows, and the planner then walks the newest-first index for a rare word (1.3 s at a
    million messages in bench/search.py): the migration raises the column's target."""
    target = await db.fetchval(
        "SELECT attstattarget FROM pg_attribute"
        " WHERE attrelid = 'message'::regclass AND attname = 'search'"
    )
    assert target == 1000
