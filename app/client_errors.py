"""What a client is told about any exception: the one mapping, shared by the REST and
socket adapters, of Sanic's, Redis's and the database's exceptions onto the domain's
errors (app/errors.py), which know nothing of them."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sanic.exceptions import SanicException

from app import metrics
from app.db import UNAVAILABLE
from app.errors import (
    ApiError,
    HttpError,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RequestTimeout,
    ServiceUnavailable,
)
from app.outage import REDIS
from app.state import StateUnavailable

log = logging.getLogger(__name__)

# Sanic's own refusals; those it words for a developer say ours instead.
SANIC_ERRORS: dict[int, type[ApiError]] = {
    400: MalformedRequest,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    413: PayloadTooLarge,
    416: RangeNotSatisfiable,
}
OUR_WORDS = (404, 405, 413)


def to_api_error(exc: BaseException) -> ApiError:
    """The client-facing form of any exception, shared by REST and socket handlers."""
    if isinstance(exc, ApiError):
        return exc
    # The state store's own error, or Redis reached directly (the revocation bus).
    if isinstance(exc, (StateUnavailable, RedisConnectionError, RedisTimeoutError)):
        REDIS.failed("request", exc)
        return ServiceUnavailable()
    if isinstance(exc, UNAVAILABLE):
        metrics.BACKEND_ERRORS.labels("database").inc()
        log.warning("backing service unavailable: %r", exc)
        return ServiceUnavailable()
    if isinstance(exc, SanicException):
        status = exc.status_code
        words = None if status in OUR_WORDS else str(exc) or None
        known = SANIC_ERRORS.get(status)
        return known(words) if known is not None else HttpError(status, words)
    log.exception("unhandled error", exc_info=exc)
    return ApiError()
