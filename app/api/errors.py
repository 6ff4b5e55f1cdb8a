"""Every failure answers JSON `{error, code, details?}`: never HTML, never a traceback."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from app.api.common import json
from app.client_errors import to_api_error


def install(app: Sanic) -> None:
    @app.exception(Exception)
    async def handle(request: Request, exc: Exception) -> HTTPResponse:
        error = to_api_error(exc)
        headers = dict(error.headers)
        if error.status == 503:
            headers.setdefault("Retry-After", "5")
        return json(error.body(), status=error.status, headers=headers)
