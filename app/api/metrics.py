"""GET /metrics: Prometheus text format, every worker's figures summed (app/metrics.py).

Not public: with METRICS_TOKEN set it answers `Authorization: Bearer <token>` from
anywhere; without one, only requests whose client IP (app/client_ip.py, so a forwarded
header counts only from trusted proxies) is a loopback address, e.g. a sidecar scraper.
"""

from __future__ import annotations

import hmac
import ipaddress

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw
from sanic_ext.extensions.openapi import openapi

from app import metrics
from app.api.common import services
from app.client_ip import client_ip
from app.errors import Forbidden, Unauthorized

bp = Blueprint("metrics")


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def allowed(request: Request) -> None:
    token = services(request).settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("Metrics need the METRICS_TOKEN as a bearer token")
    elif not _loopback(client_ip(request)):
        raise Forbidden("Metrics answer loopback clients only unless METRICS_TOKEN is set")


@bp.get("/metrics")
@openapi.exclude()
async def scrape(request: Request) -> HTTPResponse:
    allowed(request)
    body, content_type = metrics.scrape()
    return raw(body, content_type=content_type)
