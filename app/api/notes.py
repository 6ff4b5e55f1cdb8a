"""REST adapters for private notes and labels: /api/sessions/:id/notes, …/labels."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app import contract, models
from app.api.common import body_of, documented, json, next_link, principal_of, services
from app.domain import labels, notes
from app.validation import path_uuid

bp = Blueprint("notes", url_prefix="/api/sessions")


@bp.post("/<session_id:str>/notes")
@documented(
    "Add a private note",
    who="staff",
    tag="workspace",
    body=models.NewNote,
    ok=(201, models.Note),
    errors=(400, 401, 403, 404, 413, 503),
    secured=True,
    description="Broadcasts `new_note` to staff only. A note never reaches a customer: not "
    "in history, the join ack, the session, nor any event to the session's room.",
)
async def add_note(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    note = contract.read(models.NewNote, body_of(request))
    return json(await notes.add(services(request), principal, sid, note.content), status=201)


@bp.get("/<session_id:str>/notes")
@documented(
    "A session's private notes, oldest first",
    who="staff",
    tag="workspace",
    ok=(200, list[models.Note]),
    paged=True,
    errors=(400, 401, 403, 404, 503),
    secured=True,
    description='`after=<noteSeq>` walks forward. A `Link: rel="next"` header names the next '
    "page while more remain. Merge with the messages by `createdAt` for the staff view.",
    query=models.NotesQuery,
)
async def list_notes(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    query = contract.read_query(models.NotesQuery, request.args)
    items, following = await notes.page(
        services(request), principal, sid, after=query.after or 0, limit=query.limit
    )
    return json(items, headers=next_link(request, following) if following else None)


@bp.put("/<session_id:str>/labels")
@documented(
    "Replace a session's labels",
    who="staff",
    tag="workspace",
    body=models.LabelsChange,
    ok=(200, models.Session),
    errors=(400, 401, 403, 404, 413, 503),
    secured=True,
    description="The set is replaced (idempotent); labels are trimmed, lower-cased and "
    "sorted. Broadcasts `session_updated` to staff. Customers never see labels.",
)
async def set_labels(request: Request, session_id: str) -> HTTPResponse:
    principal = principal_of(request)
    sid = path_uuid(session_id, "Session")
    change = contract.read(models.LabelsChange, body_of(request))
    wanted = labels.normalise(change.labels)
    return json(await labels.replace(services(request), principal, sid, wanted))
