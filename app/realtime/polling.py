"""Long-polling clients that say goodbye are answered at once.

When a polling client sends its CLOSE packet, Engine.IO closes the session without
answering the client's pending GET, which then hangs until the ping timeout (~30 s):
clients that wait for it on disconnect (python-socketio's, for one) take that long to
leave. A NOOP on the closing session's queue ends that GET straight away.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio
from engineio import packet


class PromptCloseEngineIO(engineio.AsyncServer):
    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        result = await super()._trigger_event(event, *args, **kwargs)
        if event == "disconnect" and args[1:2] == (self.reason.CLIENT_DISCONNECT,):
            socket = self.sockets.get(args[0])
            if socket is not None and not socket.upgraded:
                socket.queue.put_nowait(packet.Packet(packet.NOOP))
        return result


class PromptCloseSocketIO(socketio.AsyncServer):
    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return PromptCloseEngineIO
