"""`helpline` console script: serve, migrate, create-admin, doctor.

Run from the project directory: the database engine comes from its `piccolo_conf.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence

from app.config import ConfigError, Settings

# Whoever runs the CLI already holds the database: they act as an admin would.
OPERATOR_ID = uuid.UUID(int=0)


def serve(settings: Settings) -> int:
    """Run the server with WEB_CONCURRENCY workers on PORT (Sanic's worker manager)."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app import hooks
    from app.main import create_app

    problems = settings.problems() + hooks.problems()
    if problems:
        for problem in problems:
            print(f"helpline: cannot start: {problem}", file=sys.stderr)
        return 2
    if settings.embedded:
        print("helpline: embedded mode: single worker, not for production", file=sys.stderr)
    if not settings.database_url:
        # A new user has no release phase: the SQLite file is brought up to date here.
        code = migrate()
        if code != 0:
            print("helpline: cannot start: migrations failed", file=sys.stderr)
            return code
    loader = AppLoader(factory=create_app)
    app = loader.load()
    workers = max(1, settings.web_concurrency)
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=workers,
        single_process=workers == 1,
        access_log=False,
        motd=False,
    )
    if workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)
    return 0


def migrate() -> int:
    """Apply every pending Piccolo migration (the Procfile's release phase)."""
    cmd = [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"]
    return subprocess.call(cmd, env={**os.environ, "PICCOLO_CONF": "piccolo_conf"})


def _read_password(given: str | None) -> str:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("the passwords differ")
    return first


async def _create_admin(
    settings: Settings, email: str, password: str, full_name: str | None
) -> dict[str, object]:
    from app.auth import Principal
    from app.context import Services
    from app.domain import admins
    from app.state import MemoryState
    from app.validation import read_registration

    # The same rules as POST /api/auth/register, through the same reader.
    clean_email, clean_password, clean_name = read_registration(
        {"email": email, "password": password, "fullName": full_name}
    )
    services = Services.build(settings, state=MemoryState())
    out = await admins.register(
        services,
        Principal(role="admin", subject=OPERATOR_ID, staff_role="admin"),
        email=clean_email,
        password=clean_password,
        full_name=clean_name,
        ip="cli",
    )
    return dict(out["admin"])


def create_admin(settings: Settings, args: argparse.Namespace) -> int:
    """An admin without HTTP: the first one of a desk, or one more at any time."""
    from app.errors import ApiError

    try:
        password = _read_password(args.password)
        admin = asyncio.run(_create_admin(settings, args.email, password, args.full_name))
    except ValueError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        fields = (exc.details or {}).get("fields", {})
        why = "; ".join(f"{k} {v}" for k, v in fields.items()) or exc.message
        print(f"helpline: {why}", file=sys.stderr)
        return 1
    print(f"created admin {admin['email']} ({admin['id']})")
    return 0


def doctor(settings: Settings) -> int:
    """One line per problem; exit 1 if there is any."""
    from app import doctor as checks

    print(f"helpline doctor: {checks.describe(settings)}")
    problems = asyncio.run(checks.run(settings))
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        return 1
    print("ok: configuration, database, Redis and migrations")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (embedded: migrates the SQLite file)")
    commands.add_parser("migrate", help="apply pending database migrations")
    create = commands.add_parser("create-admin", help="create an admin account")
    create.add_argument("email")
    create.add_argument("--full-name", default=None)
    create.add_argument(
        "--password", default=None, help="default: prompted, or the first line of stdin"
    )
    commands.add_parser("doctor", help="check configuration, database, Redis and migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # piccolo_conf.py is found on the path, as Piccolo's own CLI finds it.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    if args.command == "create-admin":
        return create_admin(settings, args)
    if args.command == "doctor":
        return doctor(settings)
    return migrate()


if __name__ == "__main__":
    sys.exit(main())
