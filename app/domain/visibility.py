"""What a token may see of a conversation: the one place that decides.

Chatwoot's private notes leaked again and again because each new path (a message list,
an email, the public API, a webhook) decided for itself. Here every path that answers a
token, or broadcasts to a room a customer may be in, asks `may_see` or builds its answer
through `session_view` / `customer_session`: staff see messages, notes and labels; a
customer sees its own session's messages and the session's public fields, nothing else.
New private kinds are added to `PRIVATE` and every customer path drops them at once.
"""

from __future__ import annotations

import enum
from typing import TypeVar

import msgspec

from app.auth import Principal, require_admin
from app.models import Session

S = TypeVar("S", bound=Session)


class Kind(enum.StrEnum):
    MESSAGES = "messages"
    NOTES = "notes"
    LABELS = "labels"


# Kinds only staff may see.
PRIVATE = frozenset({Kind.NOTES, Kind.LABELS})
# Session fields that carry a private kind.
PRIVATE_SESSION_FIELDS = {"labels": Kind.LABELS}


def may_see(principal: Principal | None, kind: Kind) -> bool:
    """The rule itself: staff see every kind, anyone else only the public ones."""
    if kind in PRIVATE:
        return principal is not None and principal.is_admin
    return principal is not None


def require(principal: Principal | None, kind: Kind) -> Principal:
    """For routes that answer a private kind: 401 without a token, 403 for a customer."""
    if kind in PRIVATE or principal is None:
        return require_admin(principal)
    return principal


def session_view(principal: Principal | None, body: S) -> S:
    """A session as this token may see it (a hidden field is left out of its JSON)."""
    hidden = [f for f, kind in PRIVATE_SESSION_FIELDS.items() if not may_see(principal, kind)]
    if not hidden:
        return body
    return msgspec.structs.replace(body, **dict.fromkeys(hidden, msgspec.UNSET))


def customer_session(body: S) -> S:
    """A session as its customer may see it: what goes to a session's room."""
    return session_view(None, body)
