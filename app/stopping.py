"""A worker's stop that always ends, well inside a platform's 30 s kill window.

Sanic runs the stop listeners with `run_until_complete` and no bound, so one await that
never returns (a pool waiting for a connection, a close waiting on a peer) kept a
SIGTERMed worker alive until SIGKILL. Here every step of the stop gets its own bound;
a step that overruns is logged with what it was waiting on, cancelled, and the stop goes
on. A watchdog thread (not the event loop, which may be the thing that is stuck) ends the
process if the whole stop still overruns, saying in which step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# Sanic's own wait for open connections between the two stop phases (default 15 s).
GRACEFUL = 2.0
# The watchdog: seconds from the start of the stop to a forced exit.
HARD_LIMIT = 22.0


class Stop:
    """The steps of one worker's stop, each bounded."""

    def __init__(self, hard_limit: float = HARD_LIMIT) -> None:
        self.started = time.monotonic()
        self.step_name = "starting"
        self.overruns: list[str] = []
        self._watchdog = threading.Timer(hard_limit, self._expire, args=(hard_limit,))
        self._watchdog.daemon = True
        self._watchdog.start()

    async def step(
        self,
        name: str,
        work: Awaitable[object],
        bound: float,
        waiting_on: Callable[[], str] = lambda: "",
    ) -> bool:
        """Run `work` for at most `bound` seconds; False (and a log line) if it overran
        or failed. Never raises: the next step runs either way."""
        self.step_name = name
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=bound)
        if task in done:
            if task.cancelled():
                return False
            exc = task.exception()
            if exc is not None:
                log.warning("stop: %s failed: %r", name, exc)
                return False
            return True
        what = waiting_on()
        log.warning(
            "stop: %s unfinished after %.1fs, waited on %s; going on",
            name,
            bound,
            what or "(unknown)",
        )
        self.overruns.append(name)
        task.cancel()
        # A task that ignores its cancellation is left behind, not waited for.
        await asyncio.wait({task}, timeout=1.0)
        return False

    def finished(self) -> None:
        self._watchdog.cancel()
        log.info(
            "stopped in %.1fs%s",
            time.monotonic() - self.started,
            f" (overran: {', '.join(self.overruns)})" if self.overruns else "",
        )

    def _expire(self, limit: float) -> None:
        log.error(
            "stop: still running %.0fs after it began, in step %r: exiting now",
            limit,
            self.step_name,
        )
        for handler in logging.getLogger().handlers + logging.getLogger("app").handlers:
            handler.flush()
        os._exit(1)


async def cancel_all(tasks: list[asyncio.Task[object]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def pending_names(tasks: list[asyncio.Task[object]]) -> Callable[[], str]:
    return lambda: ", ".join(t.get_name() for t in tasks if not t.done()) or "nothing"
