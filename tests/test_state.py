"""The Redis-backed state store under bursts (in-process, against the real Redis)."""

from __future__ import annotations

import asyncio

from app.state import REDIS_POOL_SIZE, MemoryState, RedisState
from tests.support import REDIS_NAMESPACE, REDIS_TEST_URL


async def test_a_burst_wider_than_the_pool_waits_for_connections_instead_of_failing():
    state = RedisState(REDIS_TEST_URL, REDIS_NAMESPACE)
    try:
        counts = await asyncio.gather(*(state.hit("burst", 60) for _ in range(REDIS_POOL_SIZE * 5)))
    finally:
        await state.close()
    assert sorted(count for count, _ in counts) == list(range(1, REDIS_POOL_SIZE * 5 + 1))


async def test_a_batched_heartbeat_keeps_every_member_live_and_due_later():
    state = RedisState(REDIS_TEST_URL, REDIS_NAMESPACE)
    try:
        await state.mark("hb:a", "stale", -1)  # expired: the beat prunes it
        await state.mark_many([("hb:a", "one"), ("hb:a", "two"), ("hb:b", "three")], 60)
        await state.schedule_many("hb:due", {"a": 100.0, "b": 200.0})
        assert await state.mark("hb:a", "two", 60) == 2
        assert await state.mark("hb:b", "three", 60) == 1
        assert 55 < await state.ttl("hb:a") <= 60
        assert await state.take_due("hb:due", 150.0) == ["a"]
    finally:
        await state.delete("hb:a", "hb:b", "hb:due")
        await state.close()


async def test_the_in_process_store_batches_heartbeats_the_same_way():
    state = MemoryState()
    await state.mark_many([("hb:a", "one"), ("hb:a", "two"), ("hb:b", "three")], 60)
    await state.schedule_many("hb:due", {"a": 100.0, "b": 200.0})
    assert await state.mark("hb:a", "two", 60) == 2
    assert await state.take_due("hb:due", 150.0) == ["a"]


async def test_live_counts_of_many_sets_skip_expired_members_and_absent_sets():
    state = RedisState(REDIS_TEST_URL, REDIS_NAMESPACE)
    try:
        await state.mark("live:a", "gone", -1)
        await state.mark("live:a", "here", 60)
        await state.mark("live:b", "gone", -1)
        assert await state.count_live(["live:a", "live:b", "live:none"]) == [1, 0, 0]
    finally:
        await state.delete("live:a", "live:b")
        await state.close()


async def test_the_in_process_store_counts_live_members_the_same_way():
    state = MemoryState()
    await state.mark("live:a", "gone", -1)
    await state.mark("live:a", "here", 60)
    await state.mark("live:b", "gone", -1)
    assert await state.count_live(["live:a", "live:b", "live:none"]) == [1, 0, 0]
