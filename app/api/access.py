"""Request ids and the access log: one line per HTTP request, after its response.

The id comes from the client's `X-Request-Id` when it is a plain token (a proxy's or a
caller's, so one id follows a request across systems), else a fresh one; it is echoed in
the response's `X-Request-Id` and set in `app.logs.REQUEST_ID`, so every log line written
while serving the request (an error's traceback included) carries it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qsl, urlencode

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

from app.client_ip import client_ip
from app.logs import REDACTED, REQUEST_ID

HEADER = "X-Request-Id"
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Query parameters whose values never reach the log (Socket.IO's `?token=`, for one).
_SECRET_PARAMS = re.compile(r"(?i)token|password|secret|auth|key|jwt")

log = logging.getLogger("app.access")


def request_id_from(value: str | None) -> str:
    if value and _ACCEPTED_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def loggable_path(request: Request) -> str:
    """The path and query with every credential-like parameter's value replaced."""
    if not request.query_string:
        return request.path
    pairs = parse_qsl(request.query_string, keep_blank_values=True)
    safe = [(k, REDACTED if _SECRET_PARAMS.search(k) else v) for k, v in pairs]
    return f"{request.path}?{urlencode(safe, safe='[]')}"


def install(app: Sanic) -> None:
    @app.middleware("request", priority=1000)
    async def begin(request: Request) -> None:
        request.ctx.started = time.perf_counter()
        request.ctx.request_id = request_id_from(request.headers.get(HEADER))
        REQUEST_ID.set(request.ctx.request_id)

    @app.middleware("response", priority=-1000)
    async def finish(request: Request, response: BaseHTTPResponse) -> None:
        rid = getattr(request.ctx, "request_id", None) or request_id_from(None)
        REQUEST_ID.set(rid)
        response.headers[HEADER] = rid
        started = getattr(request.ctx, "started", None)
        millis = round((time.perf_counter() - started) * 1000, 1) if started else 0.0
        path = loggable_path(request)
        ip = client_ip(request)
        status = response.status
        log.info(
            "%s %s %s %.1fms %s",
            request.method,
            path,
            status,
            millis,
            ip,
            extra={
                "method": request.method,
                "path": path,
                "status": status,
                "durationMs": millis,
                "clientIp": ip,
            },
        )
