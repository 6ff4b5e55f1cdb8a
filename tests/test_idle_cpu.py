"""An idle worker's periodic work costs what it finds, not what is connected (issue 16).

At 20,000 idle websockets the sweeps that walked every session each second (the socket
guards' stall and authentication checks, the credential sweep) were over half of the
worker's idle CPU (docs/idle-memory.md). Each now visits only what may need it: the
sessions with bytes waiting for their client, those newly past the authentication
timeout, the sockets once the earliest token expiry has passed, and the staff sockets.

These run in-process: the stall check on real loopback TCP connections (one peer reads,
one does not), the others on the guards' and the credential sweep's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket as sockets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from engineio import async_socket, packet

from app.auth import Principal
from app.config import Settings
from app.realtime.credentials import Credentials
from app.realtime.engine import EngineIO, SocketIO
from app.realtime.guards import STALL_SECONDS, Guards
from app.realtime.websocket import LeanSocket, WebSocketConnection


class Peer:
    """The far end of a loopback TCP connection: reads everything, or nothing; with
    `pongs`, answers every Engine.IO PING with a PONG as a browser would (masked)."""

    def __init__(self, reads: bool, pongs: bool = False) -> None:
        self.reads = reads
        self.pongs = pongs
        self.pinged = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        raw = writer.get_extra_info("socket")
        raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        if self.pongs:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    head = await reader.readexactly(2)  # small unmasked server frames
                    if await reader.readexactly(head[1] & 0x7F) == b"2":
                        self.pinged += 1
                        writer.write(bytes((0x81, 0x80 | 1)) + b"\0\0\0\0" + b"3")
        while self.reads and await reader.read(65536):
            pass


class Rig:
    """An Engine.IO server of ours (no HTTP side) and the loopback peers of its sessions."""

    def __init__(self, **engineio: Any) -> None:
        self.sio = SocketIO(async_mode="sanic", **engineio)
        self.eio = cast(EngineIO, self.sio.eio)
        self.eio.queue_limit = 1 << 24  # far above what the kernel buffers hold
        self.peers: list[Peer] = []
        self.listeners: list[asyncio.Server] = []

    async def websocket(self, peer: Peer, sid: str) -> WebSocketConnection:
        """An upgraded Engine.IO session whose websocket runs on a real TCP connection,
        handed over the way `LeanWebSocket` does it."""
        listener = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
        self.peers.append(peer)
        self.listeners.append(listener)
        port = listener.sockets[0].getsockname()[1]
        transport, _ = await asyncio.get_running_loop().create_connection(
            asyncio.Protocol, "127.0.0.1", port
        )
        raw = transport.get_extra_info("socket")
        raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_SNDBUF, 4096)
        session = async_socket.AsyncSocket(self.eio, sid)
        session.__class__ = LeanSocket
        assert isinstance(session, LeanSocket)
        session.connected = session.upgraded = True
        self.eio.sockets[sid] = session
        ws = WebSocketConnection(cast(asyncio.Transport, transport), session, 1 << 20)
        transport.set_protocol(ws)
        session.helpline_transport = transport  # what the guards abort
        session.take_over(ws)
        return ws

    async def close(self) -> None:
        await self.eio.pings.stop()
        for session in list(self.eio.sockets.values()):
            if session.ws is not None:
                session.ws.close()
        for peer in self.peers:
            for writer in peer.writers:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        for listener in self.listeners:
            listener.close()
            await listener.wait_closed()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    await rig.close()


async def test_only_a_websocket_whose_client_stopped_reading_is_watched_and_closed(rig: Rig):
    engine = rig.eio
    listening = await rig.websocket(Peer(reads=True), "reads")
    stopped = await rig.websocket(Peer(reads=False), "silent")
    big = packet.Packet(packet.MESSAGE, data="x" * 16384)
    listening.socket.write(packet.Packet(packet.PING))
    while not stopped.waiting():
        stopped.socket.write(big)
    # A client that reads leaves nothing waiting, so nothing for the stall check to visit.
    assert engine.backlogged == {stopped}
    sio = rig.sio
    now = time.monotonic()
    sio._close_stalled(now)  # the kernel has taken none of it from here on
    assert not stopped.socket.closed
    sio._close_stalled(now + STALL_SECONDS + 1)
    await asyncio.sleep(0)  # the close runs in a task
    for _ in range(100):
        if stopped.socket.closed:
            break
        await asyncio.sleep(0.01)
    assert stopped.socket.closed and stopped.transport is None
    assert not listening.socket.closed
    assert engine.backlogged == set()


async def test_a_websocket_that_answers_is_pinged_again_and_a_silent_one_is_closed():
    rig = Rig(ping_interval=0.2, ping_timeout=0.4)
    try:
        answering = Peer(reads=True, pongs=True)
        alive = await rig.websocket(answering, "alive")
        silent = await rig.websocket(Peer(reads=True), "silent")
        # The first PING of each goes out a ping interval after this, as at a handshake.
        for session in (alive.socket, silent.socket):
            session.last_ping = 1.0
            session.schedule_ping()
        for _ in range(300):
            if answering.pinged >= 3 and silent.socket.closed:
                break
            await asyncio.sleep(0.02)
        assert answering.pinged >= 3 and not alive.socket.closed
        assert silent.socket.closed
        assert len(rig.eio.pings.pings) == 1  # the answering one's next PING
    finally:
        await rig.close()


def test_the_authentication_timeout_returns_each_session_once_and_only_open_ones():
    guards = Guards(Settings(socket_auth_timeout=10))
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    for sid in ("a", "b", "c"):
        assert guards.admit_connection(sid, environ) is None
    guards.closed("b")
    later = time.monotonic() + 11
    assert guards.expired(later) == ["a", "c"]
    # Decided once (closed, or authenticated in time): not looked at every second after.
    assert guards.expired(later + 1) == []
    assert guards.expired(time.monotonic()) == []


class Walks(dict[str, Any]):
    """A worker's connections by sid, counting the walks over all of them."""

    walks = 0

    def values(self) -> Any:
        self.walks += 1
        return super().values()


class Recording(Credentials):
    def __init__(self) -> None:
        super().__init__(cast(Any, None), cast(Any, None))
        self.dropped: list[tuple[str, str]] = []

    async def drop(self, sid: str, reason: str, code: str) -> None:
        self.dropped.append((sid, reason))


class Conn:
    def __init__(self, sid: str, expires_at: float) -> None:
        self.sid = sid
        self.principal = Principal(
            role="customer", subject=uuid.uuid4(), expires_at=int(expires_at)
        )


@pytest.fixture
def credentials() -> Iterator[Recording]:
    yield Recording()


async def test_the_credential_sweep_walks_the_sockets_only_once_a_token_expired(
    credentials: Recording,
):
    connections = Walks()
    for i in range(3):
        conn = connections[f"long{i}"] = Conn(f"long{i}", time.time() + 3600)
        credentials.watch(conn)
    for _ in range(3):
        await credentials.sweep(connections)
    assert connections.walks == 0 and credentials.dropped == []
    # Connected later with a token that has already run out: found at the next sweep.
    short = connections["short"] = Conn("short", time.time() - 1)
    credentials.watch(short)
    await credentials.sweep(connections)
    assert credentials.dropped == [("short", "token_expired")]
    del connections["short"]
    credentials.forget("short")
    await credentials.sweep(connections)
    await credentials.sweep(connections)
    assert connections.walks == 1
