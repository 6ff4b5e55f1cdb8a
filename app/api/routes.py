"""The documented REST routes, listed once: `create_app` mounts these blueprints, the
OpenAPI document describes their routes from each one's `@documented(...)`, and the
README's route table is generated from the same declarations
(`python -m app.api.routes --markdown`; tests/test_docs.py keeps them equal)."""

from __future__ import annotations

import inspect
import re
from typing import Any, get_args, get_origin

from sanic import Blueprint

from app import contract
from app.api import auth, canned, chat, health, labels, notes, search, sessions, team
from app.api.common import DOCS, RouteDoc

BLUEPRINTS: tuple[Blueprint, ...] = (
    auth.bp,
    team.links,
    team.agents,
    team.invitations,
    sessions.bp,
    notes.bp,
    labels.bp,
    canned.bp,
    search.bp,
    chat.bp,
    health.bp,
)


def _source_line(route: Any) -> int:
    line: int = inspect.unwrap(route.handler).__code__.co_firstlineno
    return line


def routes() -> list[tuple[str, str, RouteDoc]]:
    """(method, OpenAPI path, declaration) of every route, blueprint by blueprint in
    source order; a route without `@documented` is an error, not a gap."""
    out = []
    for bp in BLUEPRINTS:
        for route in sorted(bp._future_routes, key=_source_line):
            uri = f"{bp.url_prefix or ''}{route.uri}".rstrip("/") or "/"
            path = re.sub(r"<(\w+)(:\w+)?>", r"{\1}", uri)
            handler: Any = route.handler
            doc = DOCS.get(handler)
            assert doc is not None, f"{path} has no @documented(...)"
            out += [(method, path, doc) for method in sorted(route.methods or ())]
    return out


def _fields(model: Any) -> str:
    schema = contract.schema(model)
    required = set(schema.get("required", []))
    return ", ".join(f"{name}{'' if name in required else '?'}" for name in schema["properties"])


def _request(doc: RouteDoc) -> str:
    if doc.body is not None:
        return f" `{{{_fields(doc.body)}}}`"
    if doc.query is not None:
        names = [name for name, _, _ in contract.query_parameters(doc.query)]
        return " `?" + "&".join(f"{name}=" for name in names) + "`"
    return ""


def _shape_name(shape: Any) -> str:
    if get_origin(shape) is list:
        return f"[{_shape_name(get_args(shape)[0])}]"
    return str(shape.__name__)


def _answers(doc: RouteDoc) -> str:
    if doc.ok is None:
        return ""
    status, shape = doc.ok
    statuses = "/".join(str(s) for s in (status, *doc.also))
    text = statuses if shape is None else f"{statuses} {_shape_name(shape)}"
    if doc.paged:
        text += " (`Link`: next page)"
    if doc.errors:
        text += "; " + ", ".join(str(s) for s in doc.errors)
    return text


def markdown_table() -> str:
    """The README's route table: one row per route, from its declaration (the shapes
    named in it are those of the field table)."""
    lines = ["| route | who | answers (errors) | does |", "|---|---|---|---|"]
    for method, path, doc in routes():
        does = doc.summary + (f". {doc.description}" if doc.description else "")
        cells = [f"{method} {path}{_request(doc)}", doc.who, _answers(doc), does]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m app.api.routes --markdown")
    print(markdown_table(), end="")
