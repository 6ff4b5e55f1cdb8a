"""The browser's client: socket.io-client v4 (npm) against live server processes."""

from __future__ import annotations

import pytest

from tests.support import ROOT, run_node

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
