"""Settings: every knob defined once, with its default and a line of doc.

Read once from the environment (and a `.env` file if present) by `Settings.from_env()`;
the README's configuration table is generated from `SETTINGS` so the two cannot drift.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import load_dotenv

from app.models import JOIN_PAGE_MAX

# The old published default: a server still configured with it signs nothing with it.
DEFAULT_JWT_SECRET = "change-me"
# ENV accepts these only: a typo such as `prod` must not quietly mean "development".
ENVIRONMENTS = ("development", "test", "production")
Environment = Literal["development", "test", "production"]
LOG_FORMATS = ("text", "json")
# Upper bounds of numbers whose only sane limit is "not absurd".
MANY = 10**9
YEAR = 366 * 24 * 3600
# Where a per-start random secret is handed to the workers of the same start.
GENERATED_SECRET_VAR = "HELPLINE_GENERATED_JWT_SECRET"
# How sessions find an owner by themselves (app/domain/routing.py).
AUTO_ASSIGN_MODES = ("off", "round_robin", "least_open")

log = logging.getLogger(__name__)


def _setting(
    default: Any,
    doc: str,
    *,
    between: tuple[int, int] | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """One setting: its default, its line in the README, and the values it accepts (a
    number's inclusive bounds, or a word's closed set), checked whenever Settings is built."""
    return field(default=default, metadata={"doc": doc, "between": between, "choices": choices})


@dataclass(frozen=True)
class Settings:
    env: Environment = _setting(  # noqa: RUF009 - a field(), as every other setting
        "development",
        "`development`, `test` or `production` (anything else refuses to start); "
        "`production` turns on the start-up safety checks.",
        choices=ENVIRONMENTS,
    )
    database_url: str = _setting(
        "", "PostgreSQL URL (`postgres://user:pass@host:port/db`). Empty: embedded SQLite."
    )
    sqlite_path: str = _setting("helpline.sqlite3", "SQLite file used when DATABASE_URL is empty.")
    redis_url: str = _setting("", "Redis URL. Empty: in-process state, one worker only.")
    redis_namespace: str = _setting(
        "helpline", "Prefix of every Redis key and the Socket.IO channel (share one Redis)."
    )
    jwt_secret: str = _setting(
        "",
        "HS256 signing key; required in production. Elsewhere, unset means a random "
        "secret per start (tokens die on restart).",
    )
    port: int = _setting(3001, "HTTP port.", between=(1, 65535))
    host: str = _setting("0.0.0.0", "Interface to bind.")
    web_concurrency: int = _setting(1, "Worker processes.", between=(1, 256))
    cors_origins: str = _setting("*", "Comma-separated allowed origins for REST and Socket.IO.")
    admin_token_ttl: int = _setting(12 * 3600, "Admin token lifetime, seconds.", between=(60, YEAR))
    customer_token_ttl: int = _setting(
        7 * 24 * 3600, "Customer token lifetime, seconds.", between=(60, YEAR)
    )
    auth_cache_ms: int = _setting(
        1000,
        "Longest a worker trusts its cached check that a staff token's account is active and "
        "its sign-in live (revocations through the API reach every worker sooner).",
        between=(0, 60_000),
    )
    invitation_ttl: int = _setting(
        7 * 24 * 3600,
        "Invitation and password-reset link lifetime, seconds.",
        between=(60, YEAR),
    )
    open_signup: bool = _setting(False, "Let anyone register an admin after the first one exists.")
    typing_ttl: int = _setting(
        5, "Seconds a typing indicator lives without a refresh.", between=(1, 300)
    )
    presence_ttl: int = _setting(
        60, "Seconds a presence entry lives without a heartbeat.", between=(1, 3600)
    )
    availability_grace: int = _setting(
        60,
        "Seconds a staff member's last dropped connection (a closed tab, a phone in the "
        "background, a killed worker) still counts as connected: a reconnect within it "
        "keeps their conversations.",
        between=(1, 86_400),
    )
    auto_assign: str = _setting(
        "off",
        "`off`, `round_robin` or `least_open`: how new and waiting sessions are given to "
        "available agents (off: staff claim them).",
        choices=AUTO_ASSIGN_MODES,
    )
    max_open_per_agent: int = _setting(
        10,
        "Open sessions automatic routing gives one agent at most (claims may exceed it).",
        between=(1, MANY),
    )
    rate_login_failures: int = _setting(
        10,
        "Failed logins allowed per (email, client IP) a window; then 429.",
        between=(1, MANY),
    )
    rate_register: int = _setting(10, "Registrations allowed per IP a window.", between=(1, MANY))
    rate_session_create: int = _setting(30, "Sessions created per IP a window.", between=(1, MANY))
    rate_messages: int = _setting(120, "Messages posted per token a window.", between=(1, MANY))
    rate_window: int = _setting(60, "Rate-limit window, seconds.", between=(1, 86_400))
    max_body_bytes: int = _setting(
        64 * 1024, "Largest accepted request body, bytes.", between=(1024, 100 * 1024 * 1024)
    )
    db_pool_min: int = _setting(1, "PostgreSQL pool minimum per worker.", between=(0, 1000))
    db_pool_max: int = _setting(10, "PostgreSQL pool maximum per worker.", between=(1, 1000))
    argon2_time_cost: int = _setting(
        2, "argon2 passes (raise for stronger hashes).", between=(1, 100)
    )
    argon2_memory_kib: int = _setting(
        19456, "argon2 memory, KiB (OWASP minimum 19 MiB).", between=(8, 4 * 1024 * 1024)
    )
    demo_enabled: bool = _setting(
        True, "Serve the demo console at /demo (default off when ENV=production)."
    )
    docs_enabled: bool = _setting(
        True, "Serve /docs (Swagger UI, offline) and /docs/openapi.json; the spec is public."
    )
    metrics_token: str = _setting(
        "",
        "Bearer token GET /metrics requires. Empty: /metrics answers loopback clients only.",
    )
    log_level: str = _setting("INFO", "Python log level.")
    trusted_proxies: int = _setting(
        0,
        "Proxies in front of the server that append to X-Forwarded-For (Heroku: 1, one "
        "nginx: 1, none: 0). 0 ignores the header: the client IP is the TCP peer.",
        between=(0, 32),
    )
    rate_login_failures_ip: int = _setting(
        30,
        "Failed logins allowed per client IP a window, whatever the emails; then 429.",
        between=(1, MANY),
    )
    rate_login_email_ceiling: int = _setting(
        100,
        "Failed logins per email a window from all IPs together past which every login "
        "for it is slowed by LOGIN_SLOWDOWN (never locked).",
        between=(1, MANY),
    )
    login_slowdown: int = _setting(
        2,
        "Seconds each login waits once its email is past the ceiling.",
        between=(0, 60),
    )
    socket_events_per_second: int = _setting(
        10,
        "Socket events one connection may send a second (sustained); more answer 429.",
        between=(1, MANY),
    )
    socket_event_burst: int = _setting(
        30,
        "Socket events one connection may send at once before the per-second rate applies.",
        between=(1, MANY),
    )
    socket_events_in_flight: int = _setting(
        8,
        "Events of one connection under way at once (not yet acked); more answer 429.",
        between=(1, MANY),
    )
    socket_queue_bytes: int = _setting(
        1024 * 1024,
        "Bytes waiting to be sent to one connection; past it (a client that does not read) "
        "the connection is closed.",
        between=(1024, 1024 * 1024 * 1024),
    )
    socket_auth_timeout: int = _setting(
        10,
        "Seconds a new Engine.IO connection has to authenticate (Socket.IO CONNECT).",
        between=(1, 600),
    )
    connections_per_ip: int = _setting(
        100,
        "Engine.IO connections one client IP may hold open, per worker.",
        between=(1, MANY),
    )
    join_page_chars: int = _setting(
        128 * 1024,
        "Characters of message content one join_session ack carries at most (past it "
        f"`hasMore`: page on with REST); {JOIN_PAGE_MAX} messages is the other bound.",
        between=(1, MANY),
    )
    log_format: str = _setting(
        "text",
        "`text` (one line per record) or `json` (one JSON object per line).",
        choices=LOG_FORMATS,
    )
    relay_timeout: int = _setting(
        30,
        "Seconds a worker waits for another worker to answer a relayed long-polling request "
        "before answering the client itself (a GET gets an empty poll, a POST a 503).",
        between=(1, 3600),
    )
    relay_max_in_flight: int = _setting(
        2000,
        "Relayed long-polling requests one worker holds at once; past it, 503 and retry.",
        between=(1, MANY),
    )

    def __post_init__(self) -> None:
        found = [problem for f in fields(self) if (problem := _out_of_bounds(f, self))]
        if self.db_pool_min > self.db_pool_max:
            found.append(
                f"DB_POOL_MIN ({self.db_pool_min}) must not be above DB_POOL_MAX "
                f"({self.db_pool_max})"
            )
        if found:
            raise ConfigError("; ".join(found))

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def mode(self) -> str:
        """What the URLs make of the server: one of MODES (`invalid` with REDIS_URL alone)."""
        if self.database_url and self.redis_url:
            return "distributed"
        if self.database_url:
            return "standalone"
        return "invalid" if self.redis_url else "embedded"

    @property
    def single_worker(self) -> bool:
        """In-process Socket.IO and TTL state: correct only while one worker serves."""
        return not self.redis_url

    @property
    def pubsub_prefix(self) -> str:
        """What a Redis pub/sub channel name must carry to stay within this deployment:
        pub/sub ignores the database number, so two deployments on one Redis server with
        the same namespace and different databases would otherwise hear each other."""
        db = 0
        if self.redis_url:
            from redis.connection import parse_url

            db = int(parse_url(self.redis_url).get("db", 0) or 0)
        return f"{self.redis_namespace}:db{db}"

    @property
    def cors_origin_list(self) -> list[str] | str:
        origins = [o.strip() for o in self.cors_origins.split(",") if o.strip()]
        return "*" if origins in ([], ["*"]) else origins

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        if environ is None:
            load_dotenv(override=False)
            environ = dict(os.environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.name.upper())
            if raw is None or raw == "":
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                try:
                    values[f.name] = int(raw)
                except ValueError as exc:
                    raise ConfigError(f"{f.name.upper()} must be an integer, got {raw!r}") from exc
            else:
                values[f.name] = raw
        if "demo_enabled" not in values and values.get("env") == "production":
            values["demo_enabled"] = False
        settings = cls(**values)
        if not settings.production and settings.jwt_secret in ("", DEFAULT_JWT_SECRET):
            settings = replace(settings, jwt_secret=_generated_secret(environ))
        return settings

    @property
    def secret_generated(self) -> bool:
        return self.jwt_secret == os.environ.get(GENERATED_SECRET_VAR)

    def secret_problem(self) -> str | None:
        """Why JWT_SECRET cannot protect tokens, if it cannot (fatal only in production)."""
        if self.jwt_secret in ("", DEFAULT_JWT_SECRET):
            return "JWT_SECRET is missing or the default: set a long random secret"
        if self.secret_generated:
            return (
                "JWT_SECRET is missing or the default: signing with a random secret per "
                "start instead (tokens die on restart)"
            )
        if len(self.jwt_secret) < 32:
            return "JWT_SECRET is shorter than 32 characters"
        return None

    def problems(self) -> list[str]:
        """What makes this configuration unfit to serve; empty when fine."""
        found = self.url_problems()
        if self.log_level.upper() not in logging.getLevelNamesMapping():
            found.append(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        secret = self.secret_problem()
        if self.production and secret:
            found.append(secret)
        if self.mode == "invalid":
            found.append(
                "REDIS_URL is set without DATABASE_URL: set DATABASE_URL too "
                "(or unset REDIS_URL for embedded mode)"
            )
        elif self.production and self.mode != "distributed":
            found.append("production needs both DATABASE_URL and REDIS_URL")
        if self.single_worker and self.web_concurrency > 1:
            found.append(
                f"{self.mode} mode (no REDIS_URL) runs one worker only: "
                "set WEB_CONCURRENCY=1 or set REDIS_URL"
            )
        return found

    def url_problems(self) -> list[str]:
        """Malformed service URLs, named without echoing them (they may hold a password),
        or an SQLite file that cannot be created."""
        found = []
        sqlite_dir = os.path.dirname(os.path.abspath(self.sqlite_path))
        if not self.database_url and not os.path.isdir(sqlite_dir):
            found.append(f"directory of SQLITE_PATH {self.sqlite_path} does not exist")
        for name, url, schemes in (
            ("DATABASE_URL", self.database_url, ("postgres", "postgresql")),
            ("REDIS_URL", self.redis_url, ("redis", "rediss", "unix")),
        ):
            if not url:
                continue
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises ValueError on a malformed port
            except ValueError:
                found.append(f"{name} is not a valid URL")
                continue
            if parts.scheme not in schemes:
                got = f"{parts.scheme}://" if parts.scheme else "no scheme"
                wanted = " or ".join(f"{s}://" for s in schemes)
                found.append(f"{name} must start with {wanted} (got {got})")
        return found

    def describe_mode(self) -> str:
        """One line an operator reads at start and in `helpline doctor`."""
        return MODES[self.mode]


MODES = {
    "embedded": "embedded mode: SQLite file, in-process state, one worker; not for production",
    "standalone": "standalone mode: PostgreSQL, in-process state (no REDIS_URL), one worker",
    "distributed": "distributed mode: PostgreSQL and Redis, any number of workers",
    "invalid": "no mode: REDIS_URL without DATABASE_URL",
}


def _generated_secret(environ: dict[str, str]) -> str:
    """A random secret for this start, never a known constant: nobody can forge a token,
    and tokens die with the process. The first caller of a start (the main process)
    draws it; the workers it spawns inherit it through the environment, so they agree."""
    secret = environ.get(GENERATED_SECRET_VAR) or os.environ.get(GENERATED_SECRET_VAR)
    if not secret:
        secret = secrets.token_urlsafe(48)
        os.environ[GENERATED_SECRET_VAR] = secret
        log.warning(
            "JWT_SECRET is not set: signing with a random secret for this start only "
            "(tokens stop working on restart); set JWT_SECRET to keep them"
        )
    return secret


class ConfigError(RuntimeError):
    """The configuration cannot run; the message says what to fix."""


def _out_of_bounds(setting: Any, settings: Settings) -> str | None:
    """Why `setting`'s value in `settings` is not one it accepts, in one line; or None."""
    value = getattr(settings, setting.name)
    between, choices = setting.metadata["between"], setting.metadata["choices"]
    if between is not None and not between[0] <= value <= between[1]:
        return f"{setting.name.upper()} must be between {between[0]} and {between[1]}, got {value}"
    if choices is not None and value not in choices:
        return f"{setting.name.upper()} must be one of {', '.join(choices)}, got {value!r}"
    return None


def _documented(doc: str, between: tuple[int, int] | None) -> str:
    if between is None:
        return doc
    low, high = between
    shown = f"at least {low:,}" if high == MANY else f"{low:,}–{high:,}"
    return f"{doc} Range: {shown}."


SETTINGS = [
    (f.name.upper(), f.default, _documented(f.metadata["doc"], f.metadata["between"]))
    for f in fields(Settings)
]


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "`true`" if default else "`false`"
    return f"`{default}`" if default != "" else "(empty)"


def markdown_table() -> str:
    """The README's configuration table (a test checks the README holds exactly this)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {_shown(default)} | {doc} |" for name, default, doc in SETTINGS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m app.config --markdown")
    sys.stdout.write(markdown_table())
