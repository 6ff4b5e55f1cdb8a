"""Spelling rules of input values that are more than a type or a length: one spelling of
an email address, a UUID from text. The shapes that use them are in app/models.py."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

from app.errors import NotFound

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Characters that print as nothing (zero-width spaces and joiners, bidi controls…) or
# are not assigned: an address holding one looks like another address.
INVISIBLE = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"})


def normalise_email(value: str) -> tuple[str, str | None]:
    """The one spelling of an address, or why it cannot be an account's.

    NFKC folds compatibility forms (fullwidth `ａ` is `a`), case is folded and a trailing
    dot of the domain dropped, so look-alike spellings of one address are one address.
    Invisible characters are refused, and so is anything outside ASCII, which closes the
    mixed-script look-alikes (a Cyrillic `а` in `admin@…`): an international domain is
    given in its ASCII (punycode) form.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    if any(unicodedata.category(ch) in INVISIBLE for ch in text):
        return text, "must not contain invisible or space characters"
    if not text.isascii():
        return text, "must be written in ASCII (an international domain in its xn-- form)"
    text = text.lower()
    if text.endswith("."):
        text = text[:-1]
    if not EMAIL_RE.match(text) or ".." in text or text.split("@")[1].startswith("."):
        return text, "must be an email address"
    return text, None


def parse_uuid(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def path_uuid(value: str, what: str) -> uuid.UUID:
    """A malformed id in a path names nothing that exists: 404, like an unknown id."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} not found")
    return parsed
