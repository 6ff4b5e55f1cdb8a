"""Idle connections cost little (issue 16): websockets on a transport of our own
(app/realtime/websocket.py) and every session's pings on one timer (pings.py).

The websocket is spoken by hand (tests/raw_socket.py) to a live server, including the
frames no client library sends; the ping timer runs in-process on python-engineio's own
sessions with a short interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import orjson
import pytest
from engineio import async_socket, packet

from app.realtime.admission import AdmitAfterConnect
from app.realtime.engine import EngineIO
from app.realtime.manager import RoomChannelManager
from app.realtime.pings import TICK
from app.realtime.websocket import parse
from bench.raw_socket import RawSocket
from tests.support import Factory, LiveServer
from tests.test_idle_cpu import Peer, Rig

TEXT, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA


@pytest.fixture
async def raw(server: LiveServer) -> AsyncIterator[RawSocket]:
    sock = await RawSocket.open(server.port)
    assert sock.status == 101
    yield sock
    with contextlib.suppress(Exception):
        await sock.close()


async def joined(raw: RawSocket, make: Factory) -> dict[str, Any]:
    session = await make.session()
    assert (await raw.authenticate(session["customerToken"]) or "").startswith("40")
    return session


def close_code(frame: tuple[int, bytes] | None) -> int | None:
    if frame is None or frame[0] != CLOSE:
        return None
    return int(struct.unpack("!H", frame[1][:2])[0])


async def next_control(raw: RawSocket) -> tuple[int, bytes] | None:
    """The next frame that is not an Engine.IO packet (a pong or a close)."""
    while True:
        frame = await raw.read_frame()
        if frame is None or frame[0] != TEXT:
            return frame


async def test_a_websocket_outlives_the_request_that_opened_it(raw: RawSocket, make: Factory):
    session = await joined(raw, make)
    first = await raw.call(1, "join_session", session["id"])
    await asyncio.sleep(1.5)
    again = await raw.call(2, "join_session", session["id"])
    assert first["ok"] and again["ok"]


async def test_a_message_in_fragments_is_reassembled(raw: RawSocket, make: Factory):
    session = await joined(raw, make)
    text = ("421" + orjson.dumps(["join_session", session["id"]]).decode()).encode()
    await raw.send_frame(TEXT, text[:5], fin=False)
    await raw.send_frame(CONTINUATION, text[5:20], fin=False)
    await raw.send_frame(PING, b"between")  # control frames may come between fragments
    await raw.send_frame(CONTINUATION, text[20:])
    frames = [await raw.read_frame(), await raw.read_frame()]
    assert (PONG, b"between") in frames
    ack = next(f for f in frames if f is not None and f[0] == TEXT)
    assert ack[1].startswith(b"431") and orjson.loads(ack[1][3:])[0]["ok"]


async def test_a_client_ping_frame_is_answered_with_its_pong(raw: RawSocket):
    await raw.send_frame(PING, b"are you there")
    assert await next_control(raw) == (PONG, b"are you there")


async def test_a_close_frame_is_answered_and_the_connection_ends(raw: RawSocket):
    await raw.send_frame(CLOSE, struct.pack("!H", 1000))
    assert close_code(await next_control(raw)) == 1000
    assert await raw.closed_within(5)


async def test_an_unmasked_client_frame_closes_with_a_protocol_error(raw: RawSocket):
    await raw.send_frame(TEXT, b"2", masked=False)
    assert close_code(await next_control(raw)) == 1002
    assert await raw.closed_within(5)


async def test_a_frame_over_the_size_limit_closes_before_its_payload_is_read(
    raw: RawSocket,
):
    # The header alone announces 1 MiB (MAX_BODY_BYTES is 64 KiB): nothing is buffered.
    raw.writer.write(struct.pack("!BBQ", 0x80 | TEXT, 0x80 | 127, 1 << 20) + b"mask")
    await raw.writer.drain()
    assert close_code(await next_control(raw)) == 1009
    assert await raw.closed_within(5)


async def test_text_that_is_not_utf8_closes_with_1007(raw: RawSocket):
    await raw.send_frame(TEXT, b"42\xff\xfe")
    assert close_code(await next_control(raw)) == 1007


async def test_a_bad_handshake_is_refused_with_400(server: LiveServer):
    sock = await RawSocket.open(server.port, headers={"Sec-WebSocket-Version": "8"})
    try:
        assert sock.status == 400
    finally:
        await sock.close()


async def test_pings_of_many_sessions_share_one_task_and_silent_ones_are_closed():
    eio = EngineIO(async_mode="sanic", ping_interval=0.2, ping_timeout=0.5)
    before = len(asyncio.all_tasks())
    sessions = [async_socket.AsyncSocket(eio, f"sid{i}") for i in range(50)]
    for session in sessions:
        eio.sockets[session.sid] = session
        session.schedule_ping()
    # python-engineio starts one sleeping task per session for this.
    assert len(asyncio.all_tasks()) - before == 1
    pinged: list[int] = []

    async def answer(session: async_socket.AsyncSocket) -> None:
        """A client that answers every PING, as one on the wire would."""
        while True:
            pkt = await session.queue.get()
            if pkt is not None and pkt.packet_type == packet.PING:
                pinged.append(1)
                await session.receive(packet.Packet(packet.PONG))

    answering = asyncio.create_task(answer(sessions[0]))
    try:
        await asyncio.sleep(0.2 + 2 * TICK)
        assert all(packet.PING in [p.packet_type for p in s.queue._queue] for s in sessions[1:])
        await asyncio.sleep(0.5 + 4 * TICK)
        assert all(s.closed for s in sessions[1:])
        assert not sessions[0].closed and len(pinged) >= 2
        assert list(eio.sockets) == ["sid0"]
    finally:
        answering.cancel()
        await eio.pings.stop()


class Recorder(Peer):
    """A loopback peer that keeps every byte the server's side writes."""

    def __init__(self) -> None:
        super().__init__(reads=True)
        self.received = bytearray()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            self.received += chunk

    async def frames(self, count: int) -> list[tuple[int, bytes]]:
        """The first `count` frames received (small unmasked server frames)."""
        for _ in range(200):
            out: list[tuple[int, bytes]] = []
            at = 0
            while len(out) < count and at + 2 <= len(self.received):
                n = self.received[at + 1] & 0x7F
                out.append((self.received[at] & 0x0F, bytes(self.received[at + 2 : at + 2 + n])))
                at += 2 + n
            if len(out) == count:
                return out
            await asyncio.sleep(0.01)
        raise AssertionError(f"got {bytes(self.received)!r}")


async def test_frames_written_in_one_turn_leave_in_one_write_in_order():
    rig = Rig()
    try:
        peer = Recorder()
        ws = await rig.websocket(peer, "batched")
        for text in ("a", "b", "c"):
            ws.socket.write(packet.Packet(packet.MESSAGE, text))
        # Held until the end of this turn of the loop: no write per frame.
        assert ws.written == 0 and ws.out is not None and len(ws.out) == 3
        await asyncio.sleep(0)
        assert ws.out is None and ws.written == 3 * 4
        assert await peer.frames(3) == [(TEXT, b"4a"), (TEXT, b"4b"), (TEXT, b"4c")]
    finally:
        await rig.close()


async def test_frames_held_for_the_turn_go_before_a_close_frame():
    rig = Rig()
    try:
        peer = Recorder()
        ws = await rig.websocket(peer, "closing")
        ws.socket.write(packet.Packet(packet.MESSAGE, "last words"))
        ws.close(1000)
        frames = await peer.frames(2)
        assert frames[0] == (TEXT, b"4last words")
        assert frames[1] == (CLOSE, struct.pack("!H", 1000))
    finally:
        await rig.close()


@pytest.mark.parametrize(
    "text",
    [
        '42["e",{"a":1}]',
        '4212["send","x"]',
        '40{"token":"t"}',
        "41",
        "4hello",
        "2probe",
        "5",
        "6",
        "3",
        "4",
        '4{"a":1}',
    ],
)
def test_received_packets_parse_as_python_engineio_parses_them(text: str):
    ours, theirs = parse(text), packet.Packet(encoded_packet=text)
    assert (ours.packet_type, ours.data, ours.binary) == (
        theirs.packet_type,
        theirs.data,
        theirs.binary,
    )


class FailingTransport:
    """A transport whose write raises, as uvloop's does once its handle is closed."""

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation: the handler is closed")

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def test_one_websocket_whose_write_fails_does_not_hold_back_the_others():
    rig = Rig()
    try:
        peer = Recorder()
        failing = await rig.websocket(Recorder(), "failing")
        healthy = await rig.websocket(peer, "healthy")
        real = failing.transport
        failing.transport = cast(asyncio.Transport, FailingTransport())
        failing.socket.write(packet.Packet(packet.MESSAGE, "lost"))
        healthy.socket.write(packet.Packet(packet.MESSAGE, "first"))
        await asyncio.sleep(0)
        # The next turn's frames are flushed too: nothing was left marked as pending.
        failing.transport = real
        failing.socket.write(packet.Packet(packet.MESSAGE, "again"))
        healthy.socket.write(packet.Packet(packet.MESSAGE, "second"))
        await asyncio.sleep(0)
        assert failing.out is None and healthy.out is None
        assert await peer.frames(2) == [(TEXT, b"4first"), (TEXT, b"4second")]
    finally:
        await rig.close()


@contextlib.contextmanager
def tasks_started() -> Iterator[list[Any]]:
    """The coroutines wrapped in a task on this loop while the block runs."""
    loop = asyncio.get_running_loop()
    started: list[Any] = []

    def counting(lp: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        started.append(coro)
        return asyncio.Task(coro, loop=lp, **kw)

    loop.set_task_factory(counting)
    try:
        yield started
    finally:
        loop.set_task_factory(None)


async def test_a_room_emit_writes_to_its_websockets_without_a_task_per_recipient():
    rig = Rig(client_manager=AdmitAfterConnect())
    try:
        peers = [Recorder() for _ in range(3)]
        manager = rig.sio.manager
        for n, peer in enumerate(peers):
            ws = await rig.websocket(peer, f"eio{n}")
            sid = await manager.connect(ws.socket.sid, "/")
            await manager.enter_room(sid, "/", "session:1")
        with tasks_started() as started:
            await rig.sio.emit("new_message", {"seq": 1}, to="session:1")
        assert started == []
        for peer in peers:
            assert await peer.frames(1) == [(TEXT, b'42["new_message",{"seq":1}]')]
    finally:
        await rig.close()


async def test_an_event_from_another_worker_is_written_to_its_websockets_without_a_task():
    """The Redis listener forwards a published event in the same turn it reads it: a task
    per recipient, awaited, let it handle one published message per loop turn, so on a
    busy worker deliveries from other workers queued (2 workers did worse than 1)."""
    manager = RoomChannelManager("redis://127.0.0.1:6379/0", "helpline-test-unused")
    rig = Rig(client_manager=manager)
    try:
        peers = [Recorder() for _ in range(3)]
        sids = []
        for n, peer in enumerate(peers):
            ws = await rig.websocket(peer, f"eio{n}")
            sids.append(await manager.connect(ws.socket.sid, "/"))
        with tasks_started() as started:
            await manager._forward("/", b'["new_message",{"seq":1}]', sids)
        assert started == []
        for peer in peers:
            assert await peer.frames(1) == [(TEXT, b'42["new_message",{"seq":1}]')]
    finally:
        await rig.close()
