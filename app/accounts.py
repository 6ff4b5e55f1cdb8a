"""Does this staff token still act for someone: account exists, is active, sign-in live.

Every staff REST request and socket event goes through `AccountGuard.check`. A token is
only a signature; the account behind it can be deleted, deactivated or signed out since.
Each worker caches the answer per sign-in for at most AUTH_CACHE_MS (default 1000 ms),
which is the bound on staleness: a change made any way at all (even a row deleted in SQL)
is honoured on every worker within it. Changes made through the API are faster still:
they publish a `Revocation` (app/revocation.py) that drops the cached answer on every
worker at once and disconnects that sign-in's sockets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app import db
from app.auth import Principal
from app.errors import DeactivatedSignIn, InvalidToken, TokenRevoked, Unauthorized
from app.models import StaffRole
from app.revocation import Revocation

# How often a sign-in's lastSeenAt is written at most (it is a "recently" hint, not a log).
LAST_SEEN_EVERY = dt.timedelta(seconds=60)
# Past this many cached sign-ins, expired entries are dropped.
PRUNE_ABOVE = 10_000

_LOOKUP = (
    "SELECT a.id AS admin_id, a.role, a.full_name, a.deactivated_at, s.revoked_at,"
    " s.last_seen_at FROM sign_in s JOIN admin a ON a.id = s.admin_id WHERE s.id = {}"
)


@dataclass(frozen=True)
class _Entry:
    until: float
    # None when the token is good; otherwise the 401 to answer.
    problem: tuple[type[Unauthorized], str] | None
    role: StaffRole | None = None
    name: str | None = None
    subject: uuid.UUID | None = None


GONE: tuple[type[Unauthorized], str] = (InvalidToken, "Invalid token")
REVOKED: tuple[type[Unauthorized], str] = (TokenRevoked, "This sign-in has ended: log in again")
DEACTIVATED: tuple[type[Unauthorized], str] = (
    DeactivatedSignIn,
    DeactivatedSignIn.default_message,
)


class AccountGuard:
    def __init__(self, cache_ms: int) -> None:
        self._ttl = cache_ms / 1000
        self._entries: dict[uuid.UUID, _Entry] = {}
        # One lookup per sign-in at a time: when an entry expires under load, the
        # requests that find it expired share one query instead of each sending one.
        self._loading: dict[uuid.UUID, asyncio.Future[_Entry]] = {}
        # Bumped by every revocation: a lookup that started before one is not cached.
        self._generation = 0

    async def check(self, principal: Principal) -> Principal:
        """The principal with its account's role and name now; 401 when it no longer
        acts for an active account. Customers (and the CLI's operator) pass unchanged."""
        if principal.role != "admin" or principal.sign_in is None:
            return principal
        entry = self._entries.get(principal.sign_in)
        if entry is None or entry.until <= time.monotonic():
            entry = await self._load_once(principal)
        if entry.problem is None and entry.subject != principal.subject:
            # A sign-in names one account; a token pairing it with another is no credential.
            entry = _Entry(entry.until, GONE)
        if entry.problem is not None:
            error, message = entry.problem
            raise error(message)
        if principal.staff_role == entry.role and principal.name == entry.name:
            return principal  # every event of a socket checks it: no copy when unchanged
        return dataclasses.replace(principal, staff_role=entry.role, name=entry.name)

    async def _load_once(self, principal: Principal) -> _Entry:
        """The lookup runs as its own task, so a request that goes away (cancelled) does
        not cancel it for the others waiting on it."""
        assert principal.sign_in is not None
        task = self._loading.get(principal.sign_in)
        if task is None:
            task = asyncio.ensure_future(self._load(principal))
            self._loading[principal.sign_in] = task
            task.add_done_callback(lambda done: self._finished(principal.sign_in, done))
        return await asyncio.shield(task)

    def _finished(self, sign_in: uuid.UUID | None, task: asyncio.Future[_Entry]) -> None:
        if sign_in is not None and self._loading.get(sign_in) is task:
            del self._loading[sign_in]
        if not task.cancelled():
            # Retrieved here too, so a failure nobody waited for is not logged as lost.
            task.exception()

    async def _load(self, principal: Principal) -> _Entry:
        assert principal.sign_in is not None
        generation = self._generation
        row = await self._lookup(principal.sign_in)
        until = time.monotonic() + self._ttl
        if row is None or str(row["admin_id"]) != str(principal.subject):
            entry = _Entry(until, GONE)
        elif row["deactivated_at"] is not None:
            entry = _Entry(until, DEACTIVATED)
        elif row["revoked_at"] is not None:
            entry = _Entry(until, REVOKED)
        else:
            role: StaffRole = "admin" if row["role"] == "admin" else "agent"
            entry = _Entry(until, None, role, row["full_name"], principal.subject)
            await _touch(principal, row["last_seen_at"])
        if generation == self._generation:
            if len(self._entries) > PRUNE_ABOVE:
                self._prune()
            self._entries[principal.sign_in] = entry
        return entry

    async def _lookup(self, sign_in: uuid.UUID) -> Mapping[str, Any] | None:
        return await db.fetch_one_direct(_LOOKUP, sign_in)

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if e.until <= now]:
            del self._entries[key]

    async def forget(self, revocation: Revocation) -> None:
        """A revocation listener: the next check of anything it covers asks the database."""
        self._generation += 1
        # Lookups under way may have read the row before the change: later checks wait
        # for a fresh one instead.
        self._loading.clear()
        if revocation.account is None and revocation.sign_in is not None:
            self._entries.pop(revocation.sign_in, None)
            return
        # Entries do not name their account: drop them all (revocations are rare).
        self._entries.clear()


async def _touch(principal: Principal, last_seen: object) -> None:
    now = dt.datetime.now(dt.UTC)
    if isinstance(last_seen, str):
        last_seen = dt.datetime.fromisoformat(last_seen)
    if isinstance(last_seen, dt.datetime):
        if last_seen.tzinfo is None:
            last_seen = last_seen.replace(tzinfo=dt.UTC)
        if now - last_seen < LAST_SEEN_EVERY:
            return
    await db.fetch("UPDATE sign_in SET last_seen_at = {} WHERE id = {}", now, principal.sign_in)
    await db.fetch("UPDATE admin SET last_seen_at = {} WHERE id = {}", now, principal.subject)
