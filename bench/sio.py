"""A lean Socket.IO v5 client over one websocket, spoken on a plain asyncio connection.

python-socketio's AsyncClient costs tens of kilobytes and a few tasks per connection; the
load generator holds thousands, so it speaks the protocol itself. The server still sees an
ordinary client: an HTTP upgrade, Engine.IO open, Socket.IO CONNECT with `auth: {token}`,
events with acknowledgement ids (masked frames, as RFC 6455 asks of a client), and pong
answers to its pings.

The load generator shares the machine's cores with the server it measures, so what it
spends per message is taken from the server: frames are parsed in the connection's
`data_received` as they arrive (no reader task woken per frame, as aiohttp's websocket
needs), an event can be sent with a callback for its acknowledgement (`send_event`: no
task and no timer per send), and acknowledgements not answered in time are failed by one
sweep per client, once a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

Listener = Callable[[str, Any], None]
# An acknowledgement's first argument, or why there will be none.
AckCallback = Callable[[Any, BaseException | None], None]
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
# Seconds between two looks for acknowledgements past their deadline.
SWEEP_EVERY = 1.0


class ConnectRefused(RuntimeError):
    """The server answered the Socket.IO CONNECT with an error packet."""


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked frame (client to server)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    if not n:
        return head + mask
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + masked


class _Wire(asyncio.Protocol):
    """The TCP side: the upgrade answer, then server frames, handed to the client."""

    def __init__(self, client: SioClient) -> None:
        self.client = client
        self.buffer = b""
        self.upgraded = False
        self.fragments: list[bytes] | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if status.split(b" ", 2)[1:2] != [b"101"]:
                self.client._handshake_failed(status.decode(errors="replace"))
                return
            self.upgraded = True
            buf = buf[end + 4 :]
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, length, head = buf[pos], buf[pos + 1] & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            stop = pos + head + length
            if stop > end:
                break
            payload = buf[pos + head : stop]
            pos = stop
            self._frame(bool(b0 & 0x80), b0 & 0x0F, payload)
        self.buffer = buf[pos:] if pos < end else b""

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.client._write(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.client._write(client_frame(OP_CLOSE, payload[:2]))
            self.client._lose()
        elif opcode == 0 and self.fragments is not None:  # a continuation
            self.fragments.append(payload)
            if fin:
                text, self.fragments = b"".join(self.fragments), None
                self.client._text(text.decode())
        elif opcode == OP_TEXT:
            if fin:
                self.client._text(payload.decode())
            else:
                self.fragments = [payload]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.client._lost()


class SioClient:
    def __init__(self, http: Any, url: str, token: str) -> None:
        # `http` (an aiohttp session) is not used: the websocket runs on its own
        # connection. It stays in the signature for the callers that hold one.
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.token = token
        self.eio_sid = ""
        self.ping_interval = 0.0
        self.pings = 0
        self.listener: Listener | None = None
        self._transport: asyncio.Transport | None = None
        self._wire: _Wire | None = None
        self._ids = itertools.count(1)
        self._acks: dict[int, AckCallback] = {}
        # (deadline, ack id) in the order sent; the sweep fails those still unanswered.
        self._deadlines: deque[tuple[float, int]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        # Frames while connecting (None once connected); events that came before the
        # CONNECT answer, delivered once connected.
        self._handshake: asyncio.Queue[str | BaseException | None] | None = None
        self._early: list[str] = []

    @property
    def worker(self) -> str:
        """The worker that holds this connection (the sid's prefix, see affinity.py)."""
        return self.eio_sid.partition(".")[0] if "." in self.eio_sid else ""

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self, wait: float = 20) -> None:
        loop = asyncio.get_running_loop()
        self._handshake = asyncio.Queue()
        transport, wire = await asyncio.wait_for(
            loop.create_connection(lambda: _Wire(self), self.host, self.port), wait
        )
        self._transport, self._wire = transport, wire
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        try:
            opened = await self._next(wait)
            if not opened.startswith("0"):
                raise RuntimeError(f"unexpected Engine.IO open packet {opened[:40]!r}")
            handshake = orjson.loads(opened[1:])
            self.eio_sid = handshake["sid"]
            self.ping_interval = handshake["pingInterval"] / 1000
            self.send_text("40" + orjson.dumps({"token": self.token}).decode())
            while True:
                answer = await self._next(wait)
                if answer == "2":
                    self.send_text("3")
                    continue
                if answer.startswith("42"):
                    # An event can come before the CONNECT answer: the server's connect
                    # handler joins rooms (staff: `admins`) before python-socketio sends
                    # that answer. socket.io-client keeps such events until it is
                    # connected (its receive buffer); so does this client.
                    self._early.append(answer)
                    continue
                break
            if answer.startswith("44"):
                raise ConnectRefused(answer[2:])
            if not answer.startswith("40"):
                raise RuntimeError(f"unexpected Socket.IO connect answer {answer[:40]!r}")
        except BaseException:
            self._abort()
            raise
        self._handshake = None
        # After the caller has set its listener (it does so once this returns).
        loop.call_soon(self._deliver_early)

    async def _next(self, wait: float) -> str:
        assert self._handshake is not None
        item = await asyncio.wait_for(self._handshake.get(), wait)
        if item is None:
            raise ConnectionError("closed while connecting")
        if isinstance(item, BaseException):
            raise item
        return item

    def _deliver_early(self) -> None:
        early, self._early = self._early, []
        for text in early:
            self._event(text)

    def send_text(self, text: str) -> None:
        self._write(client_frame(OP_TEXT, text.encode()))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def send_event(self, event: str, data: Any, on_ack: AckCallback, wait: float = 30) -> None:
        """Send an event; `on_ack` gets its acknowledgement's first argument, or the
        error (TimeoutError after `wait` seconds, ConnectionError if the socket closes)."""
        if not self.open:
            on_ack(None, ConnectionError("socket closed"))
            return
        ack_id = next(self._ids)
        self._acks[ack_id] = on_ack
        loop = asyncio.get_running_loop()
        self._deadlines.append((loop.time() + wait, ack_id))
        if self._sweep is None:
            self._sweep = loop.call_later(SWEEP_EVERY, self._expire)
        self.send_text(f"42{ack_id}" + orjson.dumps([event, data]).decode())

    async def emit(self, event: str, data: Any, wait: float = 30) -> Any:
        """Send an event and wait for its acknowledgement's first argument."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self.send_event(event, data, done, wait)
        return await future

    def _expire(self) -> None:
        """Fail the acknowledgements past their deadline; look again in a second."""
        loop = asyncio.get_running_loop()
        now, deadlines = loop.time(), self._deadlines
        while deadlines and deadlines[0][0] <= now:
            on_ack = self._acks.pop(deadlines.popleft()[1], None)
            if on_ack is not None:
                on_ack(None, TimeoutError())
        self._sweep = loop.call_later(SWEEP_EVERY, self._expire) if deadlines else None

    def _text(self, text: str) -> None:
        if self._handshake is not None:
            self._handshake.put_nowait(text)
        elif text == "2":
            self.pings += 1
            self.send_text("3")
        elif text.startswith("42"):
            self._event(text)
        elif text.startswith("43"):
            body = text.index("[")
            on_ack = self._acks.pop(int(text[2:body]), None)
            if on_ack is not None:
                args = orjson.loads(text[body:])
                on_ack(args[0] if args else None, None)

    def _event(self, text: str) -> None:
        if self.listener is not None:
            event, *args = orjson.loads(text[2:])
            self.listener(event, args[0] if args else None)

    def _handshake_failed(self, status: str) -> None:
        if self._handshake is not None:
            self._handshake.put_nowait(RuntimeError(f"websocket upgrade refused: {status}"))
        self._abort()

    def _lose(self) -> None:
        """The server closed the websocket."""
        if self._transport is not None:
            self._transport.close()

    def _lost(self) -> None:
        self._transport = None
        if self._handshake is not None:
            self._handshake.put_nowait(None)
        acks, self._acks = self._acks, {}
        for on_ack in acks.values():
            on_ack(None, ConnectionError("socket closed"))
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        transport, wire = self._transport, self._wire
        if transport is None or wire is None:
            return
        with contextlib.suppress(Exception):
            self.send_text("41")
            self._write(client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(wire.lost), 5)


async def connect_on(
    http: Any,
    url: str,
    token: str,
    accept: Callable[[str], bool] = lambda worker: True,
    tries: int = 40,
) -> SioClient:
    """Connect, reconnecting until the connection lands on a worker `accept` allows
    (the kernel spreads connections over workers; the sid says which one took it)."""
    for _ in range(tries):
        client = SioClient(http, url, token)
        await client.connect()
        if accept(client.worker):
            return client
        await client.close()
    raise RuntimeError(f"no connection landed on a wanted worker in {tries} tries")
