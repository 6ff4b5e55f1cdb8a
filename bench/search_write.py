"""`python -m bench.search_write`: what the search column and indexes cost a message's
INSERT, on PostgreSQL, counted rather than timed.

Builds one template database per configuration (the migrated schema, `--base`
messages already stored, the search objects of that configuration only), then, in
alternated rounds, copies a template, sends `--inserts` messages with the hot path's
own statements (`app.domain.message_writer.INSERT_ONE`, one row per statement, or
`batch_statement(k)` with `--batch` rows, as the group commit sends them) over `--connections`
connections, merges what the GIN indexes left in their pending lists (the same
backend does it, so that deferred work is counted too), and reads:

- the backends' CPU from /proc/<pid>/stat (utime + stime, the machine's load does not
  inflate it much: it is time spent running, not waiting),
- pg_stat_statements' execution time and WAL bytes for the run's database.

Figures are per 1,000 messages, a median over rounds. The configurations are
cumulative, so each step's difference is that object's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from app.domain.message_writer import INSERT_ONE, batch_statement
from bench import stack
from piccolo_migrations import helpline_2026_11_27t10_30_00_000000 as who_migration

RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = f"helpline_bench_sw{os.getpid()}"
TICK = os.sysconf("SC_CLK_TCK")

DROP_ALL = [
    "DROP INDEX IF EXISTS chat_session_who_trgm_idx",
    "DROP INDEX IF EXISTS message_created_idx",
    "DROP INDEX IF EXISTS message_content_trgm_idx",
    "DROP INDEX IF EXISTS message_search_idx",
    "DROP INDEX IF EXISTS message_search_ready_idx",
    "ALTER TABLE message DROP COLUMN IF EXISTS search",
    "DROP TABLE IF EXISTS session_who",
    "DROP FUNCTION IF EXISTS session_who_sync CASCADE",
]
COLUMN = (
    "ALTER TABLE message ADD COLUMN search tsvector"
    " GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED"
)
WORDS_GIN = "CREATE INDEX message_search_idx ON message USING gin (search)"
TRGM_GIN = "CREATE INDEX message_content_trgm_idx ON message USING gin (content gin_trgm_ops)"
CREATED = "CREATE INDEX message_created_idx ON message (created_at DESC, id DESC)"
WHO_GIN = (
    "CREATE INDEX chat_session_who_trgm_idx ON chat_session USING gin"
    " ((user_id || ' ' || coalesce(user_name, '') || ' ' || coalesce(user_email, ''))"
    " gin_trgm_ops)"
)

# The customer's search text in its own table (migration 10:30:00), as it creates it.
WHO_TABLE = [s for s in who_migration.FORWARDS if not s.startswith("DROP INDEX")]

# Cumulative: each adds one object to the one before. `full` is main's schema.
CONFIGS: dict[str, list[str]] = {
    "none": [],
    "column": [COLUMN],
    "words_gin": [COLUMN, WORDS_GIN],
    "trgm_gin": [COLUMN, WORDS_GIN, TRGM_GIN],
    "created": [COLUMN, WORDS_GIN, TRGM_GIN, CREATED],
    "full": [COLUMN, WORDS_GIN, TRGM_GIN, CREATED, WHO_GIN],
}
# Candidates: main's objects stored differently.
GIN_OPTIONS = {
    "fastupdate_off": "fastupdate = off",
    "pending_16mb": "gin_pending_list_limit = 16384",
    "pending_64mb": "gin_pending_list_limit = 65536",
}
for _name, _options in GIN_OPTIONS.items():
    CONFIGS[f"full_{_name}"] = [
        COLUMN,
        *(f"{s} WITH ({_options})" for s in (WORDS_GIN, TRGM_GIN)),
        CREATED,
        f"{WHO_GIN} WITH ({_options})",
    ]
CONFIGS["who_table"] = [COLUMN, WORDS_GIN, TRGM_GIN, CREATED, *WHO_TABLE]
CONFIGS["who_table_pending_16mb"] = [
    COLUMN,
    *(f"{s} WITH (gin_pending_list_limit = 16384)" for s in (WORDS_GIN, TRGM_GIN)),
    CREATED,
    *WHO_TABLE,
]
# Ascending: a new message lands on the rightmost leaf, which a B-tree insert reaches
# without descending; a backward scan reads it newest first all the same.
CONFIGS["full_created_asc"] = [
    COLUMN,
    WORDS_GIN,
    TRGM_GIN,
    CREATED.replace("created_at DESC, id DESC", "created_at, id"),
    WHO_GIN,
]


def numbered(sql: str) -> str:
    parts = sql.split("{}")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


ONE = numbered(INSERT_ONE)


def content_of(kind: str, n: int) -> str:
    """`chat`: what bench.chat sends (an id and three clock readings); `prose`: a
    customer's sentence with an order number now and then."""
    if kind == "chat":
        now = time.monotonic()
        return f"p1.0.{n}.{uuid.uuid4().hex[:6]} {now:.6f} {now + 0.001:.6f} {time.time():.6f}"
    words = ("hello", "my", "order", "has", "not", "arrived", "please", "help", "refund")
    tail = f" ref ORD-{n * 7919 % 9999991:07d}" if n % 5 == 0 else ""
    return " ".join(words[(n * k) % len(words)] for k in (1, 3, 5, 7, 2, 4)) + tail


def dsn(name: str) -> str:
    return f"{stack.PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def build_master(args: argparse.Namespace) -> str:
    name = f"{PREFIX}_master"
    admin = await asyncpg.connect(stack.PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=args.code,
        env={**os.environ, "DATABASE_URL": dsn(name)},
        check=True,
        capture_output=True,
    )
    conn = await asyncpg.connect(dsn(name))
    try:
        for statement in DROP_ALL:
            await conn.execute(statement)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute(
            """
            INSERT INTO chat_session (id, user_id, user_name, user_email, status, last_seq,
                                      created_at, updated_at, last_activity_at)
            SELECT gen_random_uuid(), 'visitor-' || g, 'Customer ' || g,
                   'c' || g || '@mail' || (g % 97) || '.example.com', 'active', 0,
                   now(), now(), now()
            FROM generate_series(1, $1) AS g
            """,
            args.sessions,
        )
        sessions = [r["id"] for r in await conn.fetch("SELECT id FROM chat_session")]
        rows = [
            (
                uuid.uuid4(),
                sessions[n % len(sessions)],
                -1 - n // len(sessions),
                content_of(args.content, n),
            )
            for n in range(args.base)
        ]
        await conn.executemany(
            "INSERT INTO message (id, session_id, seq, sender_type, sender_id, content,"
            " is_read, created_at) VALUES ($1, $2, $3, 'user', 'x', $4, true,"
            " now() - interval '1 day')",
            rows,
        )
    finally:
        await conn.close()
    return name


async def build_template(master: str, config: str) -> str:
    name = f"{PREFIX}_t_{config}"
    admin = await asyncpg.connect(stack.PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{master}"')
    await admin.close()
    conn = await asyncpg.connect(dsn(name))
    try:
        for statement in CONFIGS[config]:
            await conn.execute(statement)
        for table in ("message", "chat_session"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()
    return name


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


COUNTERS = {
    "exec_ms": "total_exec_time",
    "wal_bytes": "wal_bytes",
    # Full-page images (a page's first change after a checkpoint, up to 8 KB each) are
    # most of the WAL, and how many depends on when checkpoints fall.
    "wal_fpi": "wal_fpi",
    "wal_records": "wal_records",
    # Pages touched: index descents and pending-list pages, counted, so the machine's
    # load cannot inflate it as it does CPU time.
    "buffers": "shared_blks_hit + shared_blks_read",
    "dirtied": "shared_blks_dirtied",
}


async def statement_totals(conn: asyncpg.Connection, database: str) -> dict[str, float]:
    """pg_stat_statements' counters summed over the database's statements so far."""
    sums = ", ".join(f"coalesce(sum({e}), 0)::float8 AS {k}" for k, e in COUNTERS.items())
    row = await conn.fetchrow(
        f"SELECT {sums} FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = $1",
        database,
    )
    return dict(row)


async def send(conn: asyncpg.Connection, sessions: Sequence[uuid.UUID], n: int, args: Any) -> None:
    """`n` messages, round-robin over this connection's own sessions."""
    i = 0
    while i < n:
        now = dt.datetime.now(dt.UTC)
        if args.batch == 1:
            sid = sessions[i % len(sessions)]
            mid = uuid.uuid4()
            await conn.fetch(
                ONE,
                now,
                now,
                sid,
                mid,
                sid,
                "user",
                None,
                content_of(args.content, i),
                mid.hex,
                now,
                None,
            )
            i += 1
            continue
        k = min(args.batch, n - i)
        sids = [sessions[(i + j) % len(sessions)] for j in range(k)]
        mids = [uuid.uuid4() for _ in range(k)]
        await conn.fetch(
            numbered(batch_statement(k)),
            mids,
            sids,
            ["user"] * k,
            [None] * k,
            [content_of(args.content, i + j) for j in range(k)],
            [m.hex for m in mids],
            [None] * k,
            k,
            now,
            now,
            now,
        )
        i += k


async def one_round(template: str, args: argparse.Namespace) -> dict[str, float]:
    name = f"{PREFIX}_run"
    admin = await asyncpg.connect(stack.PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    monitor = await asyncpg.connect(dsn(name))
    conns = [await asyncpg.connect(dsn(name)) for _ in range(args.connections)]
    try:
        sessions = [r["id"] for r in await conns[0].fetch("SELECT id FROM chat_session")]
        parts = [sessions[c :: args.connections] for c in range(args.connections)]
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]
        gins = [
            r["indexname"]
            for r in await conns[0].fetch(
                "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gin%'"
            )
        ]
        # Warm: plans cached, catalog read, the first pages in shared buffers.
        await asyncio.gather(*(send(c, p, 20, args) for c, p in zip(conns, parts, strict=True)))
        before = await statement_totals(monitor, name)
        ticks0 = sum(cpu_ticks(p) for p in pids)
        started = time.perf_counter()
        per = args.inserts // args.connections
        await asyncio.gather(*(send(c, p, per, args) for c, p in zip(conns, parts, strict=True)))
        for index in gins:  # the deferred half of a GIN insert, in a counted backend
            await conns[0].execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")
        elapsed = time.perf_counter() - started
        ticks = sum(cpu_ticks(p) for p in pids) - ticks0
        after = await statement_totals(monitor, name)
        total = per * args.connections
    finally:
        for c in [*conns, monitor]:
            await c.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "cpu_s_per_1000": round(ticks / TICK / total * 1000, 4),
        **{f"{k}_per_1000": round((after[k] - before[k]) / total * 1000, 1) for k in COUNTERS},
        "elapsed_s": round(elapsed, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configs = args.configs or list(CONFIGS)
    master = await build_master(args)
    templates = {c: await build_template(master, c) for c in configs}
    rounds: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    try:
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else configs[::-1]
            for config in order:
                figures = await one_round(templates[config], args)
                rounds[config].append(figures)
                load = os.getloadavg()[0]
                print(f"round {r} {config}: {figures} load {load:.1f}", file=sys.stderr)
    finally:
        admin = await asyncpg.connect(stack.PG_ADMIN_DSN)
        for name in [*templates.values(), master]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    medians = {
        c: {k: round(statistics.median(f[k] for f in rs), 4) for k in rs[0]}
        for c, rs in rounds.items()
    }
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "code")},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "medians": medians,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_write", description=__doc__)
    parser.add_argument("--inserts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1, help="messages per statement")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--base", type=int, default=100_000, help="messages stored first")
    parser.add_argument("--content", choices=("chat", "prose"), default="chat")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", nargs="*", choices=list(CONFIGS))
    parser.add_argument("--code", type=Path, default=stack.ROOT, help="checkout to migrate")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    record = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"search-write-{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d-%H%M')}"
    (args.out / f"{stem}.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    columns = ["cpu_s_per_1000", *(f"{k}_per_1000" for k in COUNTERS)]
    print(f"| configuration | {' | '.join(columns)} |")
    print(f"|---|{'---|' * len(columns)}")
    for config, m in record["medians"].items():
        print(f"| {config} | {' | '.join(str(m[c]) for c in columns)} |")
    print(f"bench.search_write: wrote {args.out / stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
