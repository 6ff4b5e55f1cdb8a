"""Test-only pauses that widen a race window so a test can hit it every time.

Read from the environment once per worker, and never in production (`ENV=production`
ignores them), so a deployed server cannot be slowed by a stray variable.
"""

from __future__ import annotations

import os

from app.config import Settings

# Seconds join_session waits between entering the room and reading the history.
JOIN_PAUSE = "HELPLINE_TEST_JOIN_PAUSE"
# Seconds a staff socket's connect handler waits before it returns (before the CONNECT
# answer goes out): events for `admins` meanwhile must not reach it ahead of that answer.
CONNECT_PAUSE = "HELPLINE_TEST_CONNECT_PAUSE"
# Seconds a worker's after-start work waits once it serves: what a worker needs before it
# takes requests must not be started there.
START_PAUSE = "HELPLINE_TEST_START_PAUSE"


def join_pause(settings: Settings, environ: dict[str, str] | None = None) -> float:
    return _seconds(settings, JOIN_PAUSE, environ)


def connect_pause(settings: Settings, environ: dict[str, str] | None = None) -> float:
    return _seconds(settings, CONNECT_PAUSE, environ)


def start_pause(settings: Settings, environ: dict[str, str] | None = None) -> float:
    return _seconds(settings, START_PAUSE, environ)


def _seconds(settings: Settings, variable: str, environ: dict[str, str] | None) -> float:
    if settings.production:
        return 0.0
    raw = (os.environ if environ is None else environ).get(variable, "")
    try:
        return max(0.0, float(raw)) if raw else 0.0
    except ValueError:
        return 0.0
