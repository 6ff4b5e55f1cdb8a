"""The errors the domain raises, one class per machine code, and their JSON shape.

Every failure a client sees is `{"error": <human message>, "code": <machine code>,
"details"?: {...}}`: `error` is the original backend's field, kept for existing frontends.
Each code is defined here once, as a class with its status (and its message where one
message fits every use); `CODES` collects them by status for the OpenAPI document. This
module knows nothing of Sanic, Redis or the database: the adapters turn their exceptions
into these (app/failures.py, `to_api_error`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import msgspec
from msgspec import Meta

# status -> the codes answered with it, filled as the classes below are defined.
CODES: dict[int, list[str]] = {}
# code -> its class, for what the OpenAPI document says of each status's `details`.
ERRORS: dict[str, type[ApiError]] = {}

# ---- what `details` holds: one shape per kind, named by the error class carrying it ----


class FieldProblems(msgspec.Struct):
    """A 400's details: which fields were refused, and why."""

    fields: Annotated[dict[str, str], Meta(description="Each refused field's problem")]


class RetryAfter(msgspec.Struct):
    """A 429's details: the `Retry-After` header's value, for clients that read bodies only."""

    retryAfter: Annotated[int, Meta(ge=0, description="Seconds to wait before retrying")]


class CurrentOwner(msgspec.Struct):
    """A lost compare-and-set of a session's owner: who owns it now."""

    assigneeId: Annotated[uuid.UUID | None, Meta(description="The owner now; null: nobody")]


Details = FieldProblems | RetryAfter | CurrentOwner
D = TypeVar("D")


class ErrorBody(msgspec.Struct, Generic[D], kw_only=True, omit_defaults=True):
    """Every failure's JSON; `details` is the shape its error class declares."""

    error: Annotated[str, Meta(description="Human-readable message (the original's)")]
    code: Annotated[str, Meta(description="Machine-readable code")]
    details: D | None = None


class ApiError(Exception):
    """A failure a client is told about: status, code and message."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error"
    # The shape of this error's `details`; None: it never carries any.
    details_shape: ClassVar[type[Details] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            codes = CODES.setdefault(cls.status, [])
            assert cls.code not in codes, f"error code {cls.code} is defined twice"
            codes.append(cls.code)
            ERRORS[cls.code] = cls

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Details | Mapping[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.details = self._checked(details)
        self.headers = headers or {}

    @classmethod
    def _checked(cls, details: Details | Mapping[str, Any] | None) -> Details | None:
        """`details` as this class's shape: a mapping is converted (and refused unless it
        fits), so whatever a caller writes, the wire carries the declared shape."""
        if details is None:
            return None
        assert cls.details_shape is not None, f"{cls.code} carries no details"
        if isinstance(details, cls.details_shape):
            return details
        return msgspec.convert(details, cls.details_shape)

    def body(self) -> ErrorBody[Details]:
        return ErrorBody(error=self.message, code=self.code, details=self.details)

    @property
    def retryable(self) -> bool:
        return self.status in (429, 503)


CODES[500] = [ApiError.code]
ERRORS[ApiError.code] = ApiError


# ---- 400 -----------------------------------------------------------------------------


class BadRequest(ApiError):
    """A field's problem: `details.fields` names each."""

    status = 400
    code = "validation_error"
    default_message = "Invalid input"
    details_shape: ClassVar[type[Details] | None] = FieldProblems

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: dict[str, str] | None = None,
        details: FieldProblems | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=FieldProblems(fields) if fields else details)


class InvalidBody(BadRequest):
    code = "invalid_body"
    default_message = "Request body must be a JSON object"
    details_shape = None


class InvalidJson(BadRequest):
    code = "invalid_json"
    default_message = "Request body is not valid JSON"
    details_shape = None


class MalformedRequest(BadRequest):
    """What Sanic refuses before a route runs (a malformed request line or header)."""

    code = "bad_request"
    default_message = "Bad request"
    details_shape = None


# ---- 401 -----------------------------------------------------------------------------


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"
    default_message = "Unauthorized"


class AuthRequired(Unauthorized):
    code = "auth_required"
    default_message = "Authentication required"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    default_message = "Invalid token"


class TokenExpired(Unauthorized):
    code = "token_expired"
    default_message = "Token has expired"


class TokenRevoked(Unauthorized):
    """Signed out, or the account deactivated."""

    code = "token_revoked"
    default_message = "This sign-in has ended: log in again"


class InvalidCredentials(Unauthorized):
    """One message for an unknown email and a wrong password."""

    code = "invalid_credentials"
    default_message = "Invalid email or password"


class NotConnected(Unauthorized):
    code = "not_connected"
    default_message = "Not connected"


# ---- 403 -----------------------------------------------------------------------------


class Forbidden(ApiError):
    status = 403
    code = "forbidden"
    default_message = "Forbidden"


class AdminOnly(Forbidden):
    code = "admin_only"
    default_message = "Admin access required"


class AdminRoleRequired(Forbidden):
    code = "admin_role_required"
    default_message = "Only an admin may do this"


class SenderMismatch(Forbidden):
    code = "sender_mismatch"


class OwnMessage(Forbidden):
    code = "own_message"
    default_message = "Only the other side's messages can be marked read"


class WrongPassword(Forbidden):
    code = "wrong_password"
    default_message = "The current password is wrong"


class AccountDeactivated(Forbidden):
    code = "account_deactivated"
    default_message = "This account is deactivated"


class DeactivatedSignIn(TokenRevoked):
    """A token of a deactivated account: the same 401 as any ended sign-in, its own class
    so a socket dropped for it is told `deactivated` however its worker found out
    (announced, swept or refused on an event)."""

    default_message = AccountDeactivated.default_message


class RegistrationClosed(Forbidden):
    code = "registration_closed"
    default_message = "Registration is closed: ask an admin to create your account"


class ReservedEvent(BadRequest):
    """A socket event named like one of Socket.IO's own (connect, disconnect…)."""

    code = "reserved_event"
    default_message = "This event name is reserved"
    details_shape = None


class UnknownEvent(BadRequest):
    code = "unknown_event"
    default_message = "Unknown event"
    details_shape = None


class BinaryUnsupported(BadRequest):
    code = "binary_unsupported"
    default_message = "Binary packets are not accepted"
    details_shape = None


# ---- 404, 405, 408 -------------------------------------------------------------------


class NotFound(ApiError):
    """Also for a malformed id, or one this token may not see."""

    status = 404
    code = "not_found"
    default_message = "Not found"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    default_message = "This link is unknown or was revoked"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"


class RequestTimeout(ApiError):
    status = 408
    code = "request_timeout"
    default_message = "Request timed out"


# ---- 409, 410 ------------------------------------------------------------------------


class Conflict(ApiError):
    status = 409
    code = "conflict"
    default_message = "Conflict"


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "Email is already registered"


class LastAdmin(Conflict):
    code = "last_admin"
    default_message = "The last active admin cannot be demoted or deactivated"


class SessionClosed(Conflict):
    code = "session_closed"
    default_message = "Session is closed"


class AssignmentConflict(Conflict):
    """A stale view of a session's owner: details carry the current `assigneeId`."""

    code = "assignment_conflict"
    default_message = "Someone else changed this session's owner first: reload it and try again"
    details_shape = CurrentOwner

    def __init__(self, current: uuid.UUID | None) -> None:
        super().__init__(details=CurrentOwner(current))


class ShortCodeTaken(Conflict):
    code = "short_code_taken"
    default_message = "That short code is taken"


class InvitationUsed(Conflict):
    code = "invitation_used"
    default_message = "This link has already been used"


class AlreadyJoined(Conflict):
    code = "already_joined"
    default_message = "This member has already joined"


class NotJoined(Conflict):
    code = "not_joined"
    default_message = "This member has not joined yet: re-issue the invitation"


class InvitationExpired(ApiError):
    status = 410
    code = "invitation_expired"
    default_message = "This link has expired: ask an admin for a new one"


# ---- 413, 416, 429 -------------------------------------------------------------------


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    default_message = "Request too large"


class RangeNotSatisfiable(ApiError):
    status = 416
    code = "range_not_satisfiable"
    default_message = "Range not satisfiable"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests, try again later"
    details_shape = RetryAfter

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(
            message, details=RetryAfter(retry_after), headers={"Retry-After": str(retry_after)}
        )


# ---- 5xx -----------------------------------------------------------------------------


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable, retry shortly"


class ShuttingDown(ServiceUnavailable):
    code = "shutting_down"
    default_message = "This server is shutting down: reconnect and retry"


class HttpError(ApiError):
    """Any other status Sanic answers by itself."""

    code = "http_error"
    default_message = "Request failed"

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc]
