"""The demo console: served by the server itself (socket.io-client from npm, no CDN), off
in production unless asked for, and working end to end in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ARTIFACTS, PASSWORD, ROOT, LiveServer, run_node

SCRIPT = ROOT / "tests" / "js" / "demo.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CLIENT_JS = ROOT / "app" / "demo" / "node_modules" / "socket.io-client" / "dist"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """What a new user runs: no DATABASE_URL/REDIS_URL, so the desk starts empty."""
    path = tmp_path_factory.mktemp("demo") / "helpline.sqlite3"
    live = LiveServer("demo", {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(path)})
    live.start(timeout=60)
    try:
        yield live
    finally:
        live.stop()


def test_demo_pages_and_the_npm_socketio_client_are_served(embedded):
    for path in ("/demo", "/demo/customer", "/demo/agent"):
        r = httpx.get(embedded.url + path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "cdn" not in r.text.lower()
    r = httpx.get(f"{embedded.url}/demo/socket.io.min.js")
    assert r.status_code == 200
    assert r.content == (CLIENT_JS / "socket.io.min.js").read_bytes()


def test_demo_serves_only_its_own_files(embedded):
    for path in ("/demo/static/../package.json", "/demo/static/%2e%2e%2fpackage.json"):
        assert httpx.get(embedded.url + path).status_code == 404


def test_demo_is_off_in_production(database_url, redis_url):
    with LiveServer.running("demo-off", database_url, redis_url, ENV="production") as live:
        assert httpx.get(f"{live.url}/demo").status_code == 404


def test_demo_enabled_in_production_by_setting(database_url, redis_url):
    with LiveServer.running(
        "demo-on", database_url, redis_url, ENV="production", DEMO_ENABLED="true"
    ) as live:
        assert httpx.get(f"{live.url}/demo").status_code == 200


def test_customer_and_agent_chat_in_a_real_browser(embedded):
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail(f"needs node and Chromium at {CHROMIUM} (apt-get install -y chromium)")
    if not (ROOT / "tests" / "js" / "node_modules" / "playwright-core").exists():
        pytest.fail("playwright-core is not installed: run `npm ci --prefix tests/js`")
    scenario = {
        "url": embedded.url,
        "artifacts": str(ARTIFACTS),
        "email": "agent@example.com",
        "password": PASSWORD,
        "chromium": CHROMIUM,
    }
    shots = ("customer", "agent", "console", "team", "team-signed-out")
    for shot in shots:
        (ARTIFACTS / f"demo-{shot}.png").unlink(missing_ok=True)
    result = run_node(SCRIPT, scenario, timeout=180)
    assert result["agentSawTyping"] and result["customerSawTyping"]
    # The Team panel: invite + link, agents see none, role change, deactivation signs out.
    assert result["invitationLink"] and result["agentSawNoTeamPanel"]
    assert result["roleChanged"] and result["deactivatedSignedOut"]
    for shot in shots:
        assert (ARTIFACTS / f"demo-{shot}.png").stat().st_size > 0


def test_demo_fixes_hold_in_chromium_at_desktop_and_phone_width(tmp_path):
    """A fresh desk, per-row presence and typing (presence also right after the agent
    reloads), closed after a reload, the missing
    client named, buttons that look like buttons, nothing wider than 390 px."""
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail(f"needs node and Chromium at {CHROMIUM} (apt-get install -y chromium)")
    env = {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(tmp_path / "fresh.sqlite3")}
    live = LiveServer("demo-fixes", env)
    live.start(timeout=60)
    try:
        scenario: dict[str, object] = {
            "url": live.url,
            "artifacts": str(ARTIFACTS),
            "email": "first@example.com",
            "password": PASSWORD,
            "chromium": CHROMIUM,
        }
        result = run_node(ROOT / "tests" / "js" / "demo_fixes.mjs", scenario, timeout=180)
    finally:
        live.stop()
    assert len(result["steps"]) == 6


def test_two_agents_claim_and_hand_over_in_chromium(tmp_path):
    """Mine / Unassigned / All, Claim (two at once: one wins, the other is told), the
    owner on each row, a hand-over, the agent's own status switch."""
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail(f"needs node and Chromium at {CHROMIUM} (apt-get install -y chromium)")
    env = {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(tmp_path / "owners.sqlite3")}
    live = LiveServer("demo-ownership", env)
    live.start(timeout=60)
    shots = ("ownership-first", "ownership-second", "ownership-customer")
    for shot in shots:
        (ARTIFACTS / f"demo-{shot}.png").unlink(missing_ok=True)
    try:
        scenario: dict[str, object] = {
            "url": live.url,
            "artifacts": str(ARTIFACTS),
            "password": PASSWORD,
            "chromium": CHROMIUM,
        }
        result = run_node(ROOT / "tests" / "js" / "demo_assign.mjs", scenario, timeout=180)
    finally:
        live.stop()
    assert result["oneClaimWon"] and result["handedOver"] and result["statusSwitched"]
    for shot in shots:
        assert (ARTIFACTS / f"demo-{shot}.png").stat().st_size > 0


def test_the_agent_workspace_in_chromium(tmp_path):
    """Notes toggle, labels and the label filter, `/` canned responses filled for the
    customer, search with marked hits; the customer's page never shows the note."""
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail(f"needs node and Chromium at {CHROMIUM} (apt-get install -y chromium)")
    env = {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(tmp_path / "ws.sqlite3")}
    live = LiveServer("demo-workspace", env)
    live.start(timeout=60)
    shots = ("canned", "search", "agent", "customer")
    for shot in shots:
        (ARTIFACTS / f"workspace-{shot}.png").unlink(missing_ok=True)
    try:
        scenario: dict[str, object] = {
            "url": live.url,
            "artifacts": str(ARTIFACTS),
            "email": "grace@example.com",
            "password": PASSWORD,
            "chromium": CHROMIUM,
        }
        result = run_node(ROOT / "tests" / "js" / "workspace.mjs", scenario, timeout=180)
    finally:
        live.stop()
    assert result["customerSawNoNote"] and result["cannedFilled"]
    assert result["labelFilter"] and result["searchOpened"]
    assert result["interleaved"] == ["theirs", "note", "mine"]
    for shot in shots:
        assert (ARTIFACTS / f"workspace-{shot}.png").stat().st_size > 0
