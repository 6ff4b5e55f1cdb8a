"""Socket.IO event adapters: parse, authorise, call the domain, acknowledge.

Every client event is answered with `{ok: true, …}` or `{ok: false, error: {code, message,
retryable}}`; a malformed payload gets `ok: false` and never drops the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec
import socketio

from app import contract, metrics
from app.auth import Principal, require_session_access
from app.broadcast import ADMINS_ROOM, session_of_room, session_room
from app.client_errors import to_api_error
from app.context import Services
from app.domain import availability, catchup, messages, presence, routing, team
from app.errors import AuthRequired, NotConnected, ShuttingDown, Unauthorized
from app.models import (
    Join,
    Joined,
    Leave,
    Left,
    LegacyError,
    NewMessage,
    Out,
    Read,
    ReadMark,
    Rejoin,
    Sent,
    TypingChange,
    TypingEvent,
    as_uuid,
)
from app.outage import REDIS
from app.realtime import testpoints
from app.realtime.credentials import SWEEP_SECONDS, Credentials
from app.realtime.guards import error_ack
from app.realtime.manager import RoomChannelManager
from app.revocation import Revocation

log = logging.getLogger(__name__)
# Customer connections kept alive per Redis pipeline by the presence heartbeat.
HEARTBEAT_BATCH = 500

Handler = Callable[["Connection", Any], Awaitable[Out]]


@dataclass
class Connection:
    sid: str
    principal: Principal
    # (session id, side) pairs this connection said it is typing in.
    typing: set[tuple[str, str]] = field(default_factory=set)


class Realtime:
    """The event handlers of one worker, bound to its Socket.IO server and services."""

    def __init__(self, sio: socketio.AsyncServer, ctx: Services) -> None:
        self.sio = sio
        self.ctx = ctx
        self.connections: dict[str, Connection] = {}
        # Shutdown: refuse new events, let those under way finish and ack.
        self.closing = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._join_pause = testpoints.join_pause(ctx.settings)
        self._connect_pause = testpoints.connect_pause(ctx.settings)
        self.credentials = Credentials(sio, ctx)
        ctx.revocations.on(self.revoked)
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        self._on("join_session", self.join_session)
        self._on("leave_session", self.leave_session)
        self._on("send_message", self.send_message, legacy_error=True)
        self._on("typing", self.typing)
        self._on("mark_read", self.mark_read)
        if isinstance(sio.manager, RoomChannelManager):
            sio.manager.on_resubscribed = self.rejoin_notice

    def _on(self, event: str, handler: Handler, legacy_error: bool = False) -> None:
        async def acked(sid: str, *args: Any) -> dict[str, Any]:
            conn = self.connections.get(sid)
            self._busy += 1
            self._idle.clear()
            try:
                if conn is None:
                    raise NotConnected()
                if self.closing:
                    raise ShuttingDown()
                # Expired, revoked or deactivated since connect: refused, then disconnected.
                conn.principal = await self.credentials.current(conn)
                out = await handler(conn, args[0] if args else None)
                # Fields left unset (a customer's ack has no notes) are left out.
                fields = msgspec.structs.asdict(out)
                answer = {"ok": True, **{k: v for k, v in fields.items() if v is not msgspec.UNSET}}
                metrics.EVENTS.labels(event, "ok").inc()
                return answer
            except Exception as exc:
                error = to_api_error(exc)
                metrics.EVENTS.labels(event, error.code).inc()
                if legacy_error:
                    # Clients written for the original listen for 'error', not acks.
                    await self.sio.emit("error", LegacyError(message=error.message), to=sid)
                return error_ack(error)
            finally:
                self._busy -= 1
                if self._busy == 0:
                    self._idle.set()

        self.sio.on(event, acked)

    @property
    def busy(self) -> int:
        """Events under way now (what a stop waits for)."""
        return self._busy

    async def drain(self, grace: float) -> None:
        """Stop taking events and wait (up to `grace` seconds) for those under way to ack."""
        self.closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            token = (parse_qs(environ.get("QUERY_STRING", "")).get("token") or [None])[0]
        if not token or not isinstance(token, str):
            raise socketio.exceptions.ConnectionRefusedError(
                "Authentication required: connect with auth: {token}", {"code": AuthRequired.code}
            )
        try:
            principal = await self.ctx.accounts.check(self.ctx.tokens.check(token))
        except Unauthorized as exc:
            raise _refused(exc) from None
        conn = self.connections[sid] = Connection(sid, principal)
        self.credentials.watch(conn)
        metrics.SOCKETS.labels(principal.role).inc()
        if principal.is_admin:
            # Entered on the CONNECT answer: no inbox event may come before it.
            await self.sio.manager.enter_room_on_connect(sid, "/", ADMINS_ROOM)
            with contextlib.suppress(Exception):
                await team.staff_online(self.ctx, principal.subject, sid)
            try:
                if await availability.socket_up(self.ctx, principal.subject, sid):
                    await routing.agent_connected(self.ctx, principal.subject)
            except Exception as exc:  # the sweep routes what this could not
                log.warning("routing after a staff connect failed: %r", exc)
            if self._connect_pause:
                await asyncio.sleep(self._connect_pause)
            try:
                await self.credentials.admitted(conn)
            except Unauthorized as exc:
                await self.disconnect(sid)
                raise _refused(exc) from None
        else:
            with contextlib.suppress(Exception):
                await presence.customer_online(self.ctx, principal.subject, sid)

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.credentials.forget(sid)
        metrics.SOCKETS.labels(conn.principal.role).dec()
        try:
            await presence.clear_typing_of(self.ctx, sid, sorted(conn.typing))
            if conn.principal.is_admin:
                await team.staff_offline(self.ctx, conn.principal.subject, sid)
                await availability.socket_down(self.ctx, conn.principal.subject, sid)
            else:
                await presence.customer_offline(self.ctx, conn.principal.subject, sid)
        except Exception as exc:  # state store down: TTLs clean up instead
            REDIS.failed("disconnect cleanup", exc)

    async def revoked(self, revocation: Revocation) -> None:
        await self.credentials.revoked(revocation, self.connections.values())

    async def join_session(self, conn: Connection, data: Any) -> Joined:
        join = contract.read(Join, data)
        session_id = join.sessionId
        # Room first, history second: a message committed in between is then in the ack,
        # live, or both (clients drop a repeated seq), never in neither. Access is checked
        # before entering; a join that then fails (unknown session, database away) leaves.
        require_session_access(conn.principal, session_id)
        room = session_room(session_id)
        await self.sio.enter_room(conn.sid, room)
        try:
            if self._join_pause:
                await asyncio.sleep(self._join_pause)
            return await catchup.join(
                self.ctx, conn.principal, session_id, join.after, join.notesAfter
            )
        except BaseException:
            await self.sio.leave_room(conn.sid, room)
            raise

    async def rejoin_notice(self, namespace: str, rooms: list[str]) -> None:
        """After Redis came back, tell this worker's clients that live events may have
        been missed: `rejoin {sessionId}` to each session room (join again with `after`),
        `rejoin {sessionId: null}` to staff (reload the inbox)."""
        for room in rooms:
            session_id = session_of_room(room)
            if session_id is None and room != ADMINS_ROOM:
                continue
            await self.sio.emit(
                "rejoin",
                Rejoin(sessionId=None if session_id is None else as_uuid(session_id)),
                to=room,
                namespace=namespace,
                ignore_queue=True,
            )

    async def leave_session(self, conn: Connection, data: Any) -> Left:
        leave = contract.read(Leave, data)
        await self.sio.leave_room(conn.sid, session_room(leave.sessionId))
        return Left(sessionId=leave.sessionId)

    async def send_message(self, conn: Connection, data: Any) -> Sent:
        send = contract.read(NewMessage, data)
        message, created = await messages.post(self.ctx, conn.principal, send)
        return Sent(message=message, created=created)

    async def typing(self, conn: Connection, data: Any) -> TypingEvent:
        change = contract.read(TypingChange, data)
        event = await presence.set_typing(
            self.ctx,
            conn.principal,
            session_id=change.sessionId,
            is_typing=change.isTyping,
            claimed_side=change.userType,
            connection=conn.sid,
        )
        entry = (str(change.sessionId), event.userType)
        if change.isTyping:
            conn.typing.add(entry)
        else:
            conn.typing.discard(entry)
        return event

    async def mark_read(self, conn: Connection, data: Any) -> Read:
        mark = contract.read(ReadMark, data)
        return Read(message=await messages.mark_read(self.ctx, conn.principal, mark.messageId))

    async def run_background(self) -> None:
        """Per worker: sweep expired typing and presence (any worker may announce any
        session's) and keep this worker's customers' presence entries alive."""
        interval = min(0.5, self.ctx.settings.typing_ttl / 4)
        beat_every = max(1, int(self.ctx.settings.presence_ttl / 3 / interval))
        staff_beat_every = max(
            1, int(availability.heartbeat_every(self.ctx.settings.availability_grace) / interval)
        )
        credentials_every = max(1, int(SWEEP_SECONDS / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            tick += 1
            try:
                if tick % credentials_every == 0:
                    await self.credentials.sweep(self.connections)
                await presence.sweep(self.ctx)
                if tick % staff_beat_every == 0:
                    await availability.heartbeat(self.ctx, self._staff_sockets())
                await self._route()
                if tick % beat_every == 0:
                    await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: try again next tick
                REDIS.failed("typing/presence sweep", exc)
            else:
                REDIS.succeeded()

    def _staff_sockets(self) -> list[tuple[uuid.UUID, str]]:
        """(agent, sid) of this worker's staff sockets, found without walking every socket
        (a worker's sockets are mostly customers')."""
        out = []
        for sid in list(self.credentials.staff):
            conn = self.connections.get(sid)
            if conn is not None and conn.principal.is_admin:
                out.append((conn.principal.subject, sid))
        return out

    async def _route(self) -> None:
        """Routing's sweep (unavailable owners, the backlog): a database failure is
        logged and retried next tick, without stopping the presence sweep."""
        try:
            await routing.sweep(self.ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("routing sweep failed: %r", exc)

    async def _beat(self) -> None:
        """Keep this worker's sockets' presence alive: staff one by one, customers a
        batch per Redis call. A batch's entries are built when it is sent, so none
        outlives its call (a list of every customer kept across the beat's awaits grew
        the collector's oldest generation by one tuple per idle connection every beat)."""
        conns = list(self.connections.values())
        for at in range(0, len(conns), HEARTBEAT_BATCH):
            customers = []
            for conn in conns[at : at + HEARTBEAT_BATCH]:
                p = conn.principal
                if p.is_admin:
                    await team.staff_online(self.ctx, p.subject, conn.sid)
                else:
                    customers.append((p.subject, conn.sid))
            await presence.customer_heartbeats(self.ctx, customers)


def _refused(exc: Unauthorized) -> socketio.exceptions.ConnectionRefusedError:
    """A connection refused for `exc`: its message, and its code as `data.code`."""
    return socketio.exceptions.ConnectionRefusedError(exc.message, {"code": exc.code})
