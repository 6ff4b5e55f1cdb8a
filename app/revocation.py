"""Tells every worker that credentials ended: a sign-in revoked, an account deactivated.

Each worker drops its cached account checks for them and disconnects its own sockets of
them. With REDIS_URL the news travels on one Redis pub/sub channel (the namespace and db
are in the URL and channel, so deployments sharing a Redis stay apart); without it there is
one worker and the news is a local call. The publishing worker applies it before answering.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from app.outage import REDIS

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Revocation:
    """What ended. `account` covers all its sign-ins; `keep` is a sign-in spared (a
    password change keeps the one that made it). `disconnect` False only refreshes caches
    (a role or name change)."""

    reason: str
    account: uuid.UUID | None = None
    sign_in: uuid.UUID | None = None
    keep: uuid.UUID | None = None
    disconnect: bool = True

    def covers(self, account: uuid.UUID, sign_in: uuid.UUID | None) -> bool:
        if sign_in is not None and sign_in == self.keep:
            return False
        if self.sign_in is not None and sign_in == self.sign_in:
            return True
        return self.account is not None and account == self.account

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "reason": self.reason,
                "account": _text(self.account),
                "signIn": _text(self.sign_in),
                "keep": _text(self.keep),
                "disconnect": self.disconnect,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Revocation:
        data = orjson.loads(raw)
        return cls(
            reason=str(data["reason"]),
            account=_uuid(data.get("account")),
            sign_in=_uuid(data.get("signIn")),
            keep=_uuid(data.get("keep")),
            disconnect=bool(data.get("disconnect", True)),
        )


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _uuid(value: object) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


Listener = Callable[[Revocation], Awaitable[None]]


class RevocationBus:
    def __init__(self, redis_url: str, namespace: str) -> None:
        self._url = redis_url
        # Pub/sub channels ignore the db number: the channel carries it.
        db = aioredis.connection.parse_url(redis_url).get("db", 0) if redis_url else 0
        self.channel = f"{namespace}-revocations-db{db}"
        # Our own messages come back from Redis: the id tells us to skip them.
        self._origin = uuid.uuid4().hex
        self._listeners: list[Listener] = []
        self._redis: aioredis.Redis | None = None

    def on(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, revocation: Revocation) -> None:
        """Apply here at once, then tell the other workers (best effort: if Redis is
        down they still stop honouring it within the account cache's bound)."""
        await self._apply(revocation)
        if not self._url:
            return
        try:
            if self._redis is None:
                self._redis = aioredis.from_url(self._url)
            data = orjson.loads(revocation.encode())
            await self._redis.publish(
                self.channel, orjson.dumps({"origin": self._origin, "data": data})
            )
        except Exception as exc:
            log.warning("revocation not published (%r): other workers rely on the cache bound", exc)

    async def _apply(self, revocation: Revocation) -> None:
        for listener in self._listeners:
            try:
                await listener(revocation)
            except Exception:
                log.exception("revocation listener failed")

    async def run(self) -> None:
        """The listening task of one worker (only with Redis); reconnects on its own."""
        if not self._url:
            return
        while True:
            client = aioredis.from_url(self._url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                REDIS.succeeded()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    envelope = orjson.loads(message["data"])
                    if envelope.get("origin") == self._origin:
                        continue
                    await self._apply(Revocation.decode(orjson.dumps(envelope["data"])))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                REDIS.failed("revocation listener", exc)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await client.aclose()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
