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
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sanic import Sanic

log = logging.getLogger(__name__)

# Sanic's own wait for open connections between the two stop phases (default 15 s).
GRACEFUL = 2.0
# The watchdog: seconds from the start of the stop to a forced exit.
HARD_LIMIT = 22.0
# How often a task that let a cancellation pass is cancelled again.
RETRY = 0.05


class App(Sanic[Any, Any]):
    """Sanic, with a stop asked for before the worker serves held until it does.

    Sanic installs its SIGTERM handler (`stop`) before the `after_server_start`
    listeners, and runs them with `run_until_complete`. A stop there either ended that
    run early ("Event loop stopped before Future completed": exit 1, no stop listeners)
    or, when it fell in the loop pass where the listeners finished, was absorbed by that
    run's own stop and lost: the worker served on until a SIGKILL (CI: returncode -9).
    Between binding the port and installing its handler, a SIGTERM ended the process by
    the signal, after /health had answered. And uvloop drops a signal that comes between
    two of the start's runs (it listens only while it runs). So from the first start
    listener on, a stop asked for is only noted, and carried out as the worker serves.
    """

    def stop(self, terminate: bool = True, unregister: bool = False) -> None:
        if getattr(self.ctx, "served", False):
            super().stop(terminate, unregister)
        else:
            self.ctx.stop_asked = (terminate, unregister)

    def hold_stops(self) -> None:
        """Note SIGTERM and SIGINT from here on (each start listener calls it: Sanic
        replaces the handlers on the way). A handler of CPython's own, not the loop's:
        it runs whether or not the loop is running."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Only the main thread may: elsewhere the signals stay Sanic's.
            with contextlib.suppress(ValueError):
                signal.signal(sig, self._noted)

    def _noted(self, signum: int, frame: object) -> None:
        # Only noted, also once serving: then the loop's handler (Sanic's) stops it.
        if not getattr(self.ctx, "served", False):
            self.ctx.stop_asked = (False, False)

    def set_serving(self, serving: bool) -> None:
        # Sanic sets it just before `run_forever`, and clears it as the stop begins.
        super().set_serving(serving)
        if serving and not getattr(self.ctx, "served", False):
            self.ctx.served = True
            asked = getattr(self.ctx, "stop_asked", None)
            if asked is not None:
                asyncio.get_event_loop().call_soon(self.stop, *asked)


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


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel until each has ended. One `cancel()` can be lost on Python 3.11:
    `asyncio.wait_for` returns its inner result and drops a cancellation that arrives as
    that result does (CPython gh-86296, fixed in 3.12), and redis-py's connect and our
    own waits use it. Such a task ran on, and its stop step waited out its bound."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RETRY)
    # Retrieved, as gather(return_exceptions=True) did: asyncio logs one left unread.
    for task in tasks:
        if not task.cancelled():
            task.exception()


def pending_names(tasks: list[asyncio.Task[object]]) -> Callable[[], str]:
    return lambda: ", ".join(t.get_name() for t in tasks if not t.done()) or "nothing"
