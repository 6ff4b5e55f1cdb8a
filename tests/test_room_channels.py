"""Per-room Redis channels (app/realtime/manager.py): a worker subscribes to the rooms its
sockets are in and receives nothing else; a join subscribes before it reads history; after
a Redis restart every room is subscribed again and its clients are told to re-join.

Two server processes share a private Redis (these tests stop it), as two workers would.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from app.broadcast import ADMINS_ROOM
from app.config import Settings
from app.realtime import testpoints
from app.realtime.manager import RoomChannelManager, room_channel
from app.realtime.server import channel_name
from tests.faults import PrivateRedis
from tests.sockets import Client, matching
from tests.support import REDIS_NAMESPACE, Factory, LiveServer

COUNTERS = f"{REDIS_NAMESPACE}:socketio:counters"


def channel(redis_url: str, room: str) -> str:
    """The room's channel as the servers name it (server.channel_name, manager.room_channel)."""
    settings = Settings(redis_url=redis_url, redis_namespace=REDIS_NAMESPACE)
    return room_channel(channel_name(settings), room)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis.running() as instance:
        yield instance


@pytest.fixture
def pair(database_url: str, private_redis: PrivateRedis) -> Iterator[tuple[LiveServer, LiveServer]]:
    with (
        LiveServer.running("rooms-a", database_url, private_redis.url) as a,
        LiveServer.running("rooms-b", database_url, private_redis.url) as b,
    ):
        yield a, b


@pytest.fixture
async def bus(private_redis: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(private_redis.url)
    yield client
    await client.aclose()


async def subscribers(bus: aioredis.Redis, room: str) -> int:
    url = bus.connection_pool.connection_kwargs
    [(_, count)] = await bus.pubsub_numsub(
        channel(f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}", room)
    )
    return int(count)


async def counters(bus: aioredis.Redis) -> list[dict[str, Any]]:
    """Each worker's listener counters, as it last reported them (about every second),
    with the worker's host id."""
    raw = await bus.hgetall(COUNTERS)
    return [
        {**orjson.loads(v), "host": k.decode() if isinstance(k, bytes) else k}
        for k, v in raw.items()
    ]


async def eventually(probe: Any, within: float = 10) -> Any:
    """Poll `probe()` (plain or async) until it is true or `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_a_worker_receives_only_the_rooms_its_sockets_are_in(pair, bus):
    a, b = pair
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as api:
        make = Factory(api)
        agent = await make.admin_token()
        here, there = await make.session(), await make.session()
        customer_a = await Client(a.url, here["customerToken"]).connect()
        customer_b = await Client(b.url, there["customerToken"]).connect()
        try:
            await customer_a.call("join_session", here["id"])
            await customer_b.call("join_session", there["id"])
            assert await subscribers(bus, f"session:{here['id']}") == 1
            assert await subscribers(bus, f"session:{there['id']}") == 1
            assert await subscribers(bus, "admins") == 0  # no staff socket anywhere
            # Both listeners' counters reported (each reports about once a second).
            assert await eventually(lambda: _has_two(counters(bus)))
            await asyncio.sleep(2.5)
            before = {c["host"]: c for c in await counters(bus)}
            for n in range(20):
                await make.message(agent, here["id"], f"to a {n}")  # published by b
            await eventually(lambda: len(customer_a.of("new_message")) == 20)

            async def change(name: str) -> list[int]:
                now = await counters(bus)
                return sorted(c[name] - before[c["host"]][name] for c in now)

            # b (the publisher) is in neither room: nothing comes back to it. a gets each
            # message once, on the session's channel, and delivers every one it gets.
            await eventually(lambda: _equals(change("received"), [0, 20]))
            assert await change("received") == [0, 20]
            assert await change("delivered") == [0, 20]
            assert customer_b.of("new_message") == []

            await customer_a.call("leave_session", here["id"])
            gone = await eventually(
                lambda: _is_zero(subscribers(bus, f"session:{here['id']}")), within=12
            )
            assert await subscribers(bus, f"session:{there['id']}") == 1
            assert gone, "the channel of a room nobody is in was not unsubscribed"
        finally:
            await customer_a.close()
            await customer_b.close()


async def _is_zero(count: Any) -> bool:
    return await count == 0


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


async def _has_two(value: Any) -> bool:
    return len(await value) == 2


async def test_staff_on_any_worker_get_every_message_once(pair):
    a, b = pair
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as api:
        make = Factory(api)
        token = await make.admin_token()
        session = await make.session()
        customer = await Client(a.url, session["customerToken"]).connect()
        watching = await Client(b.url, token).connect()  # admins room only
        inside = await Client(b.url, token).connect()  # admins room and the session's
        try:
            await customer.call("join_session", session["id"])
            await inside.call("join_session", session["id"])
            for n in range(5):
                ack = await customer.call(
                    "send_message", {"sessionId": session["id"], "content": f"m{n}"}
                )
                assert ack["ok"], ack
            # Each staff client's own round trip: a second copy its worker had sent is
            # in by the answer.
            for staff in (watching, inside):
                await eventually(lambda s=staff: len(s.of("new_message")) >= 5)
                await staff.round_trip()
            for staff in (watching, inside):
                assert [m["content"] for m in staff.of("new_message")] == [
                    f"m{n}" for n in range(5)
                ]
        finally:
            for client in (customer, watching, inside):
                await client.close()


async def test_a_message_posted_on_another_worker_during_a_join_is_not_missed(
    database_url, private_redis
):
    """The join subscribes to the room's channel (confirmed by Redis) before it reads
    the history, so a message published by another worker in between arrives live."""
    pause = 0.3
    env = {testpoints.JOIN_PAUSE: str(pause)}
    with (
        LiveServer.running("rooms-join", database_url, private_redis.url, **env) as a,
        LiveServer.running("rooms-post", database_url, private_redis.url) as b,
    ):
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as api:
            make = Factory(api)
            agent = await make.admin_token()
            missed = []
            for round_ in range(6):
                session = await make.session()
                customer = await Client(a.url, session["customerToken"]).connect()
                try:
                    join = asyncio.create_task(customer.call("join_session", session["id"]))
                    await asyncio.sleep(pause * (0.2 + 0.6 * round_ / 6))
                    sent = await make.message(agent, session["id"], f"during join {round_}")
                    ack = await join
                    assert ack["ok"], ack
                    if sent["seq"] not in {m["seq"] for m in ack["messages"]}:
                        try:
                            await customer.wait_for(
                                "new_message", matching(seq=sent["seq"]), within=5
                            )
                        except AssertionError:
                            missed.append(round_)
                finally:
                    await customer.close()
            assert missed == []


async def test_after_a_redis_restart_clients_are_told_to_rejoin_and_catch_up(pair, private_redis):
    a, b = pair
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as api:
        make = Factory(api)
        token = await make.admin_token()
        session = await make.session()
        customer = await Client(a.url, session["customerToken"]).connect()
        staff = await Client(b.url, token).connect()
        try:
            await customer.call("join_session", session["id"])
            first = await make.message(token, session["id"], "before the outage")
            await customer.wait_for("new_message")

            await asyncio.to_thread(private_redis.stop)
            try:
                missed = await make.message(token, session["id"], "while redis is down")
            finally:
                await asyncio.to_thread(private_redis.start)

            notice = await customer.wait_for("rejoin", within=15)
            assert notice == {"sessionId": session["id"]}
            assert await staff.wait_for("rejoin", within=15) == {"sessionId": None}
            ack = await customer.call(
                "join_session", {"sessionId": session["id"], "after": first["seq"]}
            )
            assert [m["id"] for m in ack["messages"]] == [missed["id"]]

            after = await make.message(token, session["id"], "after the restart")
            await customer.wait_for("new_message", lambda m: m["id"] == after["id"], within=5)
        finally:
            await customer.close()
            await staff.close()


async def test_emits_made_together_share_one_publish_round_trip_in_order(
    private_redis: PrivateRedis, bus: aioredis.Redis
):
    manager = RoomChannelManager(private_redis.url, "batch-test")
    rooms = ["session:batch", ADMINS_ROOM]
    listener = bus.pubsub()
    await listener.subscribe(*(room_channel("batch-test", r) for r in rooms))
    try:
        await asyncio.gather(
            *(manager.emit("new_message", {"n": n}, "/", room=rooms) for n in range(50))
        )
        # 50 emits to two rooms: 100 PUBLISHes, in one pipeline (two if the first emit's
        # went out before the others were queued).
        assert manager.counters.published == 100
        assert manager.counters.pipelines <= 2
        heard: dict[str, list[int]] = {}
        deadline = time.monotonic() + 10
        while sum(map(len, heard.values())) < 100 and time.monotonic() < deadline:
            message = await listener.get_message(timeout=1)
            if message is None or message["type"] != "message":
                continue
            body = orjson.loads(message["data"].partition(b"\n")[2])
            heard.setdefault(message["channel"].decode(), []).append(body[1]["n"])
        assert list(heard.values()) == [list(range(50))] * 2
    finally:
        await listener.aclose()
        await manager._redis.aclose()
