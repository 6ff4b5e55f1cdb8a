"""Every socket event, fed hypothesis-generated payloads by a real python-socketio client:
each known event answers an ack `{ok, ...}` (never a 500-style `internal_error`), the
connection survives, and so does the server."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sockets import Client
from tests.support import LiveServer

EVENTS = ["join_session", "leave_session", "send_message", "typing", "mark_read"]
EXAMPLES = 3000

scalars = (
    st.none()
    | st.booleans()
    # JSON numbers a client can send: the codec (orjson) encodes 64-bit integers only.
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
    | st.sampled_from(["", " ", "\x00", "user", "admin", "null", "0", "-1", "1e309"])
    | st.uuids().map(str)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def payloads(real: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly well-shaped objects with wrong, odd or real values; sometimes anything."""
    ids = st.sampled_from([real["session_id"], real["message_id"], str(uuid.uuid4())])
    field = ids | json_values
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "sessionId": field,
            "messageId": field,
            "content": st.text(max_size=6000) | json_values,
            "clientMessageId": st.text(max_size=120) | json_values,
            "after": st.integers(min_value=-5, max_value=2**40) | json_values,
            "isTyping": st.booleans() | json_values,
            "userType": st.sampled_from(["user", "admin"]) | json_values,
            "senderType": st.sampled_from(["user", "admin"]) | json_values,
        },
    )
    return shaped | json_values | ids | st.binary(max_size=64)


# EXAMPLES in all, in shards of one class each: pytest-xdist (`--dist loadscope`) spreads
# classes over its workers. Each shard fuzzes every event, interleaved on its clients.
SHARDS = 4


class Shard:
    """EXAMPLES / SHARDS of the examples, on clients and a session of its own."""

    async def test_no_socket_event_payload_breaks_an_ack_or_the_connection(
        self, make: Any, server: LiveServer
    ) -> None:
        await fuzz_events(make, server, EXAMPLES // SHARDS)


class TestShard0(Shard):
    pass


class TestShard1(Shard):
    pass


class TestShard2(Shard):
    pass


class TestShard3(Shard):
    pass


def test_the_shards_make_up_every_example() -> None:
    assert len(Shard.__subclasses__()) * (EXAMPLES // SHARDS) == EXAMPLES


async def fuzz_events(make: Any, server: LiveServer, examples: int) -> None:
    figures: Counter[str] = Counter()
    token = await make.admin_token()
    session = await make.session()
    seed = await make.message(session["customerToken"], session["id"], "seed")
    real = {"session_id": session["id"], "message_id": seed["id"]}
    clients = {
        "admin": await Client(server.url, token).connect(),
        "customer": await Client(server.url, session["customerToken"]).connect(),
    }
    loop = asyncio.get_running_loop()

    @given(
        who=st.sampled_from(sorted(clients)),
        event=st.sampled_from(EVENTS),
        payload=payloads(real),
        extra=st.lists(json_values, max_size=2),
    )
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(who: str, event: str, payload: Any, extra: list[Any]) -> None:
        client = clients[who]
        args = (payload, *extra) if extra else payload
        ack = asyncio.run_coroutine_threadsafe(client.call(event, args), loop).result(15)
        figures["events"] += 1
        figures["ok" if ack.get("ok") else "refused"] += 1
        assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
        if not ack["ok"]:
            figures[ack["error"]["code"]] += 1
            assert ack["error"]["code"] not in ("internal_error", "service_unavailable"), ack
        assert client.sio.connected, "the server dropped the connection"

    try:
        # Hypothesis drives a synchronous test: run it in a thread, the clients stay here.
        await asyncio.to_thread(fuzz)
        print(f"\n[fuzz:socket] {dict(figures)}")
        assert figures["events"] >= examples // 2
        assert figures["internal_error"] == 0
        for client in clients.values():
            assert client.sio.connected
        assert server.process is not None and server.process.poll() is None
        async with httpx.AsyncClient(base_url=server.url) as api:
            assert (await api.get("/health/ready")).status_code == 200
    finally:
        for client in clients.values():
            await client.close()
