"""/docs renders Swagger UI with no internet: the server serves the assets itself."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.api.docs import VERSION
from tests.support import ARTIFACTS, ROOT, LiveServer, run_node

SCRIPT = ROOT / "tests" / "js" / "docs.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(autouse=True)
def clean() -> None:
    """Overrides the shared PostgreSQL/Redis cleanup: these tests touch neither."""


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("docs") / "helpline.sqlite3"
    live = LiveServer("docs", {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(path)})
    live.start(timeout=60)
    try:
        yield live
    finally:
        live.stop()


def test_docs_page_loads_its_assets_from_this_server(embedded):
    page = httpx.get(f"{embedded.url}/docs").text
    assert "cdn" not in page.lower() and "https://" not in page
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        path = f"/docs/assets/{VERSION}/{name}"
        assert path in page
        r = httpx.get(embedded.url + path)
        assert r.status_code == 200 and len(r.content) > 10_000
        assert "immutable" in r.headers["cache-control"]


def test_docs_assets_serve_only_their_own_files(embedded):
    for path in (f"/docs/assets/{VERSION}/..%2f__init__.py", "/docs/assets/0.0.1/swagger-ui.css"):
        assert httpx.get(embedded.url + path).status_code == 404


def test_docs_can_be_turned_off(tmp_path):
    env = {"DATABASE_URL": "", "REDIS_URL": "", "SQLITE_PATH": str(tmp_path / "x.sqlite3")}
    live = LiveServer("docs-off", {**env, "DOCS_ENABLED": "false"})
    live.start(timeout=60)
    try:
        codes = [httpx.get(live.url + p).status_code for p in ("/docs", "/docs/openapi.json")]
        codes.append(httpx.get(f"{live.url}/docs/assets/{VERSION}/swagger-ui.css").status_code)
    finally:
        live.stop()
    assert codes == [404, 404, 404]


def test_docs_render_in_chromium_with_every_other_host_unresolvable(embedded):
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail(f"needs node and Chromium at {CHROMIUM} (apt-get install -y chromium)")
    shot = ARTIFACTS / "docs-offline.png"
    shot.unlink(missing_ok=True)
    scenario = {"url": embedded.url, "artifacts": str(ARTIFACTS), "chromium": CHROMIUM}
    result = run_node(SCRIPT, {**scenario, "offline": True})
    assert result["title"].startswith("Helpline")
    assert result["operations"] >= 10
    assert {urlsplit(u).hostname for u in result["requests"]} == {"127.0.0.1"}
    assert result["failed"] == []
    assert shot.stat().st_size > 0
