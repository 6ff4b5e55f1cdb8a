"""Fixed-window rate limits over the shared state, so every worker counts together."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from app.errors import RateLimited
from app.state import State

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, state: State, window: int) -> None:
        self._state = state
        self._window = window

    async def hit(self, bucket: str, key: str, limit: int) -> None:
        """Count one event; raise RateLimited once `limit` is passed in this window.

        With Redis unreachable the limit fails open: refusing every login or message
        because a counter store is down would turn a Redis outage into a full outage.
        """
        try:
            count, retry_after = await self._state.hit(f"rl:{bucket}:{key}", self._window)
        except (RedisError, OSError) as exc:
            log.warning("rate limit %s not enforced, state store unavailable: %s", bucket, exc)
            return
        if count > limit:
            raise RateLimited(retry_after)

    async def check(self, bucket: str, key: str, limit: int) -> None:
        """Raise RateLimited if `limit` events were already counted, without counting one."""
        try:
            values = await self._state.get_many([f"rl:{bucket}:{key}"])
        except (RedisError, OSError):
            return
        if values[0] is not None and int(values[0]) >= limit:
            raise RateLimited(self._window)

    async def reset(self, bucket: str, key: str) -> None:
        try:
            await self._state.delete(f"rl:{bucket}:{key}")
        except (RedisError, OSError):
            return
