"""The per-worker account check's cache: bounded staleness, one lookup at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from app.accounts import AccountGuard
from app.auth import Principal
from app.revocation import Revocation


class CountingGuard(AccountGuard):
    """The real cache and coalescing, with the database lookup replaced by a counter
    (the lookup itself is covered against PostgreSQL by test_revocation.py)."""

    def __init__(self, cache_ms: int, account: uuid.UUID) -> None:
        super().__init__(cache_ms)
        self.account = account
        self.lookups = 0

    async def _lookup(self, sign_in: uuid.UUID) -> Mapping[str, Any] | None:
        self.lookups += 1
        await asyncio.sleep(0.05)
        return {
            "admin_id": self.account,
            "role": "agent",
            "full_name": "Ada",
            "deactivated_at": None,
            "revoked_at": None,
            "last_seen_at": dt.datetime.now(dt.UTC),
        }


def staff() -> Principal:
    return Principal(role="admin", subject=uuid.uuid4(), sign_in=uuid.uuid4())


def guard_for(principal: Principal, cache_ms: int) -> CountingGuard:
    return CountingGuard(cache_ms, principal.subject)


async def test_concurrent_checks_of_an_expired_entry_share_one_lookup():
    principal = staff()
    guard = guard_for(principal, 1000)
    checked = await asyncio.gather(*(guard.check(principal) for _ in range(32)))
    assert guard.lookups == 1
    assert {p.name for p in checked} == {"Ada"}


async def test_an_entry_is_looked_up_again_once_older_than_the_bound():
    principal = staff()
    guard = guard_for(principal, 100)
    await guard.check(principal)
    await guard.check(principal)
    assert guard.lookups == 1
    await asyncio.sleep(0.11)
    await guard.check(principal)
    assert guard.lookups == 2


async def test_a_revocation_drops_the_cached_answer_at_once():
    principal = staff()
    guard = guard_for(principal, 60_000)
    await guard.check(principal)
    await guard.forget(Revocation("logout", sign_in=principal.sign_in))
    await guard.check(principal)
    assert guard.lookups == 2


async def test_a_sign_in_paired_with_another_account_is_refused():
    principal = staff()
    guard = guard_for(principal, 1000)
    await guard.check(principal)
    other = Principal(role="admin", subject=uuid.uuid4(), sign_in=principal.sign_in)
    try:
        await guard.check(other)
    except Exception as exc:
        assert getattr(exc, "code", None) == "invalid_token"
    else:
        raise AssertionError("a sign-in of another account was accepted")


async def test_a_principal_already_up_to_date_is_returned_as_it_is():
    principal = staff()
    guard = guard_for(principal, 1000)
    current = await guard.check(principal)
    assert current is not principal and current.name == "Ada"
    # A socket's next events carry the checked principal: nothing to copy any more.
    assert await guard.check(current) is current
