"""The app factory: settings → services → blueprints, Socket.IO and listeners."""

from __future__ import annotations

import asyncio
import logging

import orjson
from piccolo.engine.base import Engine
from sanic import Sanic

from app import db, heap, hooks, logs, metrics, stopping
from app.api import access, demo, docs, errors
from app.api import metrics as metrics_api
from app.api.common import authenticate
from app.api.routes import BLUEPRINTS
from app.config import ConfigError, Settings
from app.context import Services
from app.domain import message_writer, search_upkeep
from app.realtime import testpoints
from app.realtime.handlers import Realtime
from app.realtime.server import SocketBroadcaster, create_server, mount, relay_for

log = logging.getLogger(__name__)


def _dumps(value: object) -> str:
    # Sanic's own JSON (the OpenAPI document keys responses by int status codes).
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_app(settings: object = None, *, database: Engine | None = None) -> Sanic:
    """Build the app; `settings` defaults to the environment's (Sanic's CLI passes its
    own argument namespace to factories, which is ignored) and `database` to the engine
    the settings name."""
    if not isinstance(settings, Settings):
        settings = Settings.from_env()
    problems = settings.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    # Library private names we override: refuse a release where they changed.
    hooks.check()
    logs.configure(settings.log_level, settings.log_format)

    # Sanic's own logging setup would add handlers and formats of its own (app/logs.py).
    app = stopping.App("helpline", dumps=_dumps, configure_logging=False)
    _configure(app, settings)
    services = Services.build(settings, database=database)
    db.bind(services.database)
    app.ctx.settings = settings
    app.ctx.services = services

    app.on_request(authenticate)
    for bp in BLUEPRINTS:
        app.blueprint(bp)
    app.blueprint(metrics_api.bp)
    docs.install(app, settings.docs_enabled)
    if settings.demo_enabled:
        demo.install(app)
    errors.install(app)
    access.install(app)

    sio = create_server(settings)
    mount(app, sio)
    services.broadcaster = SocketBroadcaster(sio)
    app.ctx.sio = sio
    # Its counters are read by /health/ready.
    app.ctx.relay = relay_for(sio, settings)
    realtime = Realtime(sio, services)
    _start_in_order(app, services, realtime)
    _stop_in_order(app, services, realtime)
    return app


def _configure(app: Sanic, settings: Settings) -> None:
    """Sanic's and sanic-ext's settings: body cap, JSON errors, CORS, the OpenAPI page."""
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.CORS_ORIGINS = settings.cors_origins
    app.config.CORS_ALLOW_HEADERS = ["authorization", "content-type"]
    app.config.CORS_EXPOSE_HEADERS = ["link", "retry-after", "x-request-id"]
    app.config.OAS_UI_DEFAULT = "swagger"
    app.config.OAS_URL_PREFIX = "/docs"
    docs.configure(app, settings.docs_enabled)
    app.config.API_TITLE = "Helpline"
    app.config.API_VERSION = "1"
    app.config.API_DESCRIPTION = (
        "Customer-support chat: REST here, realtime over Socket.IO at /socket.io "
        "(see the README's event reference). Errors answer `{error, code, details?}`."
    )
    app.config.API_SECURITY = [{"token": []}]
    app.config.API_SECURITY_DEFINITIONS = {
        "token": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    app.ext.openapi.add_security_scheme("token", "http", scheme="bearer", bearer_format="JWT")


def _start_in_order(app: stopping.App, services: Services, realtime: Realtime) -> None:
    """A worker's start: the database pool and the relay before it serves, then the
    background tasks."""
    settings = services.settings
    sio, relay = app.ctx.sio, app.ctx.relay

    @app.before_server_start
    async def open_resources(app: stopping.App) -> None:
        app.hold_stops()
        try:
            await db.start(settings.db_pool_min, settings.db_pool_max)
        except db.UNAVAILABLE as exc:
            # Serve anyway: requests answer 503 until the database is back.
            log.error("database unavailable at start: %r", exc)
        if relay is not None:
            # Before the worker serves: a polling request for another worker's session
            # that arrived first would meet the local Engine.IO, which answers 400
            # "Invalid session" and makes the client start over.
            await relay.start()
        # Said before the first request is served (the port is bound by now), so a log
        # reader who sees an answer has seen the line.
        log.info(
            "listening on http://%s:%d, %s",
            settings.host,
            settings.port,
            settings.describe_mode(),
        )

    start_pause = testpoints.start_pause(settings)

    @app.after_server_start
    async def start_background(app: stopping.App) -> None:
        # Sanic replaced the handlers since open_resources: take them back.
        app.hold_stops()
        # Our own tasks, not app.add_task: Sanic logs a warning for every task it cancels.
        app.ctx.background = [
            asyncio.create_task(metrics.sample_pool_forever(db.pool), name="pool-sampler"),
            asyncio.create_task(realtime.run_background(), name="presence-sweep"),
            # Revocations from other workers: drop cached account checks, disconnect sockets.
            asyncio.create_task(services.revocations.run(), name="revocation-listener"),
            asyncio.create_task(sio.sweep_unauthenticated(), name="socket-guard-sweep"),
        ]
        if db.is_postgres():
            writer = message_writer.writer()
            app.ctx.background.append(
                asyncio.create_task(
                    search_upkeep.flush_forever(lambda: writer.stored), name="search-upkeep"
                )
            )
        # What start-up made stays out of every collection from now on. Done from the
        # loop, not in this listener: the ~100 ms freeze held the loop pass in which the
        # listeners end, where Sanic lost a SIGTERM (stopping.App now holds such a stop).
        asyncio.get_running_loop().call_soon(heap.settle)
        if start_pause:
            await asyncio.sleep(start_pause)


def _stop_in_order(app: Sanic, services: Services, realtime: Realtime) -> None:
    """A worker's stop, each step bounded: tasks, events under way, client connections,
    the relay, then the pool and Redis clients."""
    sio, relay = app.ctx.sio, app.ctx.relay

    # Sanic's wait for open connections between the stop phases; every step of ours is
    # bounded too (app/stopping.py), so a SIGTERMed worker always exits.
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = stopping.GRACEFUL

    @app.before_server_stop
    async def stop_realtime(app: Sanic) -> None:
        # Sanic may run the stop listeners twice (uvloop after loop.stop()): one Stop.
        stop = app.ctx.stop = getattr(app.ctx, "stop", None) or stopping.Stop()
        tasks = app.ctx.background
        await stop.step(
            "background tasks", stopping.cancel_all(tasks), 1, stopping.pending_names(tasks)
        )
        # Events under way finish and ack first; then every client connection is closed,
        # so clients reconnect to another worker.
        await stop.step(
            "events under way", realtime.drain(grace=5), 5.5, lambda: f"{realtime.busy} events"
        )
        await stop.step(
            "closing Engine.IO sessions",
            sio.shutdown(),
            6,
            lambda: f"{len(sio.eio.sockets)} sessions still open",
        )
        if relay is not None:
            await stop.step(
                "polling relay", relay.stop(), 1, lambda: f"{len(relay.waiting)} relayed requests"
            )

    @app.after_server_stop
    async def close_resources(app: Sanic) -> None:
        stop = app.ctx.stop if hasattr(app.ctx, "stop") else stopping.Stop()
        if not await stop.step("database pool", db.stop(), 2, db.pool_usage):
            db.terminate()
        await stop.step("rate-limit counts", services.limiter.close(), 1, lambda: "Redis")
        await stop.step("state store", services.state.close(), 1, lambda: "Redis")
        await stop.step("revocation listener", services.revocations.close(), 1, lambda: "Redis")
        metrics.worker_stopped()
        stop.finished()
