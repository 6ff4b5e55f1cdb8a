"""Input rules shared by REST bodies and socket payloads.

Each reader takes the untrusted mapping and returns typed values or raises `BadRequest`
with per-field details; unknown fields are ignored.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any

from app.errors import BadRequest, NotFound

MAX_CONTENT = 5000
MAX_NAME = 200
MAX_EMAIL = 254
MAX_USER_ID = 200
MAX_CLIENT_MESSAGE_ID = 100
MIN_PASSWORD = 8
# argon2 takes any length, but an unbounded one is a CPU-exhaustion lever.
MAX_PASSWORD = 256
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


class Reader:
    """Collects every field error of one payload, then raises them together."""

    def __init__(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise BadRequest("Request body must be a JSON object", code="invalid_body")
        self.data = data
        self.errors: dict[str, str] = {}

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            self.errors[name] = "is required"
        return value

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        max_len: int = MAX_NAME,
        min_len: int = 0,
        strip: bool = True,
    ) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.errors[name] = "must be a string"
            return None
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
            self.errors[name] = "must not contain NUL characters"
            return None
        if strip:
            value = value.strip()
        if len(value) < max(min_len, 1 if required else 0):
            self.errors[name] = (
                "must not be empty" if min_len <= 1 else f"needs {min_len}+ characters"
            )
            return None
        if len(value) > max_len:
            self.errors[name] = f"must be at most {max_len} characters"
            return None
        return value

    def email(self, name: str, *, required: bool = False) -> str | None:
        value = self.string(name, required=required, max_len=MAX_EMAIL)
        if value is None:
            return None
        normal, problem = normalise_email(value)
        if problem is not None:
            self.errors[name] = problem
            return None
        return normal

    def password(self, name: str, *, email: str | None = None) -> str | None:
        """A new password: bounded, not only whitespace, not the account's own email."""
        value = self.string(
            name, required=True, strip=False, min_len=MIN_PASSWORD, max_len=MAX_PASSWORD
        )
        if value is None:
            return None
        if not value.strip():
            self.errors[name] = "must not be only whitespace"
            return None
        if email is not None and value.strip().casefold() == email.casefold():
            self.errors[name] = "must not be the email address"
            return None
        return value

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.errors[name] = "must be true or false"
            return None
        return value

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if value not in options:
            self.errors[name] = f"must be one of {', '.join(options)}"
            return None
        return str(value)

    def uuid(self, name: str, *, required: bool = False) -> uuid.UUID | None:
        value = self._get(name, required)
        if value is None:
            return None
        parsed = parse_uuid(value)
        if parsed is None:
            self.errors[name] = "must be a UUID"
        return parsed

    def done(self) -> None:
        if self.errors:
            first = next(iter(self.errors.items()))
            raise BadRequest(f"{first[0]} {first[1]}", details={"fields": self.errors})


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


def query_int(
    args: Mapping[str, Any], name: str, *, default: int | None, low: int, high: int
) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(
            f"{name} must be an integer", details={"fields": {name: "must be an integer"}}
        ) from None
    if not low <= value <= high:
        raise BadRequest(
            f"{name} must be between {low} and {high}",
            details={"fields": {name: f"must be between {low} and {high}"}},
        )
    return value


def read_send(data: Any) -> tuple[uuid.UUID, str, str | None, str | None]:
    """A message send, as REST's body and the socket's send_message both carry it:
    (sessionId, content, claimed senderType, clientMessageId)."""
    r = Reader(data)
    sid = r.uuid("sessionId", required=True)
    content = r.string("content", required=True, max_len=MAX_CONTENT)
    sender = r.choice("senderType", ("user", "admin"))
    client_id = r.string("clientMessageId", max_len=MAX_CLIENT_MESSAGE_ID)
    r.done()
    assert sid is not None and content is not None
    return sid, content, sender, client_id


def read_registration(data: Any) -> tuple[str, str, str | None]:
    """A new admin, as `POST /api/auth/register` and `helpline create-admin` both take it:
    (email, password, fullName)."""
    r = Reader(data)
    email = r.email("email", required=True)
    password = r.password("password", email=email)
    full_name = r.string("fullName")
    r.done()
    assert email is not None and password is not None
    return email, password, full_name
