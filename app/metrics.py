"""Prometheus metrics, summed over every worker (prometheus-client's multiprocess mode).

`helpline serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before any worker
starts (app/cli.py: it must be set before prometheus-client is imported); each worker
writes its values to files there, and whichever worker answers GET /metrics reads them.
Without that variable (an app built in a test process) they live in this process only.

What is measured is named here once; the code that counts calls these objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

SOCKETS = Gauge(
    "helpline_sockets_connected",
    "Authenticated Socket.IO connections, by role.",
    ["role"],
    multiprocess_mode="livesum",
)
for _role in ("admin", "customer"):
    SOCKETS.labels(_role)  # present at 0 from the start, not from the first connection

EVENTS = Counter(
    "helpline_socket_events",
    "Socket.IO client events handled, by event and outcome (ok or the error code).",
    ["event", "outcome"],
)
MESSAGES = Counter(
    "helpline_messages",
    "Messages posted (REST and socket), by outcome: created, duplicate (a retried "
    "clientMessageId), failed (a backing service), or the error code of a refusal.",
    ["outcome"],
)
COMMIT_TO_EMIT = Histogram(
    "helpline_message_commit_to_emit_seconds",
    "From a message's commit to its new_message emit having been handed to every worker.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MESSAGE_BATCH = Histogram(
    "helpline_message_batch_size",
    "Messages stored by one statement (group commit, app/domain/message_writer.py).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
RATE_LIMITED = Counter(
    "helpline_rate_limited",
    "Requests and events refused by a rate limit, by bucket.",
    ["bucket"],
)
BACKEND_ERRORS = Counter(
    "helpline_backend_errors",
    "Failed calls to a backing service (redis, database).",
    ["service"],
)
RELAYED = Counter(
    "helpline_polling_relayed",
    "Long-polling requests relayed between workers, by direction and outcome: sent (ok, "
    "timeout, refused, no_owner; late_reply: an owner's answer after its request timed "
    "out, counted besides that timeout) and answered (ok, failed).",
    ["direction", "outcome"],
)
RELAY_OUTCOMES = (
    ("sent", "ok"),
    ("sent", "timeout"),
    ("sent", "refused"),
    ("sent", "no_owner"),
    ("sent", "late_reply"),
    ("answered", "ok"),
    ("answered", "failed"),
)
for _direction, _outcome in RELAY_OUTCOMES:
    RELAYED.labels(_direction, _outcome)  # every outcome present at 0 from the start
DB_POOL = Gauge(
    "helpline_db_pool_connections",
    "PostgreSQL pool connections, by state (in_use, idle, max).",
    ["state"],
    multiprocess_mode="livesum",
)
GC_PAUSE = Histogram(
    "helpline_gc_pause_seconds",
    "Garbage-collector pauses (the event loop stopped), generations 1 and 2 (app/heap.py).",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
GC_FROZEN = Gauge(
    "helpline_gc_frozen_objects",
    "Objects each worker froze once set up, out of every collection's walk (app/heap.py).",
    multiprocess_mode="livesum",
)

POOL_SAMPLE_SECONDS = 2.0


def scrape() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (or this process's)."""
    if os.environ.get(ENV_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def relay_counts() -> dict[tuple[str, str], int]:
    """This process's relay counts by (direction, outcome): the one record of them, which
    /metrics sums over workers and /health/ready shows for the worker that answers."""
    counts = dict.fromkeys(RELAY_OUTCOMES, 0)
    for family in RELAYED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels["direction"], sample.labels["outcome"])
                counts[key] = int(sample.value)
    return counts


def worker_stopped() -> None:
    """A stopping worker's live gauges (sockets, pool) leave the sum."""
    if os.environ.get(ENV_DIR):
        multiprocess.mark_process_dead(os.getpid())


def sample_pool(pool: Any) -> None:
    if pool is None:
        return
    size, idle = pool.get_size(), pool.get_idle_size()
    DB_POOL.labels("in_use").set(size - idle)
    DB_POOL.labels("idle").set(idle)
    DB_POOL.labels("max").set(pool.get_max_size())


async def sample_pool_forever(get_pool: Any) -> None:
    """Per worker: the pool gauges are written every POOL_SAMPLE_SECONDS, so a scrape
    answered by any worker sees every worker's pool."""
    while True:
        with contextlib.suppress(Exception):
            sample_pool(get_pool())
        await asyncio.sleep(POOL_SAMPLE_SECONDS)
