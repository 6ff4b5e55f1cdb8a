"""The Redis-backed state store under bursts (in-process, against the real Redis)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.state import REDIS_POOL_SIZE, MemoryState, RedisState, State, StateUnavailable
from tests.support import REDIS_NAMESPACE, REDIS_TEST_URL


async def test_a_burst_wider_than_the_pool_waits_for_connections_instead_of_failing():
    state = RedisState(REDIS_TEST_URL, REDIS_NAMESPACE)
    try:
        counts = await asyncio.gather(*(state.hit("burst", 60) for _ in range(REDIS_POOL_SIZE * 5)))
    finally:
        await state.close()
    assert sorted(count for count, _ in counts) == list(range(1, REDIS_POOL_SIZE * 5 + 1))


async def test_many_counters_are_counted_in_one_call_each_in_its_own_window():
    state = RedisState(REDIS_TEST_URL, REDIS_NAMESPACE)
    try:
        await state.hit("many:a", 60)
        counts = await state.hit_many({"many:a": 2, "many:b": 5}, 60)
        assert {k: c for k, (c, _) in counts.items()} == {"many:a": 3, "many:b": 5}
        assert all(59 < left <= 60 for _, left in counts.values())
        assert await state.hit("many:b", 60) == (6, 60)
    finally:
        await state.delete("many:a", "many:b")
        await state.close()


async def test_the_in_process_store_counts_many_the_same_way():
    state = MemoryState()
    await state.hit("many:a", 60)
    counts = await state.hit_many({"many:a": 2, "many:b": 5}, 60)
    assert {k: c for k, (c, _) in counts.items()} == {"many:a": 3, "many:b": 5}
    assert await state.hit("many:b", 60) == (6, 60)


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


# Every method of the store with arguments it accepts: an unreachable Redis must surface
# as the store's own StateUnavailable, never as a redis-py exception the domain would
# have to know about.
STORE_CALLS = {
    "hit": ("k", 60),
    "hit_many": ({"k": 2}, 60),
    "refund": ("k",),
    "put": ("k", "v", 60),
    "swap": ("k", "v", 60),
    "take": ("k",),
    "delete": ("k",),
    "get_many": (["k"],),
    "mark": ("k", "m", 60),
    "unmark": ("k", "m"),
    "count_live": (["k"],),
    "mark_many": ([("k", "m")], 60),
    "schedule": ("k", "m", 1.0),
    "schedule_many": ("k", {"m": 1.0}),
    "take_due": ("k", 1.0),
    "unschedule": ("k", "m"),
    "ttl": ("k",),
    "ping": (),
}


@pytest.mark.parametrize("method", sorted(STORE_CALLS))
async def test_an_unreachable_redis_raises_state_unavailable(method: str):
    state = RedisState(f"redis://127.0.0.1:{_closed_port()}/0", REDIS_NAMESPACE)
    try:
        with pytest.raises(StateUnavailable):
            await getattr(state, method)(*STORE_CALLS[method])
    finally:
        await state.close()


def test_every_method_of_the_store_is_covered():
    protocol = {n for n in vars(State) if not n.startswith("_")} - {"close"}
    assert protocol == set(STORE_CALLS)


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
