"""`python -m bench.search`: search at scale, on PostgreSQL, with the API's own SQL.

Generates 1,000,000 messages in 50,000 sessions inside PostgreSQL (generate_series,
with the search indexes dropped during the load and rebuilt after, as a bulk import
would), vacuums and analyses, then times each kind of query `app.domain.search` builds,
over a pool connection, many times with varied terms:

- a selective word (each of 40 words in about 100 messages),
- a common word ("order", in a third of all messages), newest 50,
- a fragment of 6 characters from an order number or an email inside a word,
- a fragment of 3 characters (many hits: the trigram index's worst case),
- the same common word filtered by status and by label,
- a session by the first 8 characters of its customer's email (/api/search/sessions).

Every query's plan is printed once (EXPLAIN), so the figures name the index they used.
The database is kept (`--keep`, reused when it already holds the rows) or dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from app.domain import search
from bench import stack, stats

RESULTS = Path(__file__).resolve().parent / "results"
DB_NAME = "helpline_bench_search"
SELECTIVE = [f"zq{chr(97 + i // 26)}{chr(97 + i % 26)}lix" for i in range(40)]
FILLER = [
    *("hello", "thanks", "please", "help", "my", "account", "payment", "delivery", "issue"),
    *("question", "update", "shipping", "address", "invoice", "refund", "card", "package"),
    *("tracking", "password", "login", "reset"),
]
SEARCH_INDEXES = (
    "message_search_idx",
    "message_content_trgm_idx",
    "message_created_idx",
    "session_who_trgm_idx",
)
TARGETS_MS = {"selective_word": 20.0, "common_word_newest_50": 150.0, "fragment_6": 50.0}


def numbered(sql: str) -> str:
    parts = sql.split("{}")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


async def generate(conn: asyncpg.Connection, messages: int, sessions: int) -> float:
    """Rows in bulk; the search indexes are rebuilt afterwards. Returns seconds taken."""
    started = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '512MB'")
    defs = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1::text[])",
        list(SEARCH_INDEXES),
    )
    for row in defs:
        await conn.execute(f"DROP INDEX {row['indexname']}")
    await conn.execute(
        """
        INSERT INTO chat_session (id, user_id, user_name, user_email, status, last_seq,
                                  created_at, updated_at, last_activity_at)
        SELECT gen_random_uuid(), 'visitor-' || g, 'Customer ' || g,
               'c' || g || '@mail' || (g % 97) || '.example.com',
               CASE WHEN g % 5 = 0 THEN 'closed' ELSE 'active' END, $2 / $1,
               now() - interval '400 days', now(), now() - g * interval '1 second'
        FROM generate_series(1, $1) AS g
        """,
        sessions,
        messages,
    )
    await conn.execute(
        "CREATE TEMP TABLE s AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n"
        " FROM chat_session"
    )
    await conn.execute("CREATE INDEX ON s (n)")
    await conn.execute(
        """
        INSERT INTO message (id, session_id, seq, sender_type, sender_id, content, is_read,
                             created_at)
        SELECT gen_random_uuid(), s.id, g / $2 + 1,
               CASE WHEN g % 2 = 0 THEN 'user' ELSE 'admin' END, 'x',
               concat_ws(' ',
                 ($3::text[])[1 + (g * 7) % 21], ($3::text[])[1 + (g * 13) % 21],
                 CASE WHEN g % 3 = 0 THEN 'order' END,
                 ($3::text[])[1 + (g * 31) % 21],
                 CASE WHEN g % 10000 < 40 THEN ($4::text[])[1 + g % 10000] END,
                 CASE WHEN g % 5 = 0
                   THEN 'ref ORD-' || lpad((g::bigint * 7919 % 9999991)::text, 7, '0') END,
                 CASE WHEN g % 11 = 0
                   THEN 'mail me at u' || g || '@shop' || (g % 53) || '.example.org' END,
                 ($3::text[])[1 + (g * 17) % 21]),
               true, now() - ($1 - g) * interval '20 seconds'
        FROM generate_series(0, $1 - 1) AS g JOIN s ON s.n = g % $2
        """,
        messages,
        sessions,
        FILLER,
        SELECTIVE,
    )
    for row in defs:
        await conn.execute(row["indexdef"])
    for table in ("message", "chat_session", "session_label", "session_who"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


async def label_some(conn: asyncpg.Connection) -> None:
    """'vip' on one session in ten."""
    await conn.execute(
        "INSERT INTO session_label (id, session_id, label)"
        " SELECT gen_random_uuid(), id, 'vip' FROM s WHERE n % 10 = 0"
    )
    await conn.execute("VACUUM ANALYZE session_label")


def terms(rng: random.Random, kind: str, messages: int, sessions: int) -> str:
    if kind == "selective_word":
        return rng.choice(SELECTIVE)
    if kind.startswith("common_word"):
        return "order"
    if kind == "session_email":  # the start of one customer's email
        n = rng.randrange(1, sessions)
        return f"c{n}@mail"[:8]
    g = rng.randrange(0, messages, 55)  # both an order number and an email
    if kind == "fragment_3":
        return f"{g * 7919 % 9999991:07d}"[2:5]
    if rng.random() < 0.5:
        return f"{g * 7919 % 9999991:07d}"[1:7]
    return f"u{g}@shop"[-6:] if len(f"u{g}@shop") >= 6 else f"u{g}@shop"


KINDS: dict[str, tuple[str, search.Filters, int]] = {
    "selective_word": ("words", search.Filters(), 20),
    "common_word_newest_50": ("words", search.Filters(), 50),
    "fragment_6": ("fragment", search.Filters(), 20),
    "fragment_3": ("fragment", search.Filters(), 20),
    "common_word_closed": ("words", search.Filters(status="closed"), 50),
    "common_word_label": ("words", search.Filters(label="vip"), 50),
    # /api/search/sessions: the customer's id, name and email (session_who's trigram index).
    "session_email": ("sessions", search.Filters(), 20),
}


def query(kind: str, text: str) -> tuple[str, list[object]]:
    mode, filters, limit = KINDS[kind]
    if mode == "sessions":
        return search.session_query(text, filters, limit, None)
    return search.message_query(text, mode, filters, limit, None)


async def measure(
    conn: asyncpg.Connection, runs: int, messages: int, sessions: int
) -> dict[str, Any]:
    rng = random.Random(14)
    out: dict[str, Any] = {}
    for kind in KINDS:
        sql, args = query(kind, terms(rng, kind, messages, sessions))
        plan = await conn.fetch(f"EXPLAIN {numbered(sql)}", *args)
        used = sorted(
            {w for r in plan for w in r[0].replace("(", " ").split() if w.endswith("_idx")}
        )
        durations: list[float] = []
        hits: list[int] = []
        for i in range(runs + 10):
            sql, args = query(kind, terms(rng, kind, messages, sessions))
            started = time.perf_counter()
            rows = await conn.fetch(numbered(sql), *args)
            if i >= 10:  # the first ten warm the cache
                durations.append(time.perf_counter() - started)
                hits.append(len(rows))
        out[kind] = {
            **stats.summary(durations),
            "indexes": used,
            "mean_rows": round(sum(hits) / len(hits), 1),
            "target_p95_ms": TARGETS_MS.get(kind),
        }
        print(f"bench.search: {kind}: {out[kind]}", file=sys.stderr, flush=True)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    admin = await asyncpg.connect(stack.PG_ADMIN_DSN)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME)
    url = f"{stack.PG_ADMIN_DSN.rsplit('/', 1)[0]}/{DB_NAME}"
    reuse = False
    if exists and args.keep:
        conn = await asyncpg.connect(url)
        reuse = await conn.fetchval("SELECT count(*) FROM message") == args.messages
        await conn.close()
    if not reuse:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    await admin.close()
    generated = None
    try:
        if not reuse:
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "app.cli", "migrate"],
                cwd=stack.ROOT,
                env={**os.environ, "DATABASE_URL": url},
                check=True,
                capture_output=True,
            )
        conn = await asyncpg.connect(url)
        try:
            if not reuse:
                generated = round(await generate(conn, args.messages, args.sessions), 1)
                await label_some(conn)
            figures = await measure(conn, args.runs, args.messages, args.sessions)
            size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('message'))")
        finally:
            await conn.close()
    finally:
        if not args.keep:
            admin = await asyncpg.connect(stack.PG_ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            await admin.close()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "messages": args.messages,
        "sessions": args.sessions,
        "runs_per_kind": args.runs,
        "generated_in_s": generated,
        "message_table_size": size,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "queries": figures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=200, help="timed queries per kind")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    record = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"search-{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d-%H%M')}"
    (args.out / f"{stem}.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    print("| query | p50 ms | p95 ms | max ms | target p95 | rows | indexes |")
    print("|---|---|---|---|---|---|---|")
    for kind, q in record["queries"].items():
        target = f"≤ {q['target_p95_ms']:g}" if q["target_p95_ms"] else ""
        print(
            f"| {kind} | {q['p50']} | {q['p95']} | {q['max']} | {target} | {q['mean_rows']}"
            f" | {', '.join(q['indexes'])} |"
        )
    print(f"bench.search: wrote {args.out / stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
