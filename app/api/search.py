"""REST adapters for search (staff only): /api/search/messages, /api/search/sessions."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from app import contract, models
from app.api.common import documented, json, next_link, principal_of, services
from app.domain import search

bp = Blueprint("search", url_prefix="/api/search")


def _filters(query: models.SessionSearchQuery) -> search.Filters:
    return search.Filters(
        status=query.status,
        label=query.label.lower() if query.label else None,
        assignee=query.assignee,
    )


@bp.get("/messages")
@documented(
    "Search messages by text, newest first",
    who="staff",
    tag="search",
    ok=(200, list[models.Hit]),
    paged=True,
    errors=(400, 401, 403, 503),
    secured=True,
    description="Words (full-text, English stemming: `refund` finds `refunds`) or a fragment "
    "of 3+ characters anywhere in a message (an order number, an email). `mode=auto` takes "
    "a query with digits or punctuation as a fragment. The whole history, no time window. "
    'A `Link: rel="next"` header names the next page while more remain.',
    query=models.MessageSearchQuery,
)
async def search_messages(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    query = contract.read_query(models.MessageSearchQuery, request.args)
    items, following = await search.messages(
        services(request),
        principal,
        q=query.q,
        mode=query.mode or "auto",
        filters=_filters(query),
        limit=query.limit,
        before=query.before,
    )
    return json(items, headers=next_link(request, {"before": following}) if following else None)


@bp.get("/sessions")
@documented(
    "Search sessions by their customer's id, name or email",
    who="staff",
    tag="search",
    ok=(200, list[models.Session]),
    paged=True,
    errors=(400, 401, 403, 503),
    secured=True,
    description="A fragment of 3+ characters; newest activity first, each session as staff "
    'see it. A `Link: rel="next"` header names the next page while more remain.',
    query=models.SessionSearchQuery,
)
async def search_sessions(request: Request) -> HTTPResponse:
    principal = principal_of(request)
    query = contract.read_query(models.SessionSearchQuery, request.args)
    items, following = await search.sessions_by_text(
        services(request),
        principal,
        q=query.q,
        filters=_filters(query),
        limit=query.limit,
        before=query.before,
    )
    return json(items, headers=next_link(request, {"before": following}) if following else None)
