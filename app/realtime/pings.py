"""One timer for every Engine.IO session's pings and ping timeouts on a worker.

python-engineio starts a task per session that sleeps a ping interval and sends a PING
(`AsyncSocket._send_ping`), plus a service task that walks every session to find those
whose client stopped answering, waiting on an event with a timeout between two sessions
(at 20,000 sessions: a thousand timed waits a second). Here `schedule_ping` lands in a
queue instead: every session waits the same interval, so the queue stays in due order,
and one task sends the PINGs that are due (in batches, every `TICK` at most) and, a ping
timeout later, closes the sessions that have not answered with a PONG.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from engineio import packet

from app import stopping

log = logging.getLogger(__name__)

# Seconds between two passes at most: pings go out up to this late, in batches.
TICK = 0.25
PING = packet.Packet(packet.PING)
PING.encode()  # cached: every session is sent the same bytes


class PingWheel:
    def __init__(self, server: Any) -> None:
        self.server = server
        # (monotonic due time, socket): PINGs to send.
        self.pings: deque[tuple[float, Any]] = deque()
        # (monotonic due time, socket, the wall time its PING went out): PONGs to expect.
        self.deadlines: deque[tuple[float, Any, float]] = deque()
        self.task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()

    def schedule(self, socket: Any) -> None:
        """Ping `socket` a ping interval from now (what `AsyncSocket.schedule_ping` asks)."""
        loop = asyncio.get_running_loop()
        self.pings.append((loop.time() + self.server.ping_interval, socket))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run(), name="engineio-pings")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pings or self.deadlines:
            now = loop.time()
            pings, deadlines = self.pings, self.deadlines
            if pings and pings[0][0] <= now:
                # One clock reading and one deadline for the whole batch.
                sent, due = time.time(), now + self.server.ping_timeout + TICK
                while pings and pings[0][0] <= now:
                    self._ping(pings.popleft()[1], sent, due)
            while deadlines and deadlines[0][0] <= now:
                _, socket, sent = deadlines.popleft()
                self._check(socket, sent)
            heads = [q[0][0] for q in (pings, deadlines) if q]
            if heads:
                await asyncio.sleep(max(min(heads) - now, TICK))

    def _ping(self, socket: Any, sent: float, due: float) -> None:
        """PING `socket` (sent: the wall time of this batch), and expect its PONG by `due`
        (the ping timeout, plus a grace for the batching)."""
        if socket.closing or socket.closed:
            self._forget(socket)
            return
        socket.last_ping = sent
        write = getattr(socket, "write", None)
        try:
            if write is not None:
                write(PING)
            else:
                socket.queue.put_nowait(PING)
        except Exception as exc:  # a transport gone under us: its close follows
            log.debug("ping to %s failed: %r", socket.sid, exc)
        self.deadlines.append((due, socket, sent))

    def _check(self, socket: Any, sent: float) -> None:
        if socket.closing or socket.closed:
            self._forget(socket)
        elif socket.last_ping == sent:  # no PONG since this PING
            task = asyncio.ensure_future(self._expire(socket))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _expire(self, socket: Any) -> None:
        """Close a session whose client stopped answering, and drop it from the server's
        table (upstream's service task did both)."""
        await socket.check_ping_timeout()
        self._forget(socket)

    def _forget(self, socket: Any) -> None:
        if socket.closed and self.server.sockets.get(socket.sid) is socket:
            del self.server.sockets[socket.sid]

    def cancel(self) -> None:
        """Stop pinging (the server is stopping; its sessions are being closed)."""
        self.pings.clear()
        self.deadlines.clear()
        for task in (self.task, *self._closing):
            if task is not None and not task.done():
                task.cancel()
        self.task = None

    async def stop(self) -> None:
        tasks = [t for t in (self.task, *self._closing) if t is not None]
        self.cancel()
        await stopping.cancel_all(tasks)
