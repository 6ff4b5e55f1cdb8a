"""REST adapters for canned responses: /api/canned-responses*."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app import contract, models
from app.api.common import body_of, documented, json, principal_of, services
from app.domain import canned
from app.validation import path_uuid

bp = Blueprint("canned", url_prefix="/api/canned-responses")

PLACEHOLDER_TEXT = ", ".join(f"`{{{{{k}}}}}`" for k in canned.PLACEHOLDERS)


@bp.get("/")
@documented(
    "Canned responses, searched by short code and text",
    who="staff",
    tag="workspace",
    ok=(200, list[models.Canned]),
    errors=(400, 401, 403, 404, 503),
    secured=True,
    description="Short-code matches first. With `sessionId` each item carries `rendered`, "
    f"its placeholders filled for that session and the caller ({PLACEHOLDER_TEXT}).",
    query=models.CannedQuery,
)
async def list_canned(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    query = contract.read_query(models.CannedQuery, request.args)
    return json(
        await canned.search(
            services(request),
            principal,
            q=query.q,
            session_id=query.sessionId,
            limit=query.limit,
        )
    )


@bp.post("/")
@documented(
    "Create a canned response",
    who="staff",
    tag="workspace",
    body=models.NewCanned,
    ok=(201, models.Canned),
    errors=(400, 401, 403, 409, 413, 503),
    secured=True,
    description="409 `short_code_taken`; 400 for an unknown placeholder "
    f"(known: {PLACEHOLDER_TEXT}).",
)
async def create_canned(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    new = contract.read(models.NewCanned, body_of(request))
    out = await canned.create(
        services(request), principal, short_code=new.shortCode, title=new.title, content=new.content
    )
    return json(out, status=201)


@bp.patch("/<canned_id:str>")
@documented(
    "Edit a canned response",
    who="staff",
    tag="workspace",
    body=models.CannedChange,
    ok=(200, models.Canned),
    errors=(400, 401, 403, 404, 409, 413, 503),
    secured=True,
)
async def update_canned(request: Request, canned_id: str) -> HTTPResponse:
    principal = principal_of(request)
    cid = path_uuid(canned_id, "Canned response")
    change = contract.read(models.CannedChange, body_of(request))
    out = await canned.update(
        services(request),
        principal,
        cid,
        short_code=change.shortCode,
        title=change.title,
        content=change.content,
    )
    return json(out)


@bp.delete("/<canned_id:str>")
@documented(
    "Delete a canned response",
    who="staff",
    tag="workspace",
    ok=(204, None),
    errors=(401, 403, 404, 503),
    secured=True,
)
async def delete_canned(request: Request, canned_id: str) -> HTTPResponse:
    principal = principal_of(request)
    cid = path_uuid(canned_id, "Canned response")
    await canned.delete(services(request), principal, cid)
    return HTTPResponse(status=204)
