"""Rooms a socket enters once its Socket.IO CONNECT answer is on its way.

python-socketio sends a connection's CONNECT answer after the connect handler returns. A
room entered inside the handler (a staff socket's `admins`) lets an event for that room
reach the socket ahead of the answer, which the protocol has no place for:
socket.io-client v4 keeps such an event in its receive buffer and fires it just before
"connect" (so a listener added in the "connect" handler never hears it, and the console
hears of a customer before it knows it is connected); a client that keeps to the
protocol may drop it. So the handler asks for the room here, and the manager puts the
socket in it in `connect`, which python-socketio calls right after sending the answer.
What is slow about entering a room (a Redis subscription) is done before the answer, so a
client told it is connected is already subscribed; `connect` itself only adds the socket
to the local room table.

An emit writes to each recipient on a websocket at once (`EngineIO.send_now`, engine.py):
python-socketio's starts a task per recipient and waits for them all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet


def event_args(data: Any) -> list[Any]:
    """An emit's data as the Socket.IO event's arguments, as python-socketio builds them:
    a tuple is several arguments, None none."""
    return list(data) if isinstance(data, tuple) else [] if data is None else [data]


class AdmitAfterConnect(socketio.AsyncManager):
    """python-socketio's in-process manager, with rooms entered on the CONNECT answer
    (RoomChannelManager builds on it for the Redis channels)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connect: dict[tuple[str, str], list[str]] = {}

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if namespace not in self.rooms:
            return  # no socket ever connected to it here
        send_now = getattr(getattr(self.server, "eio", None), "send_now", None)
        if callback is not None or send_now is None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback
            )
            return
        args = event_args(data)
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        pkts = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        later = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            for pkt in pkts:
                if not send_now(eio_sid, pkt):
                    later.append(self.server.eio.send_packet(eio_sid, pkt))
        if later:
            # Polling sessions: their queue's coroutine, as upstream (whose tasks' errors
            # no one read either).
            await asyncio.gather(*later, return_exceptions=True)

    async def prepare_room(self, namespace: str, room: str) -> None:
        """Whatever entering `room` will need, done before the answer (nothing here)."""

    async def enter_room_on_connect(self, sid: str, namespace: str, room: str) -> None:
        """From a connect handler: `sid` enters `room` once its connection is answered."""
        await self.prepare_room(namespace, room)
        self._on_connect.setdefault((sid, namespace), []).append(room)

    async def connect(self, sid: str, namespace: str) -> Any:
        # python-socketio calls this right after the CONNECT answer is sent.
        answered = await super().connect(sid, namespace)
        for room in self._on_connect.pop((sid, namespace), []):
            await self.enter_room(sid, namespace, room)
        return answered

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        # A refused or vanished connection never enters what it asked for.
        self._on_connect.pop((sid, namespace), None)
        return await super().disconnect(sid, namespace, **kwargs)
