"""The Procfile's `web:` process with several workers, as socket.io-client reaches it.

Long-polling requests of one client are spread over workers by the kernel; a worker
relays those of sessions it does not hold to the owner through Redis (affinity.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.sockets import Client
from tests.support import LiveServer
from tests.test_js_client import run_js


@pytest.fixture(scope="module")
def workers(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer.running("workers", database_url, redis_url, WEB_CONCURRENCY="2") as live:
        yield live


@pytest.mark.parametrize(
    "transports", [None, ["polling"], ["websocket"]], ids=["default", "polling", "websocket"]
)
async def test_browser_client_works_against_two_workers(make, workers, transports):
    token = await make.admin_token()
    session = await make.session()
    result = run_js(
        customerUrl=workers.url,
        adminUrl=workers.url,
        adminToken=token,
        customerToken=session["customerToken"],
        sessionId=session["id"],
        transports=transports,
        rounds=8,
    )
    assert result["rounds"] == 8


async def test_polling_client_keeps_its_session_across_many_requests(make, workers):
    token = await make.admin_token()
    session = await make.session()
    customer = await Client(workers.url, session["customerToken"], ["polling"]).connect()
    admin = await Client(workers.url, token, ["polling"]).connect()
    try:
        await customer.call("join_session", session["id"])
        for n in range(30):
            ack = await customer.call(
                "send_message", {"sessionId": session["id"], "content": f"poll {n}"}
            )
            assert ack["ok"], ack
        received = set()
        for _ in range(200):
            received = {m["content"] for m in admin.of("new_message")}
            if len(received) == 30:
                break
            await asyncio.sleep(0.05)
        assert received == {f"poll {n}" for n in range(30)}
    finally:
        await customer.close()
        await admin.close()


@pytest.mark.parametrize("which", ["server", "workers"])
async def test_a_polling_client_that_disconnects_is_let_go_at_once(make, request, which):
    """Its pending long-poll GET is answered on close, not left to the ping timeout
    (~30 s), which a client waiting for it on disconnect would otherwise sit through."""
    url = request.getfixturevalue(which).url
    token = await make.admin_token()
    admin = await Client(url, token, ["polling"]).connect()
    # Time for the client's long-poll GET to be pending (what the close must answer).
    await asyncio.sleep(0.2)
    await asyncio.wait_for(admin.close(), timeout=10)
