"""Who is asking: token issue and check, password hashing, and the access rules.

Admin tokens and customer tokens are both HS256 JWTs with different audiences, so a
customer token can never pass as an admin one. A customer token names one session.
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
from app.errors import Forbidden, NotFound, Unauthorized

ISSUER = "helpline"
ADMIN_AUDIENCE = "helpline:admin"
CUSTOMER_AUDIENCE = "helpline:customer"
ALGORITHM = "HS256"

Role = Literal["admin", "customer"]


@dataclass(frozen=True)
class Principal:
    role: Role
    # Admin id for admins, the session id for customers.
    subject: uuid.UUID

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def sender_type(self) -> str:
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

    def _issue(self, subject: uuid.UUID, audience: str, ttl: int) -> str:
        now = int(time.time())
        claims = {"sub": str(subject), "aud": audience, "iss": ISSUER, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def admin(self, admin_id: uuid.UUID) -> str:
        return self._issue(admin_id, ADMIN_AUDIENCE, self._admin_ttl)

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
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token has expired", code="token_expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthorized("Invalid token", code="invalid_token") from None
        role: Role = "admin" if claims["aud"] == ADMIN_AUDIENCE else "customer"
        return Principal(role=role, subject=subject)


def require_admin(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("Authentication required", code="auth_required")
    if not principal.is_admin:
        raise Forbidden("Admin access required", code="admin_only")
    return principal


def require_any(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("Authentication required", code="auth_required")
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
