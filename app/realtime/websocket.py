"""Engine.IO's websocket transport without a task, a queue or a Sanic request per connection.

python-engineio on Sanic held an idle websocket in ~44 KB (see docs/idle-memory.md): the
Sanic request, its headers and connection task stayed alive for the connection's life,
Sanic's websocket layer added two tasks, three locks and a frame assembler, and Engine.IO
a reader task, a writer task, a waiting receive task and a queue. Here, once Engine.IO
accepts a websocket (a new session or a polling session upgrading), the TCP transport is
handed to `WebSocketConnection`, a plain asyncio protocol: frames are parsed in
`data_received`, packets are written to the transport as they are sent, a pong is
handled inline, and a task exists only while a received packet is being handled. The
Engine.IO and Socket.IO protocols are unchanged: python-engineio still owns the session
(`LeanSocket` is its `AsyncSocket` with direct writes), python-socketio everything above.

Pings come from one shared timer (`app/realtime/pings.py`), not a task per session.

Frames written to one websocket in one turn of the event loop leave in one write at the
end of that turn (`Outbox`): a send() system call per frame was the largest single item of
a busy worker's profile, and under load a staff socket is sent many events per turn.

The websocket framing is RFC 6455 without extensions (no permessage-deflate is offered,
so clients send plain frames): masked client frames, fragmentation, ping/pong, close.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from engineio import async_socket, exceptions, packet

log = logging.getLogger(__name__)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_DATA, CLOSE_TOO_BIG = 1000, 1002, 1007, 1009
PONG_PACKET = "3"
# Environ keys only the handshake needs: dropped once the socket is up.
HANDSHAKE_KEYS = (
    "HTTP_UPGRADE",
    "HTTP_CONNECTION",
    "HTTP_SEC_WEBSOCKET_KEY",
    "HTTP_SEC_WEBSOCKET_VERSION",
    "HTTP_SEC_WEBSOCKET_EXTENSIONS",
    "wsgi.input",
)

# The Sanic request being handled, for the websocket driver: the environ python-socketio
# keeps for the whole session must not hold it (it holds its connection's protocol,
# buffers and headers).
current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("engineio_request")
# Bytes of frames held for the end of the turn past which they are written at once: a
# batch that large gains nothing from waiting, and the queue cap is checked on writes.
FLUSH_BYTES = 1 << 16
# Tasks handling received packets, referenced until they finish.
_handling: set[asyncio.Task[None]] = set()


class Outbox:
    """The websockets written to in this turn of the event loop: one callback at the end
    of the turn flushes each of them with a single write (frames in the order written)."""

    __slots__ = ("loop", "pending")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: list[WebSocketConnection] = []

    def add(self, ws: WebSocketConnection) -> None:
        loop = asyncio.get_running_loop()
        if not self.pending or loop is not self.loop:
            # The first this turn (or a new loop: a stopped one never ran its flush).
            self.loop = loop
            self.pending = []
            loop.call_soon(self.flush)
        self.pending.append(ws)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for ws in pending:
            try:
                ws.flush()
            except Exception as exc:  # one transport's failure is not the others'
                log.debug("websocket flush failed: %r", exc)


OUTBOX = Outbox()


def parse(data: str | bytes) -> packet.Packet:
    """An Engine.IO packet from a frame's text. A Socket.IO packet (a MESSAGE whose data
    starts with a digit) is built directly: python-engineio's decode first tries to read
    its data as JSON by raising and catching a ValueError, per received event."""
    if isinstance(data, str) and len(data) > 1 and data[0] == "4" and data[1].isnumeric():
        pkt = packet.Packet(packet.MESSAGE, data[1:])
        return pkt
    return packet.Packet(encoded_packet=data)


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WebSocketConnection(asyncio.Protocol):
    """One client's websocket after the handshake: frames in, Engine.IO packets out."""

    __slots__ = (
        "buffer",
        "fragments",
        "max_size",
        "out",
        "out_bytes",
        "probing",
        "socket",
        "stuck",
        "transport",
        "written",
    )

    def __init__(self, transport: asyncio.Transport, socket: LeanSocket, max_size: int) -> None:
        self.transport: asyncio.Transport | None = transport
        self.socket = socket
        self.max_size = max_size
        self.buffer = b""
        # Frames of a fragmented message so far (rare: browsers send whole frames).
        self.fragments: list[bytes] | None = None
        # A polling session upgrading: 0 = waiting for "2probe", 1 = for the UPGRADE.
        self.probing: int | None = None if socket.upgraded else 0
        # Bytes written to the transport, and (how many of them the kernel had taken,
        # since when) while some wait: see `stalled`.
        self.written = 0
        self.stuck: tuple[int, float] | None = None
        # Frames written this turn of the loop, not yet handed to the transport (Outbox).
        self.out: list[bytes] | None = None
        self.out_bytes = 0

    # Writing

    def send_text(self, text: str) -> None:
        self._write_now(frame(OP_TEXT, text.encode()))

    def send_packet(self, pkt: packet.Packet) -> None:
        if self.transport is None:
            return
        encoded = pkt.encode()
        data = (
            frame(OP_BINARY, encoded)
            if isinstance(encoded, bytes)
            else frame(OP_TEXT, encoded.encode())
        )
        out = self.out
        if out is None:
            self.out = [data]
            self.out_bytes = len(data)
            OUTBOX.add(self)
        else:
            out.append(data)
            self.out_bytes += len(data)
        if self.out_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand the frames written this turn to the transport, in one write."""
        out, self.out, self.out_bytes = self.out, None, 0
        transport = self.transport
        if not out or transport is None or transport.is_closing():
            return  # aborted by the guards: nothing more is sent on it
        data = out[0] if len(out) == 1 else b"".join(out)
        transport.write(data)
        self.written += len(data)
        waiting = transport.get_write_buffer_size()
        if waiting:
            self._backlog(waiting)

    def _write_now(self, data: bytes) -> None:
        """A control frame (or a probe answer), after what is already waiting to go."""
        if self.out is not None:
            self.flush()
        if self.transport is not None:
            self.transport.write(data)

    def _backlog(self, waiting: int) -> None:
        """What the kernel would not take waits in the transport, for a client that does
        not read: past the guards' cap (SOCKET_QUEUE_BYTES) it is closed at once, below it
        the guards' stall check watches it (app/realtime/guards.py). A client that reads
        leaves nothing waiting, and nothing to watch."""
        server = self.socket.server
        limit = getattr(server, "queue_limit", None)
        if limit is not None and waiting > limit:
            self.transport = None
            server.close_slow_reader(self.socket)
            return
        backlogged = getattr(server, "backlogged", None)
        if backlogged is not None:
            backlogged.add(self)

    def close(self, code: int = CLOSE_NORMAL) -> None:
        """Send a close frame and close the TCP connection once what is written is sent."""
        if self.out is not None:
            self.flush()  # what was written before the close goes first
        transport = self.transport
        if transport is None:
            return
        self.transport = None
        if not transport.is_closing():
            transport.write(frame(OP_CLOSE, code.to_bytes(2, "big")))
            transport.close()
        self._lost()

    def waiting(self) -> int:
        """Bytes written for the client that the kernel has not taken yet."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def stalled(self, now: float, seconds: float) -> bool:
        """Bytes wait for the client and the kernel has taken none for `seconds` (the
        guards' sweep asks every second while bytes wait: a websocket's queue is its
        transport's buffer)."""
        waiting = self.waiting()
        if waiting == 0:
            self.stuck = None
            return False
        taken = self.written - waiting
        if self.stuck is None or taken > self.stuck[0]:
            self.stuck = (taken, now)
            return False
        return now - self.stuck[1] > seconds

    # Reading

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos, end = 0, len(buf)
        while end - pos >= 2 and self.transport is not None:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b0 & 0x70 or not b1 & 0x80:  # extension bits, or an unmasked client frame
                self.close(CLOSE_PROTOCOL)
                return
            if length + sum(map(len, self.fragments or ())) > self.max_size:
                self.close(CLOSE_TOO_BIG)
                return
            stop = pos + head + 4 + length
            if stop > end:
                break
            mask = buf[pos + head : pos + head + 4]
            payload = unmask(buf[pos + head + 4 : stop], mask)
            pos = stop
            self._frame(bool(b0 & 0x80), b0 & 0x0F, payload)
        self.buffer = buf[pos:] if pos < end else b""

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                self.close(CLOSE_PROTOCOL)
            elif opcode == OP_PING:
                self._write_now(frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else CLOSE_NORMAL
                self.close(code if 1000 <= code < 5000 and code not in (1005, 1006) else 1000)
            return
        if opcode == OP_CONT:
            if self.fragments is None:
                self.close(CLOSE_PROTOCOL)
                return
            self.fragments.append(payload)
            if not fin:
                return
            opcode, payload = self.fragments[0][0], b"".join(self.fragments)[1:]
            self.fragments = None
        elif self.fragments is not None:
            self.close(CLOSE_PROTOCOL)
            return
        elif not fin:
            # The first fragment's opcode rides in front of its payload until the end.
            self.fragments = [bytes((opcode,)) + payload]
            return
        if opcode == OP_TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                self.close(CLOSE_DATA)
                return
            self._message(text)
        elif opcode == OP_BINARY:
            self._message(payload)
        else:
            self.close(CLOSE_PROTOCOL)

    def _message(self, data: str | bytes) -> None:
        socket = self.socket
        if self.probing is None and data == PONG_PACKET:
            # The idle path: a pong re-arms the session's ping, no task needed.
            socket.schedule_ping()
            return
        try:
            pkt = parse(data)
        except Exception:
            self.close(CLOSE_DATA)
            return
        if self.probing is not None:
            self._upgrade_step(pkt)
            return
        socket.received(pkt)

    def _upgrade_step(self, pkt: packet.Packet) -> None:
        """A polling session's probe and upgrade, as Engine.IO's websocket handler does."""
        socket = self.socket
        if self.probing == 0 and pkt.packet_type == packet.PING and pkt.data == "probe":
            self.send_text("3probe")
            assert socket.queue is not None  # a polling session has its queue
            socket.queue.put_nowait(packet.Packet(packet.NOOP))  # ends the pending poll
            self.probing = 1
        elif self.probing == 1 and pkt.packet_type == packet.UPGRADE:
            self.probing = None
            socket.upgraded = True
            socket.upgrading = False
            socket.take_over(self)
        else:
            socket.upgrading = False
            self.close(CLOSE_NORMAL)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.out, self.out_bytes = None, 0
        self._lost()

    def _lost(self) -> None:
        socket = self.socket
        mine = socket.ws is self
        if mine:
            socket.ws = None
        if self.probing is not None:
            socket.upgrading = False  # a failed upgrade: the session keeps polling
        elif mine and not socket.closed and not socket.closing:
            socket.spawn(
                socket.close(wait=False, abort=True, reason=socket.server.reason.TRANSPORT_CLOSE)
            )


class LeanSocket(async_socket.AsyncSocket):
    """An Engine.IO session whose websocket writes go straight to the transport."""

    queue: asyncio.Queue[Any] | None
    ws: WebSocketConnection | None = None
    # Wall time of the PING not yet answered (python-engineio's), None once it was.
    last_ping: float | None
    # Packets received and not yet handled; a list only while a task handles them.
    inbox: list[packet.Packet] | None = None

    def schedule_ping(self) -> None:
        """A PONG came: the next PING goes on the worker's shared timer (pings.py)
        directly, not through `start_background_task` (a bound method per pong)."""
        if self.last_ping:
            self.last_ping = None
            self.server.pings.schedule(self)

    def take_over(self, ws: WebSocketConnection) -> None:
        """From now on packets go out on `ws`; what was queued goes first."""
        self.ws = ws
        queue = self.queue
        while queue is not None and not queue.empty():
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is not None:
                ws.send_packet(pkt)
        # The queue only served polling; an upgraded session never polls again.
        self.queue = None

    def write(self, pkt: packet.Packet) -> None:
        """Send without waiting (pings come from a timer, not a coroutine)."""
        ws = self.ws
        if ws is not None and self.upgraded:
            ws.send_packet(pkt)
        elif self.queue is not None:
            self.queue.put_nowait(pkt)

    async def send(self, pkt: packet.Packet) -> None:
        if await self.check_ping_timeout():
            self.write(pkt)

    def received(self, pkt: packet.Packet) -> None:
        """Handle a packet in a task, in order after any still being handled."""
        if self.inbox is not None:
            self.inbox.append(pkt)
            return
        self.inbox = [pkt]
        self.spawn(self._handle_inbox(self.inbox))

    async def _handle_inbox(self, inbox: list[packet.Packet]) -> None:
        try:
            while inbox:
                try:
                    await self.receive(inbox[0])
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    return
                except Exception:
                    self.server.logger.exception("Unknown receive error")
                del inbox[0]
        finally:
            self.inbox = None

    async def close(
        self, wait: bool = True, abort: bool = False, reason: str | None = None
    ) -> None:
        await super().close(wait=wait and self.queue is not None, abort=abort, reason=reason)
        ws = self.ws
        if ws is not None:
            self.ws = None
            ws.close()
        self.forget()

    def forget(self) -> None:
        """Leave the server's table once closed (no handler or service task is left to)."""
        if self.closed and self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        _handling.add(task)
        task.add_done_callback(_handling.discard)


class LeanWebSocket:
    """The `websocket` entry of Engine.IO's async driver: takes the connection over."""

    def __init__(self, handler: Callable[..., Any], server: Any) -> None:
        self.handler = handler
        self.server = server

    async def __call__(self, environ: dict[str, Any]) -> Any:
        request = current_request.get(None)
        socket = getattr(self.handler, "__self__", None)
        if request is None or not isinstance(socket, async_socket.AsyncSocket):
            return self.server._bad_request("Websocket not available")
        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        try:
            valid = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid = False
        if not valid or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
            return self.server._bad_request("Invalid websocket handshake")
        protocol = request.transport.get_protocol()
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return None
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode()
            + b"\r\n\r\n"
        )
        socket.__class__ = LeanSocket
        assert isinstance(socket, LeanSocket)
        if socket.connected:  # a polling session upgrading
            socket.upgrading = True
        else:
            socket.connected = socket.upgraded = True
        ws = WebSocketConnection(transport, socket, self.server.max_http_buffer_size)
        detach(protocol, transport, ws)
        # What the guards abort when the client stops reading.
        socket.helpline_transport = transport
        for name in HANDSHAKE_KEYS:
            environ.pop(name, None)
        if socket.upgraded:
            socket.take_over(ws)
        else:
            socket.ws = ws
        leftover = bytes(getattr(protocol, "recv_buffer", b""))
        if leftover:
            ws.data_received(leftover)
        # Nothing to send: the connection is the websocket's now (see `create_route`).
        return None


def detach(protocol: Any, transport: asyncio.Transport, ws: WebSocketConnection) -> None:
    """Take `transport` away from Sanic's protocol: Sanic neither reads from it, nor times
    it out, nor closes it when the request handler returns, nor waits for it at stop."""
    transport.set_protocol(ws)
    callback = getattr(protocol, "_callback_check_timeouts", None)
    if callback is not None:
        callback.cancel()
    protocol.connections.discard(protocol)
    protocol.transport = None


def translate_request(upstream: Callable[[Any], dict[str, Any]]) -> Callable[[Any], Any]:
    """The driver's environ, without the Sanic request in it (python-socketio keeps the
    environ for the whole session) and with the real peer address."""

    def translate(request: Any) -> dict[str, Any]:
        environ = upstream(request)
        environ.pop("sanic.request", None)
        current_request.set(request)
        conn_info = getattr(request, "conn_info", None)
        if conn_info is not None and conn_info.client_ip:
            environ["REMOTE_ADDR"] = conn_info.client_ip
            environ["REMOTE_PORT"] = str(conn_info.client_port)
        # Every session has the same keys: share them instead of a copy each.
        return {sys.intern(k): v for k, v in environ.items()}

    return translate


def create_route(app: Any, server: Any, path: str) -> None:
    """Engine.IO's endpoint, marked as a websocket handler: Sanic then lets it return
    without a response once the websocket has taken the connection over."""

    async def engineio_endpoint(request: Any) -> Any:
        return await server.handle_request(request)

    engineio_endpoint.is_websocket = True  # type: ignore[attr-defined]
    app.add_route(engineio_endpoint, path, methods=["GET", "POST", "OPTIONS"])
    app.enable_websocket()


def driver(upstream: dict[str, Any]) -> dict[str, Any]:
    """Engine.IO's Sanic driver with this module's websocket, route and environ."""
    return {
        **upstream,
        "websocket": LeanWebSocket,
        "create_route": create_route,
        "translate_request": translate_request(upstream["translate_request"]),
    }
