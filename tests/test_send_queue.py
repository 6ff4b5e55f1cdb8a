"""The byte count of an Engine.IO send queue: what a packet adds when queued is what its
frame takes back when the websocket writer sends it, so an idle client's pings leave no
residue that would make it look stalled (and be closed) once STALL_SECONDS pass."""

from __future__ import annotations

import time

from engineio import packet

from app.realtime import guards
from app.realtime.guards import SendQueue


async def _write_like_the_websocket_writer(queue: SendQueue) -> None:
    """python-engineio's writer: take what is queued, send each packet's encoded frame."""
    while not queue.empty():
        pkt = queue.get_nowait()
        queue.sent(len(pkt.encode()))


async def test_pings_and_messages_sent_over_a_websocket_leave_nothing_counted() -> None:
    queue = SendQueue(limit=1 << 20, on_full=lambda _: None)
    queue.counted_on_send = True
    for pkt in (
        packet.Packet(packet.PING),
        packet.Packet(packet.NOOP),
        packet.Packet(packet.MESSAGE, data='2["new_message",{"content":"héllo ✓"}]'),
        packet.Packet(packet.MESSAGE, data={"a": [1, 2]}),
    ):
        queue.put_nowait(pkt)
    assert queue.bytes > 0
    await _write_like_the_websocket_writer(queue)
    assert queue.bytes == 0


async def test_an_idle_client_that_took_its_pings_is_not_stalled() -> None:
    queue = SendQueue(limit=1 << 20, on_full=lambda _: None)
    queue.counted_on_send = True
    queue.put_nowait(packet.Packet(packet.PING))
    await _write_like_the_websocket_writer(queue)
    assert not queue.stalled(time.monotonic() + guards.STALL_SECONDS + 1)


async def test_a_long_polling_get_takes_back_what_was_queued() -> None:
    queue = SendQueue(limit=1 << 20, on_full=lambda _: None)
    queue.put_nowait(packet.Packet(packet.PING))
    queue.put_nowait(packet.Packet(packet.MESSAGE, data="40"))
    while not queue.empty():
        queue.get_nowait()
    assert queue.bytes == 0
