"""The browser's client: socket.io-client v4 (npm) against live server processes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from app.realtime import testpoints
from tests.support import ROOT, Factory, LiveServer, run_node

SCRIPT = ROOT / "tests" / "js" / "chat.mjs"


def run_js(**scenario: object) -> dict:
    if not (ROOT / "tests" / "js" / "node_modules" / "socket.io-client").exists():
        pytest.fail("socket.io-client is not installed: run `npm ci --prefix tests/js`")
    return run_node(SCRIPT, scenario)


@pytest.mark.parametrize(
    "transports",
    [["websocket"], None],
    ids=["websocket", "default-transports"],
)
async def test_browser_client_chats_across_two_servers(make, server, server_b, transports):
    token = await make.admin_token()
    session = await make.session()
    result = run_js(
        customerUrl=server.url,
        adminUrl=server_b.url,
        adminToken=token,
        customerToken=session["customerToken"],
        sessionId=session["id"],
        transports=transports,
    )
    assert result["refusal"] == "Invalid token"
    assert result["transports"] == ["websocket", "websocket"]


CONNECT_PAUSE = 2.0


@pytest.fixture(scope="module")
def pausing_server(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    """Its staff sockets' connect handlers wait CONNECT_PAUSE s before answering."""
    env = {testpoints.CONNECT_PAUSE: str(CONNECT_PAUSE)}
    with LiveServer.running("connect-pause", database_url, redis_url, **env) as live:
        yield live


@pytest.mark.parametrize(
    "transports", [["websocket"], None], ids=["websocket", "default-transports"]
)
async def test_a_staff_socket_hears_no_event_before_its_connect(pausing_server, transports):
    async with httpx.AsyncClient(base_url=pausing_server.url, timeout=10) as api:
        make = Factory(api)
        token = await make.admin_token()
        session = await make.session()
    result = run_node(
        ROOT / "tests" / "js" / "connect_order.mjs",
        {
            "url": pausing_server.url,
            "adminToken": token,
            "customerToken": session["customerToken"],
            "transports": transports,
        },
    )
    assert result["customerFirst"], "the customer connected after the agent's answer"
    # Online was announced before the agent was answered: not for it. Offline came after.
    assert result["agent"] == ["connect", "presence:false"]


def test_the_connect_pause_is_never_read_in_production() -> None:
    environ = {testpoints.CONNECT_PAUSE: "5"}
    assert testpoints.connect_pause(Settings(), environ) == 5.0
    assert testpoints.connect_pause(Settings(env="production"), environ) == 0.0
