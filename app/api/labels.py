"""REST adapter for the labels in use: /api/labels."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app import models
from app.api.common import documented, json, principal_of
from app.domain import labels

bp = Blueprint("labels", url_prefix="/api/labels")


@bp.get("/")
@documented(
    "Labels in use, with how many sessions carry each",
    who="staff",
    tag="workspace",
    ok=(200, list[models.LabelUse]),
    errors=(401, 403, 503),
    secured=True,
)
async def list_labels(request: Request) -> HTTPResponse:
    return json(await labels.in_use(principal_of(request)))
