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
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from engineio import async_socket, packet

from app.realtime.engine import EngineIO
from app.realtime.pings import TICK
from bench.raw_socket import RawSocket
from tests.support import Factory, LiveServer

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
