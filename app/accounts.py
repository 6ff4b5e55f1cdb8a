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

import dataclasses
import datetime as dt
import time
import uuid
from dataclasses import dataclass

from app import db
from app.auth import Principal, StaffRole
from app.errors import Unauthorized
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
    problem: tuple[str, str] | None
    role: StaffRole | None = None
    name: str | None = None


GONE = ("Invalid token", "invalid_token")
REVOKED = ("This sign-in has ended: log in again", "token_revoked")
DEACTIVATED = ("This account is deactivated", "token_revoked")


class AccountGuard:
    def __init__(self, cache_ms: int) -> None:
        self._ttl = cache_ms / 1000
        self._entries: dict[uuid.UUID, _Entry] = {}
        # Bumped by every revocation: a lookup that started before one is not cached.
        self._generation = 0

    async def check(self, principal: Principal) -> Principal:
        """The principal with its account's role and name now; 401 when it no longer
        acts for an active account. Customers (and the CLI's operator) pass unchanged."""
        if principal.role != "admin" or principal.sign_in is None:
            return principal
        entry = self._entries.get(principal.sign_in)
        if entry is None or entry.until <= time.monotonic():
            entry = await self._load(principal)
        if entry.problem is not None:
            message, code = entry.problem
            raise Unauthorized(message, code=code)
        return dataclasses.replace(principal, staff_role=entry.role, name=entry.name)

    async def _load(self, principal: Principal) -> _Entry:
        assert principal.sign_in is not None
        generation = self._generation
        row = await db.fetch_one_direct(_LOOKUP, principal.sign_in)
        until = time.monotonic() + self._ttl
        if row is None or str(row["admin_id"]) != str(principal.subject):
            entry = _Entry(until, GONE)
        elif row["deactivated_at"] is not None:
            entry = _Entry(until, DEACTIVATED)
        elif row["revoked_at"] is not None:
            entry = _Entry(until, REVOKED)
        else:
            role: StaffRole = "admin" if row["role"] == "admin" else "agent"
            entry = _Entry(until, None, role, row["full_name"])
            await _touch(principal, row["last_seen_at"])
        if generation == self._generation:
            if len(self._entries) > PRUNE_ABOVE:
                self._prune()
            self._entries[principal.sign_in] = entry
        return entry

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if e.until <= now]:
            del self._entries[key]

    async def forget(self, revocation: Revocation) -> None:
        """A revocation listener: the next check of anything it covers asks the database."""
        self._generation += 1
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
