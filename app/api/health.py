"""Liveness and readiness for the platform's router and for operators."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic_ext.extensions.openapi import openapi

from app import db
from app.api.common import documented, json, obj, services

bp = Blueprint("health")

RELAY = obj(
    [],
    worker={"type": "string", "description": "this worker's id (Engine.IO sids start with it)"},
    relayed={"type": "integer", "description": "polling requests forwarded to their owner"},
    answered={"type": "integer", "description": "requests other workers forwarded here"},
    inFlight={"type": "integer"},
    timeouts={"type": "integer"},
    refused={"type": "integer"},
    ownerGone={"type": "integer"},
    lateReplies={"type": "integer"},
    longestWaitMs={"type": "integer"},
)
READY = obj(
    ["status", "checks"],
    status={"type": "string", "enum": ["ok", "unavailable"]},
    checks=obj([], database={"type": "string"}, redis={"type": "string"}),
    relay=RELAY,
)


@bp.get("/health")
@documented("Liveness", tag="health", ok=(200, obj(["status"], status={"type": "string"})))
async def health(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, timeout=2)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means "not ready"; the reason goes to the body
        return f"down: {type(exc).__name__}"
    return "ok"


@bp.get("/health/ready")
@documented(
    "Readiness: PostgreSQL and Redis reachable",
    tag="health",
    ok=(200, READY),
    description="503 with the same body when either is down; `checks` says which.",
)
@openapi.response(503, {"application/json": READY}, "PostgreSQL or Redis is down")
async def ready(request: Request) -> HTTPResponse:
    ctx = services(request)
    database, redis = await asyncio.gather(_check(db.ping()), _check(ctx.state.ping()))
    checks = {"database": database, "redis": redis if ctx.settings.redis_url else "embedded"}
    ok = database == "ok" and redis == "ok"
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    relay = getattr(request.app.ctx, "relay", None)
    if relay is not None:
        # The answering worker's long-polling relay counters (see app/realtime/affinity.py).
        body["relay"] = relay.stats.as_dict()
    return json(body, status=200 if ok else 503)
