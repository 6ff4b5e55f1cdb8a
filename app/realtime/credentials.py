"""Sockets whose credentials ended: expired tokens, revoked sign-ins, deactivated accounts.

A socket authenticates once, at connect, but its token can expire and its sign-in can be
revoked while it stays open. Three things keep it honest on this worker:
- every event re-checks the token's expiry and, for staff, the account (cached per worker,
  app/accounts.py), so it is refused at once;
- a revocation published by any worker (app/revocation.py) disconnects this worker's
  sockets of it right away, after a `session_revoked {reason, code}` event;
- a sweep every SWEEP_SECONDS disconnects the sockets whose token expired, and re-checks
  the staff sockets (catching changes that bypassed the API, within the cache bound).

The sweep costs what it finds, not what is connected: it looks at every socket only once
the earliest expiry among them has passed (customer tokens last days, so that is rare),
and re-checks the staff sockets it was told of (`watch`, kept in `staff`). Walking all of
them every second was a sixth of an idle worker's CPU at 20,000 customer websockets
(docs/idle-memory.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

import socketio

from app.auth import Principal
from app.context import Services
from app.errors import DeactivatedSignIn, TokenExpired, TokenRevoked, Unauthorized
from app.models import SessionRevoked
from app.revocation import Revocation

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
EXPIRED = TokenExpired()


class Connected(Protocol):
    sid: str
    principal: Principal


class Credentials:
    def __init__(self, sio: socketio.AsyncServer, ctx: Services) -> None:
        self.sio = sio
        self.ctx = ctx
        self._dropping: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # No watched socket's token expires before this (Unix time; a lower bound: a
        # socket that left may have set it).
        self._next_expiry = float("inf")
        # This worker's staff sockets by sid: re-checked every sweep, and what the staff
        # availability heartbeat walks instead of every socket.
        self.staff: set[str] = set()

    def watch(self, conn: Connected) -> None:
        """A socket connected: its expiry and, for staff, its account are swept from now."""
        p = conn.principal
        if p.expires_at:
            self._next_expiry = min(self._next_expiry, p.expires_at)
        if p.is_admin:
            self.staff.add(conn.sid)

    def forget(self, sid: str) -> None:
        self.staff.discard(sid)

    async def current(self, conn: Connected) -> Principal:
        """The connection's principal as it stands now, or Unauthorized (and the socket
        is being disconnected)."""
        principal = conn.principal
        if principal.expires_at and time.time() >= principal.expires_at:
            self.drop_soon(conn.sid, EXPIRED.code, EXPIRED.code)
            raise EXPIRED
        try:
            return await self.ctx.accounts.check(principal)
        except Unauthorized as exc:
            self.drop_soon(conn.sid, _reason(exc), exc.code)
            raise

    async def admitted(self, conn: Connected) -> None:
        """The last step of a staff socket's connect handler. A revocation that came while
        the handler awaited found no socket to drop (python-socketio ignores a disconnect
        before the CONNECT answer), so the account is checked again: a cache hit unless
        something was revoked meanwhile. Unauthorized means refuse the connection."""
        conn.principal = await self.ctx.accounts.check(conn.principal)

    async def revoked(self, revocation: Revocation, connections: Iterable[Connected]) -> None:
        if not revocation.disconnect:
            return
        for conn in list(connections):
            p = conn.principal
            if p.is_admin and revocation.covers(p.subject, p.sign_in):
                await self.drop(conn.sid, revocation.reason, TokenRevoked.code)

    async def sweep(self, connections: Mapping[str, Connected]) -> None:
        """Drop the sockets (of `connections`, this worker's by sid) whose token expired
        and the staff ones whose account no longer lets them in."""
        now = time.time()
        if now >= self._next_expiry:
            self._next_expiry = float("inf")
            for conn in list(connections.values()):
                expires_at = conn.principal.expires_at
                if not expires_at:
                    continue
                if now >= expires_at:
                    await self.drop(conn.sid, EXPIRED.code, EXPIRED.code)
                else:
                    self._next_expiry = min(self._next_expiry, expires_at)
        for sid in list(self.staff):
            staffer = connections.get(sid)
            if staffer is None:
                self.staff.discard(sid)
                continue
            p = staffer.principal
            if not p.is_admin or p.sign_in is None:
                continue
            try:
                await self.ctx.accounts.check(p)
            except Unauthorized as exc:
                await self.drop(sid, _reason(exc), exc.code)
            except Exception as exc:
                # The database is away: nobody can be checked, so nobody is dropped
                # (events are refused with 503 meanwhile); try again next sweep.
                log.debug("credential sweep stopped: %r", exc)
                return

    def drop_soon(self, sid: str, reason: str, code: str) -> None:
        """From inside an event handler: its ack goes first, then the disconnect."""
        asyncio.get_running_loop().call_later(0.05, self._spawn, sid, reason, code)

    def _spawn(self, sid: str, reason: str, code: str) -> None:
        task = asyncio.ensure_future(self.drop(sid, reason, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drop(self, sid: str, reason: str, code: str) -> None:
        """Tell the client why, then disconnect it (once, however many paths ask)."""
        if sid in self._dropping:
            return
        self._dropping.add(sid)
        try:
            # Only this worker holds the socket: no need to go through Redis.
            await self.sio.emit(
                "session_revoked",
                SessionRevoked(reason=reason, code=code),
                to=sid,
                ignore_queue=True,
            )
            await self.sio.disconnect(sid)
        except Exception as exc:
            log.debug("disconnecting %s after %s failed: %r", sid, reason, exc)
        finally:
            self._dropping.discard(sid)


def _reason(exc: Unauthorized) -> str:
    """The `session_revoked` reason for what a check found: a deactivation reads the same
    whether it was announced (app/domain/team.py) or found by a check."""
    return "deactivated" if isinstance(exc, DeactivatedSignIn) else "revoked"
