"""The demo console at /demo: a customer widget and an agent inbox, plain HTML/JS/CSS.

Registered only when DEMO_ENABLED (off in production unless asked for). The browser's
Socket.IO client is the npm package installed under app/demo (`npm ci --prefix app/demo`,
which scripts/serve.sh runs) and served from here, never from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse, file
from sanic_ext.extensions.openapi import openapi

from app import db
from app.api.common import json
from app.errors import NotFound, ServiceUnavailable
from app.models import Desk

ROOT = Path(__file__).resolve().parent.parent / "demo"
STATIC = ROOT / "static"
CLIENT = ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
PAGES = {"": "index.html", "customer": "customer.html", "agent": "agent.html"}
TYPES = {".js": "text/javascript", ".css": "text/css"}
ASSETS = {p.name: TYPES[p.suffix] for p in STATIC.iterdir() if p.suffix in TYPES}
# Same-origin only: the pages talk to this server and load nothing from elsewhere.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

bp = Blueprint("demo", url_prefix="/demo")


class AssetsMissing(ServiceUnavailable):
    code = "demo_assets_missing"


@bp.get("", strict_slashes=False)
async def index(request: Request) -> HTTPResponse:
    return await file(STATIC / PAGES[""], headers=HEADERS)


@bp.get("/<page:customer|agent>")
async def page(request: Request, page: str) -> HTTPResponse:
    return await file(STATIC / PAGES[page], headers=HEADERS)


@bp.get("/desk")
async def desk(request: Request) -> HTTPResponse:
    """Whether the desk is new (no admin yet): the inbox then offers "Create first admin"
    first. No secret: registering answers `registration_closed` on a set-up desk anyway."""
    row = await db.fetch_one("SELECT EXISTS (SELECT 1 FROM admin) AS taken")
    return json(Desk(hasAdmin=bool(row and row["taken"])))


@bp.get("/socket.io.min.js")
async def socketio_client(request: Request) -> HTTPResponse:
    if not CLIENT.is_file():
        raise AssetsMissing(
            "The demo's socket.io-client is not installed: run `npm ci --prefix app/demo`"
        )
    return await file(CLIENT, mime_type="text/javascript", headers=HEADERS)


@bp.get("/static/<name:str>")
async def asset(request: Request, name: str) -> HTTPResponse:
    # Only files that are there by name: no path ever reaches the filesystem.
    if name not in ASSETS:
        raise NotFound("Not found")
    return await file(STATIC / name, mime_type=ASSETS[name], headers=HEADERS)


def install(app: Sanic) -> None:
    app.blueprint(bp)
    openapi.exclude(bp=bp)
