"""The Socket.IO server on the Sanic app, and the broadcaster the domain emits through.

Mounted with python-socketio's native Sanic mode (`async_mode="sanic"`, `attach`) so it
runs under Sanic's own multi-worker server and its listeners; the ASGI route would need a
second server (uvicorn) that the stack does not include. Cross-worker emits go through
our `RoomChannelManager` (a Redis channel per room, manager.py); without REDIS_URL the
in-process manager serves the single worker.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from sanic import Sanic
from sanic_ext.extensions.openapi import openapi

from app.config import Settings
from app.realtime.admission import AdmitAfterConnect
from app.realtime.affinity import AffinitySocketIO, Relay
from app.realtime.codec import JsonCodec
from app.realtime.engine import SocketIO
from app.realtime.guards import Guards
from app.realtime.manager import RoomChannelManager

PATH = "socket.io"
PING_INTERVAL = 25
PING_TIMEOUT = 20

log = logging.getLogger(__name__)


class SocketBroadcaster:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def emit(self, event: str, data: Any, rooms: list[str], skip: str | None = None) -> None:
        # A list of rooms is delivered once per client even if it is in several.
        await self._sio.emit(event, data, to=rooms, skip_sid=skip)


def channel_name(settings: Settings) -> str:
    """The Socket.IO control channel; every room channel is derived from it
    (manager.room_channel). The one place that names Socket.IO's Redis channels."""
    return f"{settings.pubsub_prefix}-socketio"


def create_server(settings: Settings) -> socketio.AsyncServer:
    manager = (
        RoomChannelManager(
            settings.redis_url,
            channel_name(settings),
            stats_key=f"{settings.redis_namespace}:socketio:counters",
        )
        if settings.redis_url
        else AdmitAfterConnect()
    )
    # With Redis, polling sessions may be served by any worker (see affinity.py).
    server_class = AffinitySocketIO if settings.redis_url else SocketIO
    server = server_class(
        async_mode="sanic",
        client_manager=manager,
        json=JsonCodec,
        # CORS is answered by sanic-ext for every route, this one included.
        cors_allowed_origins=[],
        max_http_buffer_size=settings.max_body_bytes,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        logger=False,
        engineio_logger=False,
    )
    server.install_guards(Guards(settings))
    return server


def mount(app: Sanic, sio: socketio.AsyncServer) -> None:
    # Engine.IO pings every client itself; Sanic's own websocket keepalive would add a
    # second ping and one more task per idle connection.
    app.config.WEBSOCKET_PING_INTERVAL = None
    sio.attach(app, socketio_path=PATH)
    # Engine.IO's endpoint is a protocol, not a REST route: the README documents it.
    for route in app.router.routes:
        if route.path.strip("/").startswith(PATH.strip("/")):
            openapi.exclude()(route.handler)


def relay_for(sio: socketio.AsyncServer, settings: Settings) -> Relay | None:
    """The cross-worker polling relay, when there is Redis to relay through."""
    if not isinstance(sio, AffinitySocketIO):
        return None
    return Relay(
        sio.eio,
        settings.redis_url,
        # Its channels carry the Redis db too: pub/sub does not separate databases.
        settings.pubsub_prefix,
        timeout=settings.relay_timeout,
        max_in_flight=settings.relay_max_in_flight,
    )
