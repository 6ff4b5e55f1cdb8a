"""The one error type the domain raises, and its JSON shape.

Every failure a client sees is `{"error": <human message>, "code": <machine code>,
"details"?: {...}}`: `error` is the original backend's field, kept for existing frontends.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sanic.exceptions import SanicException

from app import metrics
from app.db import UNAVAILABLE
from app.outage import REDIS
from app.state import StateUnavailable

log = logging.getLogger(__name__)


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every failure's JSON, REST answer and socket `error` alike."""

    error: Annotated[str, msgspec.Meta(description="Human-readable message (the original's)")]
    code: Annotated[str, msgspec.Meta(description="Machine-readable code")]
    details: dict[str, Any] | None = None


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.message, code=self.code, details=self.details or None)

    @property
    def retryable(self) -> bool:
        return self.status in (429, 503)


class BadRequest(ApiError):
    status = 400
    code = "validation_error"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many requests, try again later",
            details={"retryAfter": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


SANIC_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    416: "range_not_satisfiable",
}
SANIC_MESSAGES = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}


def to_api_error(exc: BaseException) -> ApiError:
    """The client-facing form of any exception, shared by REST and socket handlers."""
    if isinstance(exc, ApiError):
        return exc
    # The state store's own error, or Redis reached directly (the revocation bus).
    if isinstance(exc, (StateUnavailable, RedisConnectionError, RedisTimeoutError)):
        REDIS.failed("request", exc)
        return ServiceUnavailable(
            "A backing service is unavailable, retry shortly", code="service_unavailable"
        )
    if isinstance(exc, UNAVAILABLE):
        metrics.BACKEND_ERRORS.labels("database").inc()
        log.warning("backing service unavailable: %r", exc)
        return ServiceUnavailable(
            "A backing service is unavailable, retry shortly", code="service_unavailable"
        )
    if isinstance(exc, SanicException):
        status = exc.status_code
        return ApiError(
            SANIC_MESSAGES.get(status) or str(exc) or "Request failed",
            code=SANIC_CODES.get(status, "http_error"),
            status=status,
        )
    log.exception("unhandled error", exc_info=exc)
    return ApiError("Internal server error", code="internal_error", status=500)
