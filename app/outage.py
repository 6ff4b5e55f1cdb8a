"""A backing service's outages, logged once each way instead of once per failed call.

While Redis is down every rate limit, join, disconnect and background tick fails; logging
each buried the log (hundreds of identical warnings a second under load). Now a worker
logs one warning when a service is lost, counts the failures after it, and logs one line
with the count and duration when a call succeeds again.
"""

from __future__ import annotations

import logging
import time

from app import metrics

log = logging.getLogger(__name__)


class Outage:
    def __init__(self, service: str) -> None:
        self.service = service
        self.since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, where: str, exc: BaseException) -> None:
        """A call to the service failed (`where` names the caller, for the first line)."""
        metrics.BACKEND_ERRORS.labels(self.service.lower()).inc()
        if self.since is None:
            self.since = time.monotonic()
            self.failures = 1
            log.warning(
                "%s unavailable (%s: %s): further failures are counted until it is back",
                self.service,
                where,
                _reason(exc),
            )
        else:
            self.failures += 1

    def succeeded(self) -> None:
        """A call to the service went through: ends an outage, if one was under way."""
        if self.since is None:
            return
        seconds = time.monotonic() - self.since
        log.warning(
            "%s available again after %.1f s (%d failed calls meanwhile)",
            self.service,
            seconds,
            self.failures,
        )
        self.since = None
        self.failures = 0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


# One per worker process and service.
REDIS = Outage("Redis")
DATABASE = Outage("database")
