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
"""

from __future__ import annotations

import asyncio
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
