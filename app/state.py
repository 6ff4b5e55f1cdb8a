"""Short-lived shared state (rate-limit counters, typing, presence) under TTL keys.

`RedisState` is what production uses: every worker sees the same keys, and a worker that
dies leaves nothing behind for longer than a TTL. `MemoryState` is the embedded mode's
stand-in for a single worker with no Redis.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class StateUnavailable(Exception):
    """The store cannot be reached. Raised instead of the client library's errors, so
    the domain decides what an outage means (a rate limit fails open, a join answers
    without live state, anything else answers 503) without knowing what backs the store."""


class State(Protocol):
    async def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one event in the current window; returns (count, seconds until the window
        frees, rounded up)."""
        ...

    async def hit_many(self, counts: dict[str, int], window: int) -> dict[str, tuple[int, float]]:
        """Add `counts[key]` events to each key's window in one round trip; returns each
        key's (count, seconds until its window frees)."""
        ...

    async def refund(self, key: str) -> None:
        """Take back one counted event (a login that turned out right), if still counted."""
        ...

    async def put(self, key: str, value: str, ttl: int) -> None: ...

    async def swap(self, key: str, value: str, ttl: int) -> str | None:
        """`put`, returning the value it replaced (None if there was none), atomically."""
        ...

    async def take(self, key: str) -> str | None:
        """Delete `key`, returning the value it held (None if none), atomically."""
        ...

    async def delete(self, *keys: str) -> None: ...

    async def get_many(self, keys: list[str]) -> list[str | None]: ...

    async def mark(self, key: str, member: str, ttl: int) -> int:
        """Note `member` as live for `ttl` seconds in set `key`; returns live members."""
        ...

    async def unmark(self, key: str, member: str) -> int:
        """Drop `member` from set `key`; returns the live members left."""
        ...

    async def count_live(self, keys: list[str]) -> list[int]:
        """The live members of each `mark`ed set, read only, in one round trip (a page
        of the inbox asks for fifty sessions' presence at once)."""
        ...

    async def mark_many(self, entries: list[tuple[str, str]], ttl: int) -> None:
        """`mark` for many (key, member) pairs at once, without the counts (a heartbeat)."""
        ...

    async def schedule_many(self, key: str, due: dict[str, float]) -> None:
        """`schedule` for many members at once."""
        ...

    async def schedule(self, key: str, member: str, at: float) -> None:
        """Note that `member` falls due at wall-clock time `at` (re-scheduling moves it)."""
        ...

    async def take_due(self, key: str, now: float) -> list[str]:
        """Remove and return the members due by `now`; each is handed to one caller only."""
        ...

    async def unschedule(self, key: str, member: str) -> None: ...

    async def ttl(self, key: str) -> float:
        """Seconds `key` has left; 0 when it is gone."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


# Atomic pop of due members, so of many workers sweeping, exactly one handles each.
TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""

# Counts and windows of many keys in one command: KEYS are the counters, ARGV the window
# (seconds) and then each key's increment; returns {count, milliseconds left} per key. A
# single hit is the same call with one key: it runs on every login and, settled in
# batches (app/ratelimit.py), for the message counters of a whole interval.
HIT_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCRBY', key, ARGV[i + 1])
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[1]) * 1000
    redis.call('PEXPIRE', key, ttl)
  end
  out[i] = {count, ttl}
end
return out
"""

# Never below zero, never resurrecting an expired window.
REFUND = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
"""

# Many `mark`s in one command (a worker's presence heartbeat): KEYS are the sets, ARGV
# the time, the TTL and then each key's member. Packing three commands per connection
# into a pipeline cost the worker ~60 µs of CPU per idle connection per beat.
MARK_MANY = """
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, now + ttl, ARGV[i + 2])
  redis.call('EXPIRE', key, ttl)
end
return #KEYS
"""

# Many sets' live members in one read-only command: KEYS are the sets, ARGV the time; a
# member is live while its expiry (its score) is later than now, as `mark` prunes.
COUNT_LIVE = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('ZCOUNT', key, '(' .. ARGV[1], '+inf')
end
return out
"""

REDIS_POOL_SIZE = 64

P = ParamSpec("P")
T = TypeVar("T")


def _unavailable_as_state_error(
    method: Callable[Concatenate[RedisState, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[RedisState, P], Coroutine[Any, Any, T]]:
    """Turns redis-py's failures (and the socket's) into StateUnavailable."""

    @functools.wraps(method)
    async def call(self: RedisState, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"{type(exc).__name__}: {exc}") from exc

    return call


class RedisState:
    def __init__(self, url: str, namespace: str = "helpline") -> None:
        self.prefix = f"{namespace}:"
        # A burst waits for a free connection instead of failing "Too many connections",
        # which would fail rate limits open and drop typing and presence updates.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_POOL_SIZE,
            timeout=2,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=2,
            health_check_interval=10,
            retry_on_timeout=False,
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self._take_due = self.redis.register_script(TAKE_DUE)
        self._hit_many = self.redis.register_script(HIT_MANY)
        self._refund = self.redis.register_script(REFUND)
        self._mark_many = self.redis.register_script(MARK_MANY)
        self._count_live = self.redis.register_script(COUNT_LIVE)

    async def hit(self, key: str, window: int) -> tuple[int, int]:
        count, left = (await self.hit_many({key: 1}, window))[key]
        return count, max(math.ceil(left), 1)

    @_unavailable_as_state_error
    async def hit_many(self, counts: dict[str, int], window: int) -> dict[str, tuple[int, float]]:
        if not counts:
            return {}
        replies = await self._hit_many(
            keys=[self.prefix + k for k in counts], args=[window, *counts.values()]
        )
        return {
            key: (int(count), int(millis) / 1000)
            for key, (count, millis) in zip(counts, replies, strict=True)
        }

    @_unavailable_as_state_error
    async def refund(self, key: str) -> None:
        await self._refund(keys=[self.prefix + key])

    @_unavailable_as_state_error
    async def put(self, key: str, value: str, ttl: int) -> None:
        await self.redis.set(self.prefix + key, value, ex=ttl)

    @_unavailable_as_state_error
    async def swap(self, key: str, value: str, ttl: int) -> str | None:
        old = await self.redis.set(self.prefix + key, value, ex=ttl, get=True)
        return None if old is None else str(old)

    @_unavailable_as_state_error
    async def take(self, key: str) -> str | None:
        old = await self.redis.getdel(self.prefix + key)
        return None if old is None else str(old)

    @_unavailable_as_state_error
    async def delete(self, *keys: str) -> None:
        if keys:
            await self.redis.delete(*(self.prefix + k for k in keys))

    @_unavailable_as_state_error
    async def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        return [
            v if v is None else str(v)
            for v in await self.redis.mget([self.prefix + k for k in keys])
        ]

    @_unavailable_as_state_error
    async def mark(self, key: str, member: str, ttl: int) -> int:
        key = self.prefix + key
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {member: now + ttl})
            pipe.expire(key, ttl)
            pipe.zcard(key)
            *_, live = await pipe.execute()
        return int(live)

    @_unavailable_as_state_error
    async def unmark(self, key: str, member: str) -> int:
        key = self.prefix + key
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(key, member)
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zcard(key)
            *_, live = await pipe.execute()
        return int(live)

    @_unavailable_as_state_error
    async def count_live(self, keys: list[str]) -> list[int]:
        if not keys:
            return []
        counts = await self._count_live(keys=[self.prefix + k for k in keys], args=[time.time()])
        return [int(n) for n in counts]

    @_unavailable_as_state_error
    async def mark_many(self, entries: list[tuple[str, str]], ttl: int) -> None:
        if entries:
            await self._mark_many(
                keys=[self.prefix + key for key, _ in entries],
                args=[time.time(), ttl, *(member for _, member in entries)],
            )

    @_unavailable_as_state_error
    async def schedule(self, key: str, member: str, at: float) -> None:
        await self.redis.zadd(self.prefix + key, {member: at})

    @_unavailable_as_state_error
    async def schedule_many(self, key: str, due: dict[str, float]) -> None:
        if due:
            await self.redis.zadd(self.prefix + key, due)

    @_unavailable_as_state_error
    async def take_due(self, key: str, now: float) -> list[str]:
        return list(await self._take_due(keys=[self.prefix + key], args=[now]))

    @_unavailable_as_state_error
    async def unschedule(self, key: str, member: str) -> None:
        await self.redis.zrem(self.prefix + key, member)

    @_unavailable_as_state_error
    async def ttl(self, key: str) -> float:
        millis = await self.redis.pttl(self.prefix + key)
        return max(int(millis), 0) / 1000

    @_unavailable_as_state_error
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)


class MemoryState:
    """One process's TTL store: correct only while the server runs a single worker."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}
        self._sets: dict[str, dict[str, float]] = {}

    def _live(self, key: str) -> str | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._values[key]
            return None
        return item[0]

    async def hit(self, key: str, window: int) -> tuple[int, int]:
        count, left = self._add(key, 1, window)
        return count, max(math.ceil(left), 1)

    async def hit_many(self, counts: dict[str, int], window: int) -> dict[str, tuple[int, float]]:
        return {key: self._add(key, n, window) for key, n in counts.items()}

    def _add(self, key: str, n: int, window: int) -> tuple[int, float]:
        now = time.monotonic()
        current = self._live(key)
        expires = now + window if current is None else self._values[key][1]
        count = int(current or 0) + n
        self._values[key] = (str(count), expires)
        return count, expires - now

    async def refund(self, key: str) -> None:
        current = self._live(key)
        if current is not None and int(current) > 0:
            self._values[key] = (str(int(current) - 1), self._values[key][1])

    async def put(self, key: str, value: str, ttl: int) -> None:
        self._values[key] = (value, time.monotonic() + ttl)

    async def swap(self, key: str, value: str, ttl: int) -> str | None:
        old = self._live(key)
        self._values[key] = (value, time.monotonic() + ttl)
        return old

    async def take(self, key: str) -> str | None:
        old = self._live(key)
        self._values.pop(key, None)
        return old

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._values.pop(key, None)
            self._sets.pop(key, None)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [self._live(k) for k in keys]

    def _prune(self, key: str) -> dict[str, float]:
        now = time.monotonic()
        members = {m: t for m, t in self._sets.get(key, {}).items() if t > now}
        self._sets[key] = members
        return members

    async def mark(self, key: str, member: str, ttl: int) -> int:
        members = self._prune(key)
        members[member] = time.monotonic() + ttl
        return len(members)

    async def unmark(self, key: str, member: str) -> int:
        members = self._prune(key)
        members.pop(member, None)
        return len(members)

    async def count_live(self, keys: list[str]) -> list[int]:
        now = time.monotonic()
        return [sum(1 for t in self._sets.get(k, {}).values() if t > now) for k in keys]

    async def mark_many(self, entries: list[tuple[str, str]], ttl: int) -> None:
        for key, member in entries:
            await self.mark(key, member, ttl)

    async def schedule(self, key: str, member: str, at: float) -> None:
        self._sets.setdefault(key, {})[member] = at

    async def schedule_many(self, key: str, due: dict[str, float]) -> None:
        self._sets.setdefault(key, {}).update(due)

    async def take_due(self, key: str, now: float) -> list[str]:
        members = self._sets.get(key, {})
        due = [m for m, at in members.items() if at <= now]
        for m in due:
            del members[m]
        return due

    async def unschedule(self, key: str, member: str) -> None:
        self._sets.get(key, {}).pop(member, None)

    async def ttl(self, key: str) -> float:
        item = self._values.get(key)
        return max(item[1] - time.monotonic(), 0.0) if item and self._live(key) else 0.0

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
