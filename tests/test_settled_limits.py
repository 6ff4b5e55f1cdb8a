"""The message limit counted per worker and settled with Redis in batches (in-process,
against the real Redis): no round trip per message, exact on one worker, within the
stated bound on several, fail-open without Redis."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from app.errors import RateLimited
from app.ratelimit import RateLimiter
from app.state import RedisState
from tests.support import REDIS_NAMESPACE, REDIS_TEST_URL


class CountedRedisState(RedisState):
    """The real store, counting the calls the limiter makes of it."""

    def __init__(self, url: str) -> None:
        super().__init__(url, REDIS_NAMESPACE)
        self.calls = 0

    async def hit(self, key: str, window: int) -> tuple[int, int]:
        self.calls += 1
        return await super().hit(key, window)

    async def hit_many(self, counts: dict[str, int], window: int) -> dict[str, tuple[int, float]]:
        self.calls += 1
        return await super().hit_many(counts, window)


@pytest.fixture
async def workers() -> AsyncIterator[list[tuple[RateLimiter, CountedRedisState]]]:
    """Two workers' limiters, each with its own connection pool to the one Redis."""
    states = [CountedRedisState(REDIS_TEST_URL) for _ in range(2)]
    limiters = [(RateLimiter(state, 60), state) for state in states]
    yield limiters
    for limiter, state in limiters:
        await limiter.close()
        await state.close()


async def admitted(limiter: RateLimiter, key: str, limit: int) -> int | None:
    """None when admitted, else the Retry-After."""
    try:
        await limiter.hit("messages", key, limit)
    except RateLimited as exc:
        return int(exc.headers["Retry-After"])
    return None


async def test_messages_cost_a_redis_call_per_settle_interval_not_per_message(workers):
    limiter, state = workers[0]
    keys = [f"token-{uuid.uuid4().hex}" for _ in range(20)]
    for _ in range(10):
        answers = await asyncio.gather(*(admitted(limiter, key, 1000) for key in keys))
        assert answers == [None] * len(keys)
        await asyncio.sleep(0.005)
    await limiter.close()
    # 200 messages, 20 keys, ~50 ms: a few settles, each for every key at once.
    assert state.calls <= 10
    counts = await state.hit_many({f"rl:messages:{key}": 0 for key in keys}, 60)
    assert {count for count, _ in counts.values()} == {10}


async def test_one_worker_stops_a_burst_exactly_at_the_limit(workers):
    limiter, _ = workers[0]
    key = f"token-{uuid.uuid4().hex}"
    answers = await asyncio.gather(*(admitted(limiter, key, 10) for _ in range(40)))
    assert answers.count(None) == 10
    assert all(0 < a <= 60 for a in answers if a is not None)
    assert await admitted(limiter, key, 10) is not None


async def test_two_workers_together_stop_a_key_within_the_stated_bound(workers):
    # Bound: (W - 1) x limit // 2 over the limit, W = 2 workers taking one key at once.
    limit, key = 10, f"token-{uuid.uuid4().hex}"

    async def burst() -> list[int | None]:
        return await asyncio.gather(
            *(admitted(limiter, key, limit) for _ in range(30) for limiter, _ in workers)
        )

    assert limit <= (await burst()).count(None) <= limit + limit // 2
    await asyncio.sleep(0.05)
    # Once settled, both workers refuse the key, saying when its window frees.
    later = await burst()
    assert later.count(None) == 0
    assert all(a is not None and 0 < a <= 60 for a in later)


async def test_sends_alternating_between_two_workers_are_stopped_exactly(workers):
    limit, key = 5, f"token-{uuid.uuid4().hex}"
    answers = [await admitted(workers[i % 2][0], key, limit) for i in range(8)]
    assert answers[:limit] == [None] * limit
    assert None not in answers[limit:]


async def test_retry_after_of_a_refused_message_is_when_the_window_frees(workers):
    limiter, _ = workers[0]
    key = f"token-{uuid.uuid4().hex}"
    assert [await admitted(limiter, key, 2) for _ in range(2)] == [None, None]
    await asyncio.sleep(2.2)
    retry_after = await admitted(limiter, key, 2)
    assert retry_after is not None and retry_after <= 58


async def test_a_refunded_message_is_not_counted(workers):
    limiter, _ = workers[0]
    key = f"token-{uuid.uuid4().hex}"
    for _ in range(3):
        assert await admitted(limiter, key, 3) is None
        await limiter.refund("messages", key)
        await asyncio.sleep(0.03)
    answers = [await admitted(limiter, key, 3) for _ in range(4)]
    assert answers[:3] == [None] * 3
    assert answers[3] is not None


async def test_messages_are_admitted_while_redis_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = RedisState(f"redis://127.0.0.1:{port}/0", REDIS_NAMESPACE)
    limiter = RateLimiter(state, 60)
    try:
        answers = [await admitted(limiter, "token", 4) for _ in range(12)]
    finally:
        await limiter.close()
        await state.close()
    assert answers == [None] * 12
