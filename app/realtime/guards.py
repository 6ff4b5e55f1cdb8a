"""What one socket connection may make a worker do, hold or keep open.

An anonymous widget token is enough to open sockets, so every resource a connection can
spend is bounded here, per worker:

- events: a token bucket per connection over every Socket.IO packet it sends (events and
  namespace connects alike), and a cap on its events under way at once; an event past
  either is answered `ok:false`, `rate_limited`;
- bytes queued for a client that does not read: past the cap the connection is closed
  (its queue dropped, its TCP connection aborted) and the reason logged;
- time to authenticate: an Engine.IO session that has not completed a Socket.IO connect
  within the timeout is closed;
- connections per client IP (see app/client_ip.py), and the Origin of browsers
  (CORS_ORIGINS), checked at the Engine.IO handshake;
- packet kinds: binary packets (Helpline has no binary events) and client events named as
  Socket.IO's lifecycle events are refused, unknown events answered `unknown_event`, and
  a malformed frame costs one log line at most per interval, never a traceback.

The library hooks that feed it live in `GuardedServer` (python-socketio's private
`_handle_*` names, listed in `HOOKED`), so each is one line to register with a start-up
check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import engineio
import msgspec
import socketio
from socketio import packet as sio_packet

from app.client_ip import environ_client_ip
from app.config import Settings
from app.errors import ApiError, BinaryUnsupported, RateLimited, ReservedEvent, UnknownEvent
from app.models import Refused

log = logging.getLogger(__name__)

# Socket.IO's own lifecycle names: a client emitting one as an event must not reach the
# lifecycle handlers (a fake `connect` re-authenticated the socket).
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
# At most one line per this many seconds for each kind of refused or malformed packet.
LOG_INTERVAL = 10.0
# A connection refused this many bursts' worth of events (net of those admitted since)
# is not a client that slows down when told to: it is closed.
FLOOD_STRIKES = 2
# A connection with bytes waiting that has taken none of them for this long has stopped
# reading (its websocket writer would wait on the transport forever): it is closed.
STALL_SECONDS = 20.0
# How often unauthenticated and stalled Engine.IO sessions are looked for. The sweep
# visits only the sessions that may be either (see `Guards.expired`, `GuardedEngine.
# backlogged`), never all of them: at 20,000 idle websockets a walk over every session
# each second was half of an idle worker's CPU (docs/idle-memory.md).
SWEEP_INTERVAL = 1.0

# python-socketio private names `GuardedServer` overrides (for the start-up hook check).
HOOKED = (
    "_handle_eio_connect",
    "_handle_eio_disconnect",
    "_handle_eio_message",
    "_handle_connect",
    "_handle_event",
    "_handle_event_internal",
)


class ThrottledLog:
    """One warning per `interval` per kind, with how many were folded into it."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._folded: Counter[str] = Counter()

    def warning(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval) < self.interval:
            self._folded[kind] += 1
            return
        self._last[kind] = now
        folded = self._folded.pop(kind, 0)
        suffix = f" (and {folded} more since the last such line)" if folded else ""
        log.warning(message + suffix, *args)


@dataclass(slots=True)
class Peer:
    """One Engine.IO connection as the guards see it."""

    ip: str
    tokens: float
    refilled: float
    in_flight: int = 0
    # Refusals not yet earned back by admitted events; too many and the connection ends.
    strikes: int = 0


def error_ack(error: ApiError) -> dict[str, Any]:
    return msgspec.structs.asdict(Refused.of(error))


class Guards:
    """The per-worker bookkeeping behind every limit above."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rate = float(settings.socket_events_per_second)
        self.burst = float(max(settings.socket_event_burst, 1))
        self.peers: dict[str, Peer] = {}
        # (monotonic time opened, Engine.IO sid) in the order connections were admitted,
        # so the oldest are at the head: the authentication timeout looks only there.
        self.opened: deque[tuple[float, str]] = deque()
        self.per_ip: Counter[str] = Counter()
        self.noisy = ThrottledLog()
        origins = settings.cors_origin_list
        self.origins: frozenset[str] | None = None if origins == "*" else frozenset(origins)

    def admit_connection(self, eio_sid: str, environ: dict[str, Any]) -> str | None:
        """None to accept a new Engine.IO connection, else why it is refused."""
        origin = environ.get("HTTP_ORIGIN")
        if self.origins is not None and origin and origin not in self.origins:
            self.noisy.warning("origin", "socket refused: origin %s not in CORS_ORIGINS", origin)
            return "Origin not allowed"
        ip = environ_client_ip(environ, self.settings.trusted_proxies)
        if self.per_ip[ip] >= self.settings.connections_per_ip:
            self.noisy.warning(
                "per-ip", "socket refused: %s already holds %d connections", ip, self.per_ip[ip]
            )
            return "Too many connections from this address"
        now = time.monotonic()
        self.peers[eio_sid] = Peer(ip=ip, tokens=self.burst, refilled=now)
        self.opened.append((now, eio_sid))
        self.per_ip[ip] += 1
        return None

    def closed(self, eio_sid: str) -> None:
        peer = self.peers.pop(eio_sid, None)
        if peer is None:
            return
        self.per_ip[peer.ip] -= 1
        if self.per_ip[peer.ip] <= 0:
            del self.per_ip[peer.ip]

    def spend(self, eio_sid: str) -> bool:
        """Take one event from the connection's bucket; False when it is empty."""
        peer = self.peers.get(eio_sid)
        if peer is None:
            return True
        now = time.monotonic()
        peer.tokens = min(self.burst, peer.tokens + (now - peer.refilled) * self.rate)
        peer.refilled = now
        if peer.tokens < 1:
            return False
        peer.tokens -= 1
        return True

    def refuse_event(self, eio_sid: str, event: Any, known: bool) -> dict[str, Any] | None:
        """The ack refusing a client event, or None to handle it."""
        refused = self._refusal(eio_sid, event, known)
        peer = self.peers.get(eio_sid)
        if peer is not None:
            peer.strikes = peer.strikes + 1 if refused else max(0, peer.strikes - 1)
        return refused

    def flooding(self, eio_sid: str) -> bool:
        """Whether a connection keeps sending past every refusal (then it is closed)."""
        peer = self.peers.get(eio_sid)
        return peer is not None and peer.strikes > FLOOD_STRIKES * self.burst

    def _refusal(self, eio_sid: str, event: Any, known: bool) -> dict[str, Any] | None:
        if not isinstance(event, str) or event in RESERVED_EVENTS:
            self.noisy.warning("reserved", "socket event refused: reserved name %r", event)
            return error_ack(ReservedEvent())
        if not self.spend(eio_sid):
            return error_ack(RateLimited(1, "Too many events, slow down"))
        if not known:
            return error_ack(UnknownEvent(f"Unknown event '{event[:64]}'"))
        peer = self.peers.get(eio_sid)
        if peer is not None:
            if peer.in_flight >= self.settings.socket_events_in_flight:
                return error_ack(RateLimited(1, "Too many events under way, wait for their acks"))
            peer.in_flight += 1
        return None

    def finished(self, eio_sid: str) -> None:
        """An admitted event was answered (or its connection went away)."""
        peer = self.peers.get(eio_sid)
        if peer is not None and peer.in_flight > 0:
            peer.in_flight -= 1

    def expired(self, now: float) -> list[str]:
        """Engine.IO sessions still open that were opened longer ago than the
        authentication timeout and not yet returned by an earlier call: each session is
        returned once, so the caller decides then (authenticated by now, or closed)."""
        limit = now - self.settings.socket_auth_timeout
        opened, due = self.opened, []
        while opened and opened[0][0] < limit:
            eio_sid = opened.popleft()[1]
            if eio_sid in self.peers:
                due.append(eio_sid)
        return due


def queued_size(item: Any) -> int:
    """What an Engine.IO packet will take on the wire: the length of the frame its
    websocket writer sends, so that `SendQueue.sent` takes back exactly what `_put` added
    (a residue would never drain, and an idle client would look stalled after its first
    ping). `encode()` caches its text, so the writer does not encode twice; a binary
    packet is measured without encoding, since its cache would fix the b64 choice."""
    if item is None:
        return 0
    if getattr(item, "binary", False):
        return len(item.data)
    return len(item.encode())


class SendQueue(asyncio.Queue[Any]):
    """An Engine.IO socket's outgoing queue that knows how many bytes are waiting for its
    client, and calls `on_full` (once, soon after) when more than `limit` pile up.

    A long-polling client's bytes leave when its GET takes them. A websocket's writer takes
    everything queued at once into a list of its own and sends it one frame at a time, so
    there the bytes leave only when a frame is handed to the transport (`sent`)."""

    def __init__(
        self,
        limit: int,
        on_full: Callable[[SendQueue], None],
        backlog: set[Any] | None = None,
    ) -> None:
        super().__init__()
        self.limit = limit
        # Where a queue with bytes waiting puts itself for the stall check to look at.
        self.backlog = backlog
        self.bytes = 0
        self.overflowed = False
        self.counted_on_send = False
        self.progressed = time.monotonic()
        self._on_full = on_full

    def put_nowait(self, item: Any) -> None:
        if self.overflowed and item is not None:
            # Being closed: hold nothing more for it (None still ends its reader).
            return
        super().put_nowait(item)

    def _put(self, item: Any) -> None:
        self.bytes += queued_size(item)
        super()._put(item)
        if self.bytes and self.backlog is not None:
            self.backlog.add(self)
        if self.bytes > self.limit and not self.overflowed:
            self.overflowed = True
            asyncio.get_running_loop().call_soon(self._on_full, self)

    def _get(self) -> Any:
        item = super()._get()
        if not self.counted_on_send:
            self.bytes -= queued_size(item)
            self.progressed = time.monotonic()
        return item

    def sent(self, size: int) -> None:
        self.bytes = max(0, self.bytes - size)
        self.progressed = time.monotonic()

    def stalled(self, now: float) -> bool:
        """Bytes wait and none has left for STALL_SECONDS."""
        return self.bytes > 0 and now - self.progressed > STALL_SECONDS

    def drop_all(self) -> None:
        """Free everything queued (the client will never read it)."""
        held: Any = self._queue  # type: ignore[attr-defined]
        dropped = len(held)
        held.clear()
        self.bytes = 0
        for _ in range(dropped):
            self.task_done()


def terminate(eio: Any, socket: Any, why: str) -> None:
    """End an Engine.IO session now: drop what it has queued, abort its websocket's TCP
    connection (a client that does not read would never take a CLOSE frame), and let
    Engine.IO and Socket.IO run their disconnect handling."""
    queue = socket.queue
    if isinstance(queue, SendQueue):
        queue.drop_all()
    transport = getattr(socket, "helpline_transport", None)
    if transport is not None:
        transport.abort()
    task = asyncio.ensure_future(socket.close(wait=False, abort=True, reason=why))
    _background.add(task)
    task.add_done_callback(_background.discard)
    # A long-poll GET waiting on the queue ends (an upgraded session has none).
    if queue is not None:
        queue.put_nowait(None)


_background: set[asyncio.Future[Any]] = set()


class GuardedEngine(engineio.AsyncServer):
    """python-engineio's server with byte-counted send queues (long-polling sessions;
    a websocket's bytes are counted by its transport, app/realtime/websocket.py)."""

    queue_limit: int | None = None
    _async: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Send queues and websockets (app/realtime/websocket.py) that had bytes waiting
        # for their client when last written to: the only ones the stall check visits.
        # Each leaves at the next sweep that finds nothing waiting.
        self.backlogged: set[Any] = set()

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        if self.queue_limit is None:
            return super().create_queue(*args, **kwargs)
        return SendQueue(self.queue_limit, self._overflowed, self.backlogged)

    def _overflowed(self, queue: SendQueue) -> None:
        socket = next((s for s in list(self.sockets.values()) if s.queue is queue), None)
        if socket is None:
            queue.drop_all()
            return
        self.close_slow_reader(socket)

    def close_slow_reader(self, socket: Any) -> None:
        log.warning(
            "socket %s closed: over %d bytes queued for a client that does not read",
            socket.sid,
            self.queue_limit,
        )
        terminate(self, socket, "send queue full")


class GuardedServer(socketio.AsyncServer):
    """python-socketio's server with the guards in front of its packet handlers."""

    guards: Guards | None = None

    def install_guards(self, guards: Guards) -> None:
        self.guards = guards
        if isinstance(self.eio, GuardedEngine):
            self.eio.queue_limit = guards.settings.socket_queue_bytes

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        if self.guards is not None:
            refused = self.guards.admit_connection(eio_sid, environ)
            if refused is not None:
                return refused
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        if self.guards is not None:
            self.guards.closed(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        guards = self.guards
        if guards is None:
            await super()._handle_eio_message(eio_sid, data)
            return
        if not isinstance(data, str) or data[:1] in (
            str(sio_packet.BINARY_EVENT),
            str(sio_packet.BINARY_ACK),
        ):
            guards.noisy.warning("binary", "socket packet refused: binary packets unsupported")
            await self._refuse_binary(eio_sid, data)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            guards.noisy.warning("malformed", "malformed socket packet dropped: %r", exc)

    async def _refuse_binary(self, eio_sid: str, data: Any) -> None:
        """Answer a binary event that asked for an ack; its attachments are never kept."""
        if not isinstance(data, str):
            return
        with contextlib.suppress(Exception):
            pkt = self.packet_class(encoded_packet=data)
            if pkt.id is not None and pkt.packet_type == sio_packet.BINARY_EVENT:
                ack = error_ack(BinaryUnsupported())
                await self._send_packet(
                    eio_sid,
                    self.packet_class(
                        sio_packet.ACK, namespace=pkt.namespace or "/", id=pkt.id, data=[ack]
                    ),
                )

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        if self.guards is not None and not self.guards.spend(eio_sid):
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={
                        "message": "Too many events, slow down",
                        "data": {"code": RateLimited.code},
                    },
                    namespace=namespace or "/",
                ),
            )
            return
        await super()._handle_connect(eio_sid, namespace, data)

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        if self.guards is not None:
            event = data[0] if isinstance(data, list) and data else None
            known = isinstance(event, str) and event in self.handlers.get(namespace or "/", {})
            refused = self.guards.refuse_event(eio_sid, event, known)
            if refused is not None and self.guards.flooding(eio_sid):
                socket = self.eio.sockets.get(eio_sid)
                if socket is not None and not socket.closing:
                    log.warning("socket %s closed: it kept sending past its event budget", eio_sid)
                    terminate(self.eio, socket, "event flood")
                return
            if refused is not None:
                if id is not None:
                    await self._send_packet(
                        eio_sid,
                        self.packet_class(
                            sio_packet.ACK, namespace=namespace or "/", id=id, data=[refused]
                        ),
                    )
                return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: int | None
    ) -> None:
        try:
            await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)
        finally:
            if self.guards is not None:
                self.guards.finished(eio_sid)

    async def sweep_unauthenticated(self) -> None:
        """Forever: close Engine.IO sessions that never completed a Socket.IO connect, and
        those whose client stopped reading. Each pass costs what is backlogged or newly
        past the authentication timeout, not what is connected."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            guards = self.guards
            if guards is None:
                continue
            self._close_stalled(time.monotonic())
            for eio_sid in guards.expired(time.monotonic()):
                if self.manager.sid_from_eio_sid(eio_sid, "/") is not None:
                    continue  # authenticated in time
                socket = self.eio.sockets.get(eio_sid)
                guards.noisy.warning(
                    "auth-timeout", "socket %s closed: no authentication in time", eio_sid
                )
                if socket is None:
                    guards.closed(eio_sid)
                    continue
                terminate(self.eio, socket, "authentication timeout")

    def _close_stalled(self, now: float) -> None:
        """Close the sessions whose client took none of the bytes waiting for it in
        STALL_SECONDS; forget the backlogged ones that have nothing waiting any more."""
        backlogged: set[Any] = getattr(self.eio, "backlogged", set())
        for item in list(backlogged):
            if isinstance(item, SendQueue):  # a long-polling session's
                if item.bytes == 0:
                    backlogged.discard(item)
                    continue
                if not item.stalled(now):
                    continue
                waiting = item.bytes
                socket = next((s for s in self.eio.sockets.values() if s.queue is item), None)
            else:  # a websocket's: its bytes wait in its transport
                socket = item.socket
                if item.transport is None or socket.closed:
                    backlogged.discard(item)
                    continue
                if not item.stalled(now, STALL_SECONDS):
                    if item.stuck is None:  # nothing waiting
                        backlogged.discard(item)
                    continue
                waiting = item.waiting()
            backlogged.discard(item)
            if socket is None or socket.closed:
                if isinstance(item, SendQueue):
                    item.drop_all()
                continue
            log.warning(
                "socket %s closed: its client took nothing of %d queued bytes in %ds",
                socket.sid,
                waiting,
                STALL_SECONDS,
            )
            terminate(self.eio, socket, "client stopped reading")
