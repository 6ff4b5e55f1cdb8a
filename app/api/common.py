"""What every REST adapter needs: the caller, the body, the client address, the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import orjson
from sanic import Request
from sanic.response import HTTPResponse
from sanic_ext.extensions.openapi import definitions, openapi
from sanic_ext.extensions.openapi.builders import OperationStore
from sanic_ext.extensions.openapi.types import Schema

from app import contract
from app.auth import Principal
from app.context import Services
from app.contract import Shape
from app.errors import (
    CODES,
    ERRORS,
    ErrorBody,
    InvalidBody,
    InvalidJson,
    InvalidToken,
    Unauthorized,
)

F = TypeVar("F", bound=Callable[..., Any])


def services(request: Request) -> Services:
    ctx: Services = request.app.ctx.services
    return ctx


async def authenticate(request: Request) -> None:
    """Request middleware: who is asking, checked once per request (signature, expiry,
    and for staff that the account is active and the sign-in live, app/accounts.py).
    A bad token is kept as its error and raised by `principal_of` when a route asks, so
    routes that tolerate one (opening a session) still can."""
    header = request.headers.get("authorization")
    if not header:
        request.ctx.auth = None
        return
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Authorization must be 'Bearer <token>'")
        ctx = services(request)
        request.ctx.auth = await ctx.accounts.check(ctx.tokens.check(token.strip()))
    except Unauthorized as exc:
        request.ctx.auth = exc


def principal_of(request: Request) -> Principal | None:
    """The token's principal; None without an Authorization header, 401 for a bad one."""
    found = getattr(request.ctx, "auth", None)
    if isinstance(found, Unauthorized):
        raise found
    return found if isinstance(found, Principal) else None


def presented_credentials(request: Request) -> Principal | Unauthorized | None:
    """What the Authorization header proved: a principal, the reason it proved nothing,
    or None without one; for the use cases that decide themselves what a bad one means."""
    found = getattr(request.ctx, "auth", None)
    return found if isinstance(found, Principal | Unauthorized) else None


def body_of(request: Request) -> Any:
    if not request.body:
        raise InvalidBody()
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise InvalidJson() from None


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A JSON answer: a declared shape (app/models.py), a list of them, or a plain dict."""
    return HTTPResponse(
        contract.encode(data), status=status, headers=headers, content_type="application/json"
    )


def next_link(request: Request, params: dict[str, Any]) -> dict[str, str]:
    """RFC 8288 `Link: <…>; rel="next"` carrying the current query with the new cursor."""
    query = {k: v for k, v in request.args.items() if k not in ("before", "after")}
    merged = {**{k: v[0] for k, v in query.items()}, **{k: str(v) for k, v in params.items()}}
    # Every value percent-encoded: a query value must not close the <…> or add a link.
    qs = urlencode(merged, quote_via=quote)
    return {"Link": f'<{quote(request.path)}?{qs}>; rel="next"'}


ERROR_TEXT = {
    400: "Invalid input (`details.fields` names each field's problem)",
    401: "Missing, invalid, expired or revoked token (signed out or deactivated)",
    403: "Wrong role",
    404: "Unknown id (also for a malformed one, or a session this token may not see)",
    409: "Conflict",
    410: "Gone: the link expired",
    413: "Request too large: the body, or the URL and headers",
    429: "Rate limited; see Retry-After",
    503: "A backing service is down",
}


# Headers an answer carries, declared so the fuzzer checks them (tests/test_fuzz_rest.py).
REQUEST_ID_HEADER = {
    "X-Request-Id": {
        "description": "This request's id in the server's logs (the client's, when sent)",
        "required": True,
        "schema": {"type": "string"},
    }
}
RETRY_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
LINK_HEADER = {
    "Link": {
        "description": 'RFC 8288 `<…>; rel="next"`: the next page, while more remain',
        "schema": {"type": "string"},
    }
}


class _Response(definitions.Response):
    """sanic-ext's response definition with the `headers` field of OpenAPI's."""

    headers: dict[str, Any] | None


def _respond(
    func: Any, status: int, content: dict[str, Any], text: str, headers: dict[str, Any]
) -> Any:
    OperationStore()[func].responses[status] = _Response(
        definitions.MediaType.all(content),
        status=status,
        description=text,
        headers={**REQUEST_ID_HEADER, **headers},
    )
    return func


def error_schema(status: int) -> dict[str, Any]:
    """The error body, its `code` one of those app/errors.py defines for `status`, and its
    `details` the shape the error classes of that status declare (none: no `details`)."""
    carrying = [code for code in CODES[status] if ERRORS[code].details_shape is not None]
    shapes = {ERRORS[code].details_shape for code in carrying}
    assert len(shapes) <= 1, f"{status}: one details shape per status, not {shapes}"
    generic: Any = ErrorBody
    schema = contract.schema(generic[shapes.pop()] if shapes else ErrorBody)
    properties = dict(schema["properties"])
    properties["code"] = {**properties["code"], "enum": CODES[status]}
    if carrying:
        with_codes = ", ".join(f"`{code}`" for code in carrying)
        properties["details"] = {**properties["details"], "description": f"With {with_codes}"}
    else:
        del properties["details"]
    return {**schema, "properties": properties}


def _schema_of(shape: Any) -> dict[str, Any]:
    """A declared shape's OpenAPI schema; a dict is taken as a schema already."""
    return shape if isinstance(shape, dict) else contract.schema(shape)


@dataclass(frozen=True)
class RouteDoc:
    """What a route declares of itself: the OpenAPI operation and the README's row."""

    summary: str
    who: str
    body: Any
    query: type[Shape] | None
    ok: tuple[int, Any] | None
    also: tuple[int, ...]
    errors: tuple[int, ...]
    paged: bool
    description: str | None


# Each documented handler's declaration (app/api/routes.py lists the routes by it).
DOCS: dict[Callable[..., Any], RouteDoc] = {}


def documented(
    summary: str,
    *,
    who: str,
    tag: str,
    body: Any = None,
    ok: tuple[int, Any] | None = None,
    also: tuple[int, ...] = (),
    errors: tuple[int, ...] = (),
    secured: bool = False,
    description: str | None = None,
    query: type[Shape] | None = None,
    paged: bool = False,
) -> Callable[[F], F]:
    """OpenAPI for one route from its declared shapes (app/models.py): summary, who may
    call it, `body` and `query` models, the success status with its answer's model
    (`None`: no body), `also` the other success statuses answering the same, every error
    it may answer, and whether a `Link` header names a next page."""
    # Any request may be refused 413 before a handler runs: a body past the limit, or a
    # request line and headers past Sanic's (a long query string on a GET).
    errors = tuple(sorted({*errors, 413}))
    doc = RouteDoc(summary, who, body, query, ok, also, errors, paged, description)

    def apply(func: F) -> F:
        out: Any = func
        for name, schema, text in contract.query_parameters(query) if query else ():
            out = openapi.parameter(name, Schema(**schema), "query", description=text)(out)
        for status in errors:
            retry = RETRY_HEADER if status in (429, 503) else {}
            content = {"application/json": error_schema(status)}
            out = _respond(out, status, content, ERROR_TEXT[status], retry)
        if ok is not None:
            content = {} if ok[1] is None else {"application/json": _schema_of(ok[1])}
            for status in (ok[0], *also):
                out = _respond(out, status, content, "Success", LINK_HEADER if paged else {})
        if body is not None:
            out = openapi.body({"application/json": _schema_of(body)}, required=True)(out)
        if secured:
            out = openapi.secured("token")(out)
        out = openapi.description(f"Who: {who}." + (f" {description}" if description else ""))(out)
        out = openapi.tag(tag)(out)
        out = openapi.summary(summary)(out)
        DOCS[out] = doc
        return out

    return apply
