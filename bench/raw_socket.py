"""An Engine.IO websocket spoken by hand, for the clients no library would be: one that
never reads, never authenticates, sends binary attachments or malformed frames."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from typing import Any

import orjson


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.opened: str | None = None

    @classmethod
    async def open(
        cls,
        port: int,
        *,
        local_ip: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
        receive_buffer: int | None = None,
    ) -> RawSocket:
        """Connects and upgrades; `status` is the HTTP answer (101 when upgraded), and
        `opened` Engine.IO's OPEN packet. A small `receive_buffer` makes a slow reader."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((local_ip, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        raw = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        raw.status = int(head.split(b" ", 2)[1])
        if raw.status == 101:
            raw.opened = await raw.recv()
        return raw

    def _frame(
        self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True
    ) -> bytes:
        first = (0x80 if fin else 0) | opcode
        bit = 0x80 if masked else 0
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", first, bit | n)
        elif n < 65536:
            head = struct.pack("!BBH", first, bit | 126, n)
        else:
            head = struct.pack("!BBQ", first, bit | 127, n)
        if not masked:
            return head + payload
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    async def send_frame(
        self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True
    ) -> None:
        """Any frame, as a client that breaks the rules might send it."""
        self.writer.write(self._frame(opcode, payload, fin=fin, masked=masked))
        await self.writer.drain()

    async def read_frame(self, within: float = 10) -> tuple[int, bytes] | None:
        """The next frame as (opcode, payload), Engine.IO pings included; None at EOF."""
        try:
            first, second = await asyncio.wait_for(self.reader.readexactly(2), within)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def send(self, text: str) -> None:
        self.writer.write(self._frame(0x1, text.encode()))
        await self.writer.drain()

    async def send_binary(self, data: bytes) -> None:
        self.writer.write(self._frame(0x2, data))
        await self.writer.drain()

    async def recv(self, within: float = 10) -> str | None:
        """The next text frame (answering Engine.IO pings); None once the server closed."""
        while True:
            try:
                first, second = await asyncio.wait_for(self.reader.readexactly(2), within)
                n = second & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                payload = await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            opcode = first & 0x0F
            if opcode == 0x8:
                return None
            text = payload.decode()
            if text == "2":
                await self.send("3")
                continue
            return text

    async def authenticate(self, token: str) -> str | None:
        await self.send("40" + orjson.dumps({"token": token}).decode())
        return await self.recv()

    async def call(self, ack_id: int, event: str, data: Any) -> Any:
        """Emits `event` with an ack id and answers the ack's payload (skipping events)."""
        await self.send(f"42{ack_id}" + orjson.dumps([event, data]).decode())
        prefix = f"43{ack_id}"
        while True:
            frame = await self.recv()
            if frame is None:
                raise ConnectionError("closed before the ack")
            if frame.startswith(prefix):
                return orjson.loads(frame[len(prefix) :])[0]

    async def closed_within(self, seconds: float) -> bool:
        """Reads (and discards) until the server ends the connection, up to `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(self.reader.read(1 << 16), deadline - loop.time())
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            if not chunk:
                return True
        return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
