"""A lean Socket.IO v5 client over one websocket (Engine.IO v4 frames via aiohttp).

python-socketio's AsyncClient costs tens of kilobytes and a few tasks per connection; the
load generator holds thousands, so it speaks the protocol itself. The server still sees an
ordinary client: Engine.IO open, Socket.IO CONNECT with `auth: {token}`, events with
acknowledgement ids, and pong answers to its pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

Listener = Callable[[str, Any], None]


class ConnectRefused(RuntimeError):
    """The server answered the Socket.IO CONNECT with an error packet."""


class SioClient:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http = http
        self.ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.token = token
        self.eio_sid = ""
        self.ping_interval = 0.0
        self.pings = 0
        self.listener: Listener | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._early: list[str] = []

    @property
    def worker(self) -> str:
        """The worker that holds this connection (the sid's prefix, see affinity.py)."""
        return self.eio_sid.partition(".")[0] if "." in self.eio_sid else ""

    @property
    def open(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def connect(self, wait: float = 20) -> None:
        ws = await self.http.ws_connect(self.ws_url, max_msg_size=0)
        self._ws = ws
        try:
            opened = await ws.receive_str(timeout=wait)
            if not opened.startswith("0"):
                raise RuntimeError(f"unexpected Engine.IO open packet {opened[:40]!r}")
            handshake = orjson.loads(opened[1:])
            self.eio_sid = handshake["sid"]
            self.ping_interval = handshake["pingInterval"] / 1000
            await ws.send_str("40" + orjson.dumps({"token": self.token}).decode())
            while True:
                answer = await ws.receive_str(timeout=wait)
                if answer == "2":
                    await ws.send_str("3")
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
            await ws.close()
            raise
        self._reader = asyncio.create_task(self._read())

    async def emit(self, event: str, data: Any, wait: float = 30) -> Any:
        """Send an event and wait for its acknowledgement's first argument."""
        assert self._ws is not None
        ack_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        frame = orjson.dumps([event, data]).decode()
        try:
            await self._ws.send_str(f"42{ack_id}{frame}")
            return await asyncio.wait_for(future, wait)
        finally:
            self._acks.pop(ack_id, None)

    async def _read(self) -> None:
        assert self._ws is not None
        ws = self._ws
        for early in self._early:
            self._event(early)
        self._early.clear()
        # aiohttp answers the server's websocket-level pings itself (autoping).
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            text: str = msg.data
            if text == "2":
                self.pings += 1
                await ws.send_str("3")
            elif text.startswith("42"):
                self._event(text)
            elif text.startswith("43"):
                body = text.index("[")
                future = self._acks.get(int(text[2:body]))
                if future is not None and not future.done():
                    args = orjson.loads(text[body:])
                    future.set_result(args[0] if args else None)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))

    def _event(self, text: str) -> None:
        if self.listener is not None:
            event, *args = orjson.loads(text[2:])
            self.listener(event, args[0] if args else None)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send_str("41")
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


async def connect_on(
    http: aiohttp.ClientSession,
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
