"""A Socket.IO client manager that publishes each room's emits on that room's Redis
channel, so a worker receives and decodes only what its own sockets are in.

python-socketio's Redis manager publishes every emit on one channel that every worker
reads and decodes, wanted or not: with N workers each message is decoded N times.
Here a worker SUBSCRIBEs to the channel of every named room one of its sockets is in
(`session:<id>`, `admins`), plus one control channel for what has no room of its own
(an emit to everyone, to another worker's socket by sid, a remote disconnect).

- Exactly once per client: an emit to rooms [r0, r1, ...] is published once on each
  room's channel; the copy from room i's channel goes to this worker's members of room i
  that are in none of r0..r(i-1). A socket in `session:x` and `admins` hears it once.
- Header first: a published message is `<header JSON>\\n<body>`, the body being the
  Socket.IO event's JSON array as the client will read it. A receiving worker reads the
  header (who for), and sends the body to its sockets as it came, never decoded and
  encoded again.
- Publishes batched: emits made while a publish is in flight (or in the same loop tick)
  leave together in the next pipeline, one pipeline at a time, so each channel's
  messages keep their order, a burst costs a few round trips rather than one each, and a
  backlog never opens more connections than one (it used to open one per emit under way
  and fail with "Too many connections" past redis-py's 100).
- No gap on join: `enter_room` returns once Redis confirmed the room's subscription, so a
  history read after it cannot miss a message published in between.
- Redis lost: the listener reconnects, subscribes again to every room in the local room
  table, and then calls `on_resubscribed` with those rooms, so the application can tell
  their clients to re-join with `after` (emits published meanwhile reached nobody).
- Rooms asked for in a connect handler are entered on the CONNECT answer (admission.py).
- Only public python-socketio names are used (`AsyncManager` and its documented
  methods), so no guarded hook is needed.

Emits with acknowledgement callbacks are delivered to local sockets only (the app uses
none across workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from engineio import packet as eio_packet
from redis.backoff import NoBackoff
from redis.retry import Retry

from app import contract
from app.broadcast import ADMINS_ROOM
from app.outage import REDIS
from app.realtime.admission import AdmitAfterConnect, event_args

log = logging.getLogger(__name__)

# Seconds between the listener's reconnect attempts: doubling from the first to the cap.
LISTEN_RETRY_FIRST = 0.5
LISTEN_RETRY_CAP = 2.0
# How long `enter_room` waits for Redis to confirm a subscription before going on.
SUBSCRIBE_WAIT = 2.0
# Channels of rooms that emptied are unsubscribed within this many seconds (a leave and
# a join again soon after cost no round trips).
SWEEP_SECONDS = 1.0

Resubscribed = Callable[[str, list[str]], Awaitable[None]]


def room_channel(base: str, room: str) -> str:
    """The channel of one room; `base` is the control channel (see server.channel_name)."""
    return f"{base}#{room}"


def routed(room: object) -> bool:
    """Rooms with a channel of their own: the app's named rooms (`session:<id>`,
    `admins`). Everything else (a socket's own sid room) goes through the control
    channel; sids never contain ':'."""
    return isinstance(room, str) and (":" in room or room == ADMINS_ROOM)


@dataclass
class Counters:
    """What this worker's listener did, for the scale-out benchmark."""

    received: int = 0  # messages that arrived from Redis
    own: int = 0  # of those, published by this worker (already delivered locally)
    decoded: int = 0  # control bodies decoded (an emit's body is forwarded as it is)
    delivered: int = 0  # emits from other workers sent to at least one local socket
    published: int = 0  # PUBLISH commands sent
    pipelines: int = 0  # round trips they took
    resubscribed: int = 0  # times the room table was subscribed again after a loss

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class RoomChannelManager(AdmitAfterConnect):
    name = "helpline-room-channels"

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        on_resubscribed: Resubscribed | None = None,
        subscribe_wait: float = SUBSCRIBE_WAIT,
        stats_key: str | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.control = channel
        self.host_id = uuid.uuid4().hex
        self.on_resubscribed = on_resubscribed
        self.counters = Counters()
        self.stats_key = stats_key
        self._subscribe_wait = subscribe_wait
        # Publishing: the usual pooled client (redis-py retries a dropped connection).
        self._redis = aioredis.Redis.from_url(url)
        self._pubsub: Any = None
        self._subscribed: set[str] = set()
        # Channels whose room a socket left since the last sweep (channel: room): the
        # only ones the sweep looks at, not the whole room table (every socket's own sid
        # room is in it: 20,000 rooms a second on a worker of idle websockets).
        self._left: dict[str, str] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._listener: Any = None
        # Frames waiting for the next pipeline, and what their emitters wait on.
        self._outbox: list[tuple[str, bytes]] = []
        self._outbox_sent: asyncio.Future[None] | None = None
        self._publisher: asyncio.Task[None] | None = None

    # -- python-socketio's manager interface -------------------------------------------

    def initialize(self) -> None:
        super().initialize()
        self._listener = self.server.start_background_task(self._listen_forever)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback)
        if kwargs.get("ignore_queue") or callback is not None:
            return
        body = contract.encode([event, *event_args(data)])
        await self._publish_to(namespace, room, skip_sid, "emit", body)

    async def prepare_room(self, namespace: str, room: str) -> None:
        """Subscribed (and confirmed) before the CONNECT answer. Should the sweep drop the
        channel before the socket is in the room (a rare moment), entering subscribes
        again and waits for it."""
        if routed(room):
            await self._subscribe(room_channel(self.control, room), wait=True)

    async def enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        if self._local(sid, namespace):
            await self._enter_local(sid, namespace, room, eio_sid, wait=True)
        else:
            await self._control("enter_room", namespace, {"sid": sid, "room": room})

    async def _enter_local(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None, wait: bool
    ) -> None:
        self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if routed(room):
            await self._subscribe(room_channel(self.control, room), wait=wait)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Every way out of a room (leave, disconnect, close) comes through here."""
        super().basic_leave_room(sid, namespace, room)
        if routed(room):
            self._left[room_channel(self.control, room)] = room

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        if self._local(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
        else:
            await self._control("leave_room", namespace, {"sid": sid, "room": room})

    async def close_room(self, room: Any, namespace: str) -> None:
        self.basic_close_room(room, namespace)
        body = orjson.dumps({"room": room})
        await self._publish_to(namespace, room, None, "close_room", body)

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        if self._local(sid, namespace):
            return await super().can_disconnect(sid, namespace)
        await self._control("disconnect", namespace, {"sid": sid})
        return False

    # -- publishing ----------------------------------------------------------------------

    def _local(self, sid: str, namespace: str) -> bool:
        return bool(self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace))

    async def _publish_to(
        self, namespace: str, room: Any, skip: Any, method: str, body: bytes
    ) -> None:
        """One message per channel concerned, queued for the next pipeline."""
        rooms = None if room is None else [room] if isinstance(room, str) else list(room)
        by_channel: dict[str, list[int]] = {}
        if rooms is None:
            by_channel[self.control] = []
        else:
            for i, r in enumerate(rooms):
                if routed(r):
                    by_channel.setdefault(room_channel(self.control, r), []).append(i)
                elif not self.is_sid_room(namespace, r):
                    # Another worker's socket (or an unnamed room): everyone looks.
                    by_channel.setdefault(self.control, []).append(i)
        if not by_channel:
            return
        skips = None if skip is None else skip if isinstance(skip, list) else [skip]
        frames = [
            (
                channel,
                orjson.dumps([self.host_id, method, namespace, rooms, indices, skips])
                + b"\n"
                + body,
            )
            for channel, indices in by_channel.items()
        ]
        await self._send(frames)

    async def _send(self, frames: list[tuple[str, bytes]]) -> None:
        """Queue frames for the next pipeline and wait until it went out. Emits made while
        a pipeline is in flight (or in the same loop tick) share the next one: under load
        many messages' publishes cost one round trip. One pipeline at a time, in queue
        order, so every channel's messages leave in the order they were emitted."""
        if self._outbox_sent is None:
            self._outbox_sent = asyncio.get_running_loop().create_future()
        sent = self._outbox_sent
        self._outbox.extend(frames)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_queued())
        # Shielded: an emitting task cancelled meanwhile must not cancel the others' wait.
        await asyncio.shield(sent)

    async def _publish_queued(self) -> None:
        while self._outbox:
            frames, self._outbox = self._outbox, []
            sent, self._outbox_sent = self._outbox_sent, None
            try:
                await self._publish_frames(frames)
            finally:
                if sent is not None and not sent.done():
                    sent.set_result(None)

    async def _publish_frames(self, frames: list[tuple[str, bytes]]) -> None:
        for attempt in (1, 2):
            try:
                if len(frames) == 1:
                    await self._redis.publish(*frames[0])
                else:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, frame in frames:
                            pipe.publish(channel, frame)
                        await pipe.execute()
                self.counters.published += len(frames)
                self.counters.pipelines += 1
                return
            except (aioredis.RedisError, OSError) as exc:
                if attempt == 2:
                    # Other workers miss these live; their clients re-join with `after`
                    # once the listener has Redis back.
                    REDIS.failed("Socket.IO publish, not sent to other workers", exc)

    async def _control(self, method: str, namespace: str, args: dict[str, Any]) -> None:
        frame = orjson.dumps([self.host_id, method, namespace, None, [], None])
        try:
            await self._redis.publish(self.control, frame + b"\n" + orjson.dumps(args))
            self.counters.published += 1
        except (aioredis.RedisError, OSError) as exc:
            REDIS.failed(f"Socket.IO {method} for another worker not sent", exc)

    # -- subscriptions -------------------------------------------------------------------

    async def _subscribe(self, channel: str, wait: bool) -> None:
        """Subscribe (once); with `wait`, return when Redis has confirmed it, or after
        `subscribe_wait` seconds (Redis away: the re-join after reconnecting covers it)."""
        if channel not in self._subscribed:
            self._subscribed.add(channel)
            self._confirmed.setdefault(channel, asyncio.get_running_loop().create_future())
            if self._pubsub is not None:
                try:
                    await self._pubsub.subscribe(channel)
                except (aioredis.RedisError, OSError) as exc:
                    log.debug("subscribe %s deferred to the reconnect: %r", channel, exc)
        confirmed = self._confirmed.get(channel)
        if wait and confirmed is not None and not confirmed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(confirmed), self._subscribe_wait)

    def _wanted(self) -> set[str]:
        """The channels the local room table asks for."""
        wanted = {self.control}
        for rooms in self.rooms.values():
            wanted.update(
                room_channel(self.control, r)
                for r, members in rooms.items()
                if routed(r) and members
            )
        return wanted

    async def _sweep(self) -> None:
        """Unsubscribe the channels of rooms that no local socket is in any more (of those
        a socket left since the last sweep)."""
        if not self._left or self._pubsub is None:
            return
        left, self._left = self._left, {}
        idle = {
            channel
            for channel, room in left.items()
            if channel in self._subscribed
            and not any(rooms.get(room) for rooms in self.rooms.values())
        }
        if not idle:
            return
        self._subscribed -= idle
        for channel in idle:
            self._confirmed.pop(channel, None)
        await self._pubsub.unsubscribe(*idle)

    async def _listen_forever(self) -> None:
        delay = LISTEN_RETRY_FIRST
        lost = False
        while True:
            # Errors must reach this loop (no silent reconnect): a reconnect is when the
            # room table is subscribed again and clients are told to re-join.
            # RESP2: a published message is a plain array, not a RESP3 push that redis-py
            # routes through its push-notification handlers (~25 % less reader CPU).
            client = aioredis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), protocol=2)
            pubsub = client.pubsub()
            try:
                sent: set[str] = set()
                # Rooms entered while this subscribes are subscribed too before it is live.
                while todo := (self._wanted() | self._subscribed) - sent:
                    self._subscribed |= todo
                    for channel in todo:
                        confirmed = self._confirmed.get(channel)
                        if confirmed is None or confirmed.done():
                            self._confirmed[channel] = asyncio.get_running_loop().create_future()
                    await pubsub.subscribe(*todo)
                    sent |= todo
                self._pubsub = pubsub
                REDIS.succeeded()
                delay = LISTEN_RETRY_FIRST
                await self._read(pubsub, resubscribed=lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                REDIS.failed("Socket.IO listener", exc)
                log.debug("Socket.IO Redis listener retries in %ss", delay)
                lost = True
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_CAP)

    async def _read(self, pubsub: Any, resubscribed: bool) -> None:
        """Read until the connection fails. `listen()` waits on the socket without a timer
        per message (`get_message(timeout=1)` armed and disarmed one each time: about half
        of the reader's CPU per message); the once-a-second chores run beside it."""
        chores = asyncio.get_running_loop().create_task(self._chores())
        try:
            pending = set(self._subscribed)
            async for message in pubsub.listen():
                kind = message["type"]
                if kind == "message":
                    await self._handle(message["data"])
                elif kind == "subscribe":
                    channel = message["channel"].decode()
                    confirmed = self._confirmed.get(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
                    if pending:
                        pending.discard(channel)
                        if not pending and resubscribed:
                            resubscribed = False
                            await self._resubscribed()
        finally:
            chores.cancel()
        # listen() ends when nothing is subscribed, which the control channel never is.
        raise ConnectionError("Socket.IO Redis listener stopped")

    async def _chores(self) -> None:
        """Every second: unsubscribe the channels of rooms that emptied, report counters.
        A failure here is the reader's to notice (it reconnects); this keeps going."""
        reported: dict[str, int] = {}
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self._sweep()
            except Exception as exc:
                log.debug("room channel sweep failed: %r", exc)
            if self.stats_key and reported != self.counters.as_dict():
                reported = self.counters.as_dict()
                await self._report(reported)

    async def _report(self, counters: dict[str, int]) -> None:
        """This worker's counters in a Redis hash (read by the scale-out benchmark)."""
        assert self.stats_key is not None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(self.stats_key, self.host_id, orjson.dumps(counters))
                pipe.expire(self.stats_key, 120)
                await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            log.debug("pub/sub counters not reported: %r", exc)

    async def _resubscribed(self) -> None:
        """Every room channel is back: let the application tell its clients to re-join."""
        self.counters.resubscribed += 1
        log.warning(
            "Socket.IO Redis listener back: %d channels subscribed again", len(self._subscribed)
        )
        if self.on_resubscribed is None:
            return
        for namespace, rooms in list(self.rooms.items()):
            named = sorted(r for r, members in rooms.items() if routed(r) and members)
            try:
                await self.on_resubscribed(namespace, named)
            except Exception:
                log.exception("re-join notice after the Redis reconnect failed")

    # -- receiving -----------------------------------------------------------------------

    async def _handle(self, frame: bytes) -> None:
        self.counters.received += 1
        head, _, body = frame.partition(b"\n")
        host, method, namespace, rooms, indices, skips = orjson.loads(head)
        if host == self.host_id:
            self.counters.own += 1
            return
        if method == "emit":
            targets = self._targets(namespace, rooms, indices, skips)
            if targets:
                self.counters.delivered += 1
                await self._forward(namespace, body, targets)
            return
        self.counters.decoded += 1
        args = orjson.loads(body)
        if method == "close_room":
            self.basic_close_room(args["room"], namespace)
        elif method in ("enter_room", "leave_room", "disconnect"):
            sid = args["sid"]
            if not self._local(sid, namespace):
                return
            if method == "enter_room":
                # Not waiting for the confirmation: this task is the one that reads it.
                await self._enter_local(sid, namespace, args["room"], None, wait=False)
            elif method == "leave_room":
                self.basic_leave_room(sid, namespace, args["room"])
            else:
                await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)

    async def _forward(self, namespace: str, body: bytes, targets: list[str]) -> None:
        """Send a published event to local sockets as it is: a Socket.IO EVENT packet is
        `2`, the namespace unless it is `/`, and the JSON array (Engine.IO's public
        `send_packet`, what python-socketio's own emit ends in). Written in this turn
        where the socket allows (`send_now`): a task per recipient, awaited, let the
        listener handle one published message per loop turn, so on a busy worker the
        other workers' deliveries queued and 2 workers did worse than 1."""
        prefix = "2" if namespace == "/" else f"2{namespace},"
        pkt = eio_packet.Packet(eio_packet.MESSAGE, prefix + body.decode())
        eio = self.server.eio
        sends = []
        for sid in targets:
            eio_sid = self.eio_sid_from_sid(sid, namespace)
            if eio_sid is not None and not eio.send_now(eio_sid, pkt):
                sends.append(eio.send_packet(eio_sid, pkt))
        if sends:
            await asyncio.gather(*sends)

    def _targets(
        self,
        namespace: str,
        rooms: list[Any] | None,
        indices: Iterable[int],
        skips: list[str] | None,
    ) -> list[str]:
        """This worker's sockets this copy is for: members of room i that are in none of
        the rooms listed before it (they get the copy of that earlier room's channel)."""
        table = self.rooms.get(namespace)
        if not table:
            return []
        skip = set(skips or ())
        if rooms is None:
            members = table.get(None, {})
            return [sid for sid in members if sid not in skip]
        out: list[str] = []
        for i in indices:
            members = table.get(rooms[i])
            if not members:
                continue
            earlier = [table.get(r) or {} for r in rooms[:i]]
            out.extend(
                sid for sid in members if sid not in skip and not any(sid in e for e in earlier)
            )
        return out
