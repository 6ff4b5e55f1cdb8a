"""python-engineio's server with the fixes every worker of ours needs (their private
names are declared in app/hooks.py, checked at start-up).

- A long-polling client that says goodbye is answered at once. On a client's CLOSE
  packet Engine.IO closes the session without answering the client's pending GET, which
  then hangs until the ping timeout (~30 s): clients that wait for it on disconnect
  (python-socketio's, for one) took that long to leave. A NOOP ends that GET.
- Shutdown closes every session and leaves no ping timers behind. A long-polling client's
  pending GET held Sanic's stop until its graceful timeout (15 s).
- Idle sessions cost little (docs/idle-memory.md): websockets run on the lean transport of
  `app/realtime/websocket.py`, and pings come from one shared timer (`pings.py`) instead
  of a sleeping task per session and a service task walking them all.
- A packet for a websocket session is written at once (`send_now`): python-engineio's
  `send_packet` is a coroutine, so a room's emit became a task per recipient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import engineio
from engineio import packet

from app.realtime import websocket
from app.realtime.guards import GuardedEngine, GuardedServer
from app.realtime.pings import PingWheel

# The coroutine AsyncSocket.schedule_ping starts a task for (declared in app/hooks.py).
PING_TASK = "_send_ping"


class EngineIO(GuardedEngine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The ping wheel finds the sessions that stopped answering.
        kwargs["monitor_clients"] = False
        super().__init__(*args, **kwargs)
        self.pings = PingWheel(self)
        # A per-server copy: the driver's dict is shared module state.
        self._async = websocket.driver(self._async)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        result = await super()._trigger_event(event, *args, **kwargs)
        if event == "disconnect" and args[1:2] == (self.reason.CLIENT_DISCONNECT,):
            socket = self.sockets.get(args[0])
            if socket is not None and not socket.upgraded:
                socket.queue.put_nowait(packet.Packet(packet.NOOP))
        return result

    def send_now(self, sid: str, pkt: packet.Packet) -> bool:
        """Write `pkt` to an open websocket session without a coroutine, as `send_packet`
        would; False where only that coroutine can send: a polling or upgrading session,
        an unknown or closed one, or one whose client missed its PONG (the coroutine
        closes it)."""
        socket = self.sockets.get(sid)
        if not isinstance(socket, websocket.LeanSocket) or socket.closed:
            return False
        ws = socket.ws
        if ws is None or not socket.upgraded:
            return False
        last_ping = socket.last_ping
        if last_ping and time.time() - last_ping > self.ping_timeout:
            return False
        ws.send_packet(pkt)
        return True

    async def send_packet(self, sid: str, pkt: packet.Packet) -> None:
        if not self.send_now(sid, pkt):
            await super().send_packet(sid, pkt)

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(target, "__name__", "") == PING_TASK:
            # AsyncSocket.schedule_ping: the wheel pings instead of a task per session.
            self.pings.schedule(target.__self__)  # type: ignore[attr-defined]
            return None
        return super().start_background_task(target, *args, **kwargs)

    async def shutdown(self) -> None:
        # Every session ends with a CLOSE packet: a long-poll GET waiting for packets is
        # answered (Sanic would otherwise hold the stop for it), and clients reconnect,
        # to another worker. All at once: each close runs the disconnect handlers, and
        # thousands in a row took longer than a platform's kill window. The ping timer
        # is cancelled even if the stop cuts this short.
        try:
            sockets = list(self.sockets.values())
            await asyncio.gather(
                *(s.close(wait=False, reason=self.reason.SERVER_DISCONNECT) for s in sockets),
                return_exceptions=True,
            )
            await super().shutdown()
        finally:
            self.pings.cancel()


class SocketIO(GuardedServer):
    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return EngineIO
