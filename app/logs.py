"""One log stream for every logger (ours, Sanic's, python-socketio's, Piccolo's).

Every line carries the id of the request it belongs to (a context variable set by the
access-log middleware, `app/api/access.py`), and nothing that looks like a secret reaches
the stream: tokens, passwords and URL credentials are redacted after formatting, so a
traceback or a third-party line cannot leak one either. `LOG_FORMAT=json` gives one JSON
object per line for platforms that parse logs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

# The id of the HTTP request (or Socket.IO connection) being served; empty outside one.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")

REDACTED = "[redacted]"
_KEY = r"(?:token|password|passwd|secret|authorization|jwt|api[_-]?key)\w*"
_SECRETS = [
    # "key": "value" and 'key': 'value' for any key naming a credential (token,
    # customerToken, password, secret, authorization…): the whole quoted value.
    re.compile(rf"""(?i)({_KEY}["']?\s*[=:]\s*(["'])(?:bearer\s+)?)(?!\[redacted\])([^"']*)"""),
    # key=value, key: value unquoted (query strings, headers, free text).
    re.compile(rf"""(?i)({_KEY}\s*[=:]\s*(?:bearer\s+)?)()(?!\[redacted\])([^\s&"',;}}\]]+)"""),
    re.compile(r"(?i)(bearer\s+)()(?!\[redacted\])([\w.~+/-]+=*)"),
    # A JWT anywhere (three base64url parts, the first a JSON header).
    re.compile(r"()()(eyJ[\w-]+\.[\w-]+\.[\w-]*)"),
    # user:password@ in a URL.
    re.compile(r"(://[^:/\s@]*:)()([^@\s/]+)(?=@)"),
]
# Attributes of every LogRecord: whatever else a record carries was passed as `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    """`text` with every credential-looking value replaced by [redacted]."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`time LEVEL [pid] logger: message rid=<request id>`, tracebacks below."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} [{record.process}] {record.name}: "
        line += record.getMessage()
        rid = REQUEST_ID.get()
        if rid:
            line += f" rid={rid}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message, requestId, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": redact(record.getMessage()),
        }
        rid = REQUEST_ID.get()
        if rid:
            out["requestId"] = rid
        for key, value in _extras(record).items():
            out.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        # Redacted field by field: in the encoded line, quotes are escaped.
        return orjson.dumps(out, default=lambda v: redact(str(v))).decode()


# Every logger that writes in this process: Sanic's own, ours, the Socket.IO stack's,
# Piccolo's and asyncio's. Each hands its records to the root's one handler.
LIBRARY_LOGGERS = {
    "sanic.root": None,
    "sanic.error": None,
    "sanic.access": None,
    # Worker lifecycle ("Starting worker", "Worker ready", "Stopping worker"): a few
    # lines per start and stop, kept at any LOG_LEVEL as Sanic's own setup did.
    "sanic.server": logging.INFO,
    "sanic.websockets": None,
    # A level of their own before the Socket.IO server is built, or python-socketio and
    # python-engineio each add a plain stderr handler of their own.
    "socketio": logging.WARNING,
    "socketio.server": logging.WARNING,
    "engineio": logging.WARNING,
    "engineio.server": logging.WARNING,
    "piccolo": logging.WARNING,
    "asyncio": logging.WARNING,
}


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Route every logger through one stderr handler in `fmt`; safe to call again."""
    level = level.upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_helpline", False):
            root.removeHandler(old)
    handler._helpline = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name, library_level in LIBRARY_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        if name == "sanic.server":
            library_level = min(logging.INFO, logging.getLevelNamesMapping()[level])
        logger.setLevel(library_level or level)
    ours = logging.getLogger("app")
    ours.handlers.clear()
    ours.propagate = True
    ours.setLevel(level)
