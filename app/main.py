"""The app factory: settings → services → blueprints, Socket.IO and listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from sanic import Sanic

from app import db, hooks, logs, metrics
from app.api import access, auth, chat, demo, docs, errors, health, sessions, team
from app.api import metrics as metrics_api
from app.api.common import authenticate
from app.config import ConfigError, Settings
from app.context import Services
from app.realtime.handlers import Realtime
from app.realtime.server import SocketBroadcaster, create_server, mount, relay_for

log = logging.getLogger(__name__)


def _dumps(value: object) -> str:
    # Sanic's own JSON (the OpenAPI document keys responses by int status codes).
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_app(settings: object = None) -> Sanic:
    """Build the app; `settings` defaults to the environment's (Sanic's CLI passes its
    own argument namespace to factories, which is ignored)."""
    if not isinstance(settings, Settings):
        settings = Settings.from_env()
    problems = settings.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    # Library private names we override: refuse a release where they changed.
    hooks.check()
    logs.configure(settings.log_level, settings.log_format)

    # Sanic's own logging setup would add handlers and formats of its own (app/logs.py).
    app = Sanic("helpline", dumps=_dumps, configure_logging=False)
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

    services = Services.build(settings)
    app.ctx.settings = settings
    app.ctx.services = services

    app.on_request(authenticate)
    for bp in (auth.bp, team.links, team.agents, team.invitations, sessions.bp, chat.bp, health.bp):
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
    realtime = Realtime(sio, services)
    app.ctx.sio = sio

    @app.before_server_start
    async def open_resources(app: Sanic) -> None:
        try:
            await db.start(settings.db_pool_min, settings.db_pool_max)
        except db.UNAVAILABLE as exc:
            # Serve anyway: requests answer 503 until the database is back.
            log.error("database unavailable at start: %r", exc)

    relay = relay_for(sio, settings)
    # Its counters are read by /health/ready.
    app.ctx.relay = relay

    @app.after_server_start
    async def start_background(app: Sanic) -> None:
        log.info(
            "listening on http://%s:%d, %s",
            settings.host,
            settings.port,
            settings.describe_mode(),
        )
        # Our own task, not app.add_task: Sanic logs a warning for every task it cancels.
        app.ctx.realtime_task = asyncio.create_task(realtime.run_background())
        # Revocations from other workers: drop cached account checks, disconnect sockets.
        app.ctx.revocation_task = asyncio.create_task(services.revocations.run())
        app.ctx.guard_task = asyncio.create_task(sio.sweep_unauthenticated())
        app.ctx.pool_sampler = asyncio.create_task(metrics.sample_pool_forever(db.pool))
        if relay is not None:
            await relay.start()

    @app.before_server_stop
    async def stop_realtime(app: Sanic) -> None:
        tasks = (app.ctx.pool_sampler, app.ctx.realtime_task, app.ctx.revocation_task)
        for task in (*tasks, app.ctx.guard_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Events under way finish and ack first; then every client connection is closed,
        # so clients reconnect to another worker.
        await realtime.drain(grace=5)
        await sio.shutdown()
        if relay is not None:
            await relay.stop()

    @app.after_server_stop
    async def close_resources(app: Sanic) -> None:
        await db.stop()
        await services.state.close()
        await services.revocations.close()
        metrics.worker_stopped()

    return app
