"""The Redis-backed state store under bursts (in-process, against the real Redis)."""

from __future__ import annotations

import asyncio

from app.state import REDIS_POOL_SIZE, RedisState
from tests.support import REDIS_NAMESPACE, REDIS_TEST_URL


async def test_a_burst_wider_than_the_pool_waits_for_connections_instead_of_failing():
    state = RedisState(REDIS_TEST_URL, REDIS_NAMESPACE)
    try:
        counts = await asyncio.gather(*(state.hit("burst", 60) for _ in range(REDIS_POOL_SIZE * 5)))
    finally:
        await state.close()
    assert sorted(count for count, _ in counts) == list(range(1, REDIS_POOL_SIZE * 5 + 1))
