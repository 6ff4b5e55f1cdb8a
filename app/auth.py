"""Who is asking: token issue and check, password hashing, and the access rules.

Staff tokens (admins and agents) and customer tokens are both HS256 JWTs with different
audiences, so a customer token can never pass as a staff one. A customer token names one
session; a staff token names its account (`sub`) and its sign-in session (`sid`), which
app/accounts.py checks on every request and socket event (revocation, deactivation).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt
from passlib.context import CryptContext

from app.config import Settings
from app.errors import (
    AdminOnly,
    AdminRoleRequired,
    AuthRequired,
    InvalidToken,
    NotFound,
    TokenExpired,
)
from app.models import SenderType, StaffRole

ISSUER = "helpline"
ADMIN_AUDIENCE = "helpline:admin"
CUSTOMER_AUDIENCE = "helpline:customer"
ALGORITHM = "HS256"

Role = Literal["admin", "customer"]


@dataclass(frozen=True)
class Principal:
    # "admin" for every staff token (the original's vocabulary), "customer" otherwise.
    role: Role
    # Account id for staff, the session id for customers.
    subject: uuid.UUID
    # The sign-in session a staff token belongs to (None for customers and the CLI).
    sign_in: uuid.UUID | None = None
    # Unix time the token expires (0: never, the CLI's operator).
    expires_at: int = 0
    # Filled by the account check (app/accounts.py): the account's role and name now.
    staff_role: StaffRole | None = None
    name: str | None = None

    @property
    def is_admin(self) -> bool:
        """Staff: an admin or an agent (both chat and see every session)."""
        return self.role == "admin"

    @property
    def is_team_admin(self) -> bool:
        """An admin by role: manages the team and settings."""
        return self.role == "admin" and self.staff_role == "admin"

    @property
    def sender_type(self) -> SenderType:
        """The original's senderType vocabulary: 'admin' or 'user'."""
        return "admin" if self.is_admin else "user"

    @property
    def rate_key(self) -> str:
        return f"{self.role}:{self.subject}"


class Tokens:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._admin_ttl = settings.admin_token_ttl
        self._customer_ttl = settings.customer_token_ttl

    def _issue(
        self, subject: uuid.UUID, audience: str, ttl: int, extra: dict[str, str] | None = None
    ) -> str:
        now = int(time.time())
        claims = {"sub": str(subject), "aud": audience, "iss": ISSUER, "iat": now, "exp": now + ttl}
        return jwt.encode({**claims, **(extra or {})}, self._secret, algorithm=ALGORITHM)

    def admin(self, admin_id: uuid.UUID, sign_in: uuid.UUID) -> str:
        """A staff token for one sign-in session: revoking that sign-in ends the token."""
        return self._issue(admin_id, ADMIN_AUDIENCE, self._admin_ttl, {"sid": str(sign_in)})

    def customer(self, session_id: uuid.UUID) -> str:
        return self._issue(session_id, CUSTOMER_AUDIENCE, self._customer_ttl)

    def check(self, token: str) -> Principal:
        """Any valid token, admin or customer; raises Unauthorized otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=[ADMIN_AUDIENCE, CUSTOMER_AUDIENCE],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
            subject = uuid.UUID(claims["sub"])
            role: Role = "admin" if claims["aud"] == ADMIN_AUDIENCE else "customer"
            # Staff tokens without a sign-in (issued before sign-in sessions) cannot be
            # revoked one by one, so they are no longer accepted.
            sign_in = uuid.UUID(claims["sid"]) if role == "admin" else None
            expires_at = int(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
            raise InvalidToken() from None
        return Principal(role=role, subject=subject, sign_in=sign_in, expires_at=expires_at)


def require_admin(principal: Principal | None) -> Principal:
    """Staff: an admin or an agent (customers get 403 `admin_only`, the original's rule)."""
    if principal is None:
        raise AuthRequired()
    if not principal.is_admin:
        raise AdminOnly()
    return principal


def require_team_admin(principal: Principal | None) -> Principal:
    """An admin by role: agents get 403 `admin_role_required`."""
    principal = require_admin(principal)
    if not principal.is_team_admin:
        raise AdminRoleRequired()
    return principal


def require_any(principal: Principal | None) -> Principal:
    if principal is None:
        raise AuthRequired()
    return principal


def require_session_access(principal: Principal | None, session_id: uuid.UUID) -> Principal:
    """Admins see every session; a customer only its own, and any other answers as unknown."""
    principal = require_any(principal)
    if not principal.is_admin and principal.subject != session_id:
        raise NotFound("Session not found")
    return principal


class Passwords:
    """argon2id through passlib (libpass). Hashing costs CPU, so it runs in a thread."""

    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__time_cost=settings.argon2_time_cost,
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__parallelism=1,
        )
        # Verified against when the email is unknown, so both failures cost the same time.
        self._dummy = self._context.hash(uuid.uuid4().hex)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        return await asyncio.to_thread(self._context.verify, password, hashed or self._dummy)
