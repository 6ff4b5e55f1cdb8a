"""The per-worker services every use case needs, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from piccolo.engine.base import Engine

from app import db
from app.accounts import AccountGuard
from app.auth import Passwords, Tokens
from app.broadcast import Broadcaster, NullBroadcaster
from app.config import Settings
from app.ratelimit import RateLimiter
from app.revocation import RevocationBus
from app.state import MemoryState, RedisState, State


@dataclass
class Services:
    settings: Settings
    database: Engine
    tokens: Tokens
    passwords: Passwords
    state: State
    limiter: RateLimiter
    accounts: AccountGuard
    revocations: RevocationBus
    broadcaster: Broadcaster = field(default_factory=NullBroadcaster)

    @classmethod
    def build(
        cls, settings: Settings, state: State | None = None, database: Engine | None = None
    ) -> Services:
        """`state` overrides the store (the CLI needs no Redis to create an admin);
        `database` the engine the settings name (a test's, or the CLI's configured one)."""
        if state is None:
            state = (
                RedisState(settings.redis_url, settings.redis_namespace)
                if settings.redis_url
                else MemoryState()
            )
        accounts = AccountGuard(settings.auth_cache_ms)
        revocations = RevocationBus(settings.redis_url, settings.redis_namespace)
        revocations.on(accounts.forget)
        return cls(
            settings=settings,
            database=database if database is not None else db.make_engine(settings),
            tokens=Tokens(settings),
            passwords=Passwords(settings),
            state=state,
            limiter=RateLimiter(state, settings.rate_window),
            accounts=accounts,
            revocations=revocations,
        )
