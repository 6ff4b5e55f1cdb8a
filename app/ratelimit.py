"""Fixed-window rate limits over the shared state, so every worker counts together.

Two ways to count, chosen per bucket:

- **Exact** (logins, registration, session creation, link redemptions: rare and
  security-sensitive): every event is one atomic Redis script call before the work it
  guards, so a concurrent burst cannot all pass a check before any of them is counted.
- **Settled** (`SETTLED_BUCKETS`: messages, one per message sent): each worker counts in
  memory and settles with Redis every `SETTLE_SECONDS`, one script call for every key it
  touched (see `SettledCounts`). A message costs no round trip of its own.

Either way `Retry-After` is when the window really frees (the counter's remaining life,
rounded up), not the window's full length, and with Redis unreachable limits fail open
(refusing every login or message because a counter store is down would turn a Redis
outage into a full outage), logged once per outage (app/outage.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

from app import metrics
from app.errors import RateLimited
from app.outage import REDIS
from app.state import State, StateUnavailable

log = logging.getLogger(__name__)

# Buckets counted per worker and settled in batches: the hot ones.
SETTLED_BUCKETS = frozenset({"messages"})
# How often a worker settles its counts with Redis while it has any to settle.
SETTLE_SECONDS = 0.02
# Tallies of windows that ended are dropped this often.
PRUNE_SECONDS = 5.0


class RateLimiter:
    def __init__(self, state: State, window: int, settle_seconds: float = SETTLE_SECONDS) -> None:
        self._state = state
        self._window = window
        self._settled = SettledCounts(state, window, settle_seconds)

    async def count(self, bucket: str, key: str) -> tuple[int, int]:
        """Count one event exactly; returns (events this window, seconds until it frees),
        or (0, 0) with Redis unreachable (fail open)."""
        try:
            counted = await self._state.hit(_key(bucket, key), self._window)
        except StateUnavailable as exc:
            REDIS.failed(f"rate limit {bucket} not enforced", exc)
            return 0, 0
        REDIS.succeeded()
        return counted

    async def hit(self, bucket: str, key: str, limit: int) -> None:
        """Count one event; raise RateLimited once `limit` is passed in this window."""
        if bucket in SETTLED_BUCKETS:
            retry_after = await self._settled.hit(_key(bucket, key), limit)
        else:
            count, retry_after = await self.count(bucket, key)
            retry_after = retry_after if count > limit else None
        if retry_after is not None:
            metrics.RATE_LIMITED.labels(bucket).inc()
            raise RateLimited(retry_after)

    async def refund(self, bucket: str, key: str) -> None:
        """Take back one event counted by `hit` (it turned out not to be one to limit)."""
        if self._settled.take_back(_key(bucket, key)):
            return
        try:
            await self._state.refund(_key(bucket, key))
        except StateUnavailable as exc:
            REDIS.failed(f"rate limit {bucket} not refunded", exc)

    async def reset(self, bucket: str, key: str) -> None:
        self._settled.forget(_key(bucket, key))
        try:
            await self._state.delete(_key(bucket, key))
        except StateUnavailable as exc:
            REDIS.failed(f"rate limit {bucket} not reset", exc)

    async def close(self) -> None:
        """Settle what is still counted here (a stopping worker's last interval)."""
        await self._settled.close()


def _key(bucket: str, key: str) -> str:
    return f"rl:{bucket}:{key}"


@dataclass
class _Tally:
    """One key's window as this worker knows it."""

    known: int = 0  # the shared count Redis answered at the last settle
    frees_at: float = 0.0  # monotonic time its window frees (0: not settled yet)
    unsent: int = 0  # admitted here, not yet sent to Redis
    sending: int = 0  # in the settle under way
    # Hits past the local share, waiting for the next settle to decide: (limit, answer).
    waiting: list[tuple[int, asyncio.Future[int | None]]] = field(default_factory=list)


class SettledCounts:
    """Per-worker counts settled with Redis in batches, with a bounded error.

    A worker decides a hit on its own while its view of the key (the shared count Redis
    last answered + what it admitted since) stays within the *local share*, half the limit
    (rounded down); it refuses on its own once that view passes the limit (the view never
    overstates: every part of it is in, or on its way to, the shared count). Between the
    two, a hit waits for the next settle, which starts at once and decides it exactly
    against the shared count, as the exact path does. Every `SETTLE_SECONDS` while it has
    anything counted, a worker sends all its keys' new events in one script call and
    learns each key's shared count and window.

    The error bound: a key's shared count passes its limit only by events other workers
    admitted locally and had not yet settled when the deciding settle ran, so by at most
    (W - 1) x min(limit // 2, the key's events arriving at one worker within one settle
    interval plus one round trip), with W workers taking that key at once. A key whose
    events all reach one worker (a token's socket) is exact. Refused hits are counted in
    Redis only when decided there.
    """

    def __init__(self, state: State, window: int, interval: float) -> None:
        self._state = state
        self._window = window
        self._interval = interval
        self._tallies: dict[str, _Tally] = {}
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._next_prune = 0.0

    async def hit(self, key: str, limit: int) -> int | None:
        """None when the hit is admitted, else the seconds until its window frees."""
        now = time.monotonic()
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        if tally.frees_at and tally.frees_at <= now:
            tally.known, tally.frees_at = 0, 0.0
        seen = tally.known + tally.sending + tally.unsent + len(tally.waiting)
        if seen >= limit:
            return _seconds_left(tally, now, self._window)
        self._dirty.add(key)
        if seen < limit // 2:
            tally.unsent += 1
            self._wake()
            return None
        answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        tally.waiting.append((limit, answer))
        self._wake()
        self._kick.set()
        return await answer

    def take_back(self, key: str) -> bool:
        """Refund one event not yet sent; False when there is none (refund it in Redis)."""
        tally = self._tallies.get(key)
        if tally is None or tally.unsent == 0:
            return False
        tally.unsent -= 1
        return True

    def forget(self, key: str) -> None:
        """The key's counter is reset: what was counted here goes too."""
        tally = self._tallies.pop(key, None)
        self._dirty.discard(key)
        for _, answer in tally.waiting if tally else ():
            if not answer.done():
                answer.set_result(None)

    async def close(self) -> None:
        """Settle now what is counted here (a stopping worker's last interval)."""
        self._kick.set()
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        elif self._dirty:
            await self._settle()

    def _wake(self) -> None:
        if self._task is None or self._task.done():
            # A new event with each task: both belong to the loop running now (a limiter
            # outliving a loop, as in tests and the CLI, must not wait on a dead one).
            self._kick = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Settle every interval (at once when a hit waits) until nothing is left."""
        while self._dirty:
            if not self._kick.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self._interval)
            self._kick.clear()
            try:
                await self._settle()
            except Exception:
                log.exception("rate-limit settle failed")

    async def _settle(self) -> None:
        batch: dict[str, tuple[_Tally, int, list[tuple[int, asyncio.Future[int | None]]]]] = {}
        for key in self._dirty:
            tally = self._tallies.get(key)
            if tally is None:
                continue
            batch[key] = (tally, tally.unsent, tally.waiting)
            tally.sending += tally.unsent + len(tally.waiting)
            tally.unsent, tally.waiting = 0, []
        self._dirty = set()
        counts: dict[str, tuple[int, float]] = {}
        try:
            counts = await self._state.hit_many(
                {key: sent + len(waiting) for key, (_, sent, waiting) in batch.items()},
                self._window,
            )
        except StateUnavailable as exc:
            REDIS.failed("rate limit messages not enforced", exc)
        else:
            REDIS.succeeded()
        finally:
            # Also when cancelled: no waiting hit is left without an answer.
            now = time.monotonic()
            for key, (tally, sent, waiting) in batch.items():
                tally.sending -= sent + len(waiting)
                _decide(tally, counts.get(key), waiting, now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_SECONDS
        for key in [k for k, t in self._tallies.items() if _idle(t, now)]:
            if key not in self._dirty:
                del self._tallies[key]


def _decide(
    tally: _Tally,
    counted: tuple[int, float] | None,
    waiting: list[tuple[int, asyncio.Future[int | None]]],
    now: float,
) -> None:
    """Learn the shared count and answer the waiting hits: they were counted last, in
    order, so the i-th of n is event `count - n + i + 1` of the window. With Redis
    unreachable (`counted` None) they are admitted: limits fail open."""
    if counted is None:
        for _, answer in waiting:
            if not answer.done():
                answer.set_result(None)
        return
    count, left = counted
    tally.known = count
    tally.frees_at = now + left
    first = count - len(waiting) + 1
    for i, (limit, answer) in enumerate(waiting):
        if not answer.done():
            answer.set_result(None if first + i <= limit else max(math.ceil(left), 1))


def _seconds_left(tally: _Tally, now: float, window: int) -> int:
    return max(math.ceil(tally.frees_at - now), 1) if tally.frees_at else window


def _idle(tally: _Tally, now: float) -> bool:
    pending = tally.unsent or tally.sending or tally.waiting
    return not pending and (not tally.frees_at or tally.frees_at <= now)
