"""Liveness and readiness for the platform's router and for operators."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic_ext.extensions.openapi import openapi

from app import contract, db
from app.api.common import documented, json, services
from app.models import Checks, Liveness, Readiness, RelayCounters
from app.state import StateUnavailable

bp = Blueprint("health")


@bp.get("/health")
@documented("Liveness", who="anyone", tag="health", ok=(200, Liveness))
async def health(request: Request) -> HTTPResponse:
    return json(Liveness(status="ok"))


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, timeout=2)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means "not ready"; the reason goes to the body
        # The state store's own error wraps the reason an operator can act on.
        reason = exc.__cause__ if isinstance(exc, StateUnavailable) and exc.__cause__ else exc
        return f"down: {type(reason).__name__}"
    return "ok"


@bp.get("/health/ready")
@documented(
    "Readiness: PostgreSQL and Redis reachable",
    who="anyone",
    tag="health",
    ok=(200, Readiness),
    description="503 with the same body when either is down; `checks` says which, `relay` "
    "the answering worker's polling-relay counters.",
)
@openapi.response(
    503, {"application/json": contract.schema(Readiness)}, "PostgreSQL or Redis is down"
)
async def ready(request: Request) -> HTTPResponse:
    ctx = services(request)
    database, redis = await asyncio.gather(_check(db.ping()), _check(ctx.state.ping()))
    ok = database == "ok" and redis == "ok"
    body = Readiness(
        status="ok" if ok else "unavailable",
        checks=Checks(database=database, redis=redis if ctx.settings.redis_url else "embedded"),
    )
    relay = getattr(request.app.ctx, "relay", None)
    if relay is not None:
        # The answering worker's long-polling relay counters (see app/realtime/affinity.py).
        body.relay = RelayCounters(**relay.stats.as_dict())
    return json(body, status=200 if ok else 503)
