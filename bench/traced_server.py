"""One worker of the real app with tracemalloc on, for the per-connection memory account.

`python -m bench.traced_server` serves like `helpline serve` with WEB_CONCURRENCY=1 and,
on SIGUSR1, writes what the process holds to `$TRACE_DIR/<n>.pickle`: a tracemalloc
snapshot, a count and `sys.getsizeof` total of every live object by type, and the live
asyncio tasks by coroutine. `bench.memory` diffs two of them. Not for production: tracing
costs memory and time.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

FRAMES = 12


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def census() -> dict[str, Any]:
    """Live objects by type (count and shallow bytes) and tasks by coroutine name."""
    gc.collect()
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = _type_name(obj)
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    tasks: Counter[str] = Counter()
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        tasks[getattr(coro, "__qualname__", repr(coro))] += 1
    return {"counts": dict(counts), "sizes": dict(sizes), "tasks": dict(tasks)}


def _dump(directory: Path) -> None:
    index = len(list(directory.glob("*.pickle")))
    data = census()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    data["snapshot"] = snapshot
    data["traced"] = tracemalloc.get_traced_memory()
    (directory / f"{index}.pickle.tmp").write_bytes(pickle.dumps(data))
    (directory / f"{index}.pickle.tmp").rename(directory / f"{index}.pickle")


def main() -> None:
    from sanic import Sanic

    from app.config import Settings
    from app.main import create_app

    directory = Path(os.environ["TRACE_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    app = create_app(settings)

    @app.after_server_start
    async def on_signal(app: Sanic) -> None:
        # Started once the app is up: tracing every import would take minutes.
        tracemalloc.start(FRAMES)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, _dump, directory)

    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=1,
        single_process=True,
        access_log=False,
        motd=False,
    )
    Sanic.serve_single(primary=app)


if __name__ == "__main__":
    main()
