"""Fixed-window rate limits over the shared state, so every worker counts together.

Counting comes first and is atomic (one Redis script): a burst of concurrent requests
cannot all pass a check before any of them is counted. `Retry-After` is when the window
really frees (the counter's remaining life, rounded up), not the window's full length.
"""

from __future__ import annotations

from app import metrics
from app.errors import RateLimited
from app.outage import REDIS
from app.state import State, StateUnavailable


class RateLimiter:
    def __init__(self, state: State, window: int) -> None:
        self._state = state
        self._window = window

    async def count(self, bucket: str, key: str) -> tuple[int, int]:
        """Count one event; returns (events this window, seconds until it frees).

        With Redis unreachable the count is (0, 0), so limits fail open: refusing every
        login or message because a counter store is down would turn a Redis outage into a
        full outage.
        """
        try:
            counted = await self._state.hit(f"rl:{bucket}:{key}", self._window)
        except StateUnavailable as exc:
            REDIS.failed(f"rate limit {bucket} not enforced", exc)
            return 0, 0
        REDIS.succeeded()
        return counted

    async def hit(self, bucket: str, key: str, limit: int) -> None:
        """Count one event; raise RateLimited once `limit` is passed in this window."""
        count, retry_after = await self.count(bucket, key)
        if count > limit:
            metrics.RATE_LIMITED.labels(bucket).inc()
            raise RateLimited(retry_after)

    async def refund(self, bucket: str, key: str) -> None:
        """Take back one event counted by `hit` (it turned out not to be one to limit)."""
        try:
            await self._state.refund(f"rl:{bucket}:{key}")
        except StateUnavailable as exc:
            REDIS.failed(f"rate limit {bucket} not refunded", exc)
            return

    async def reset(self, bucket: str, key: str) -> None:
        try:
            await self._state.delete(f"rl:{bucket}:{key}")
        except StateUnavailable as exc:
            REDIS.failed(f"rate limit {bucket} not reset", exc)
            return
