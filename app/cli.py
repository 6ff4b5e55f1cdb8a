"""`helpline` console script: serve, migrate, create-admin, doctor.

Run from the project directory: the database engine comes from its `piccolo_conf.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from app.config import GENERATED_SECRET_VAR, ConfigError, Settings
from app.failures import explain

if TYPE_CHECKING:
    # Imported lazily at run time: app.auth brings prometheus-client, which `serve` must
    # import only after it has chosen the metrics directory.
    from app.models import StaffRole

# Whoever runs the CLI already holds the database: they act as an admin would.
OPERATOR_ID = uuid.UUID(int=0)
# The exit code of a mistake on the command line (argparse's) and of configuration.
USAGE_ERROR = 2


def serve(settings: Settings) -> int:
    """Run the server with WEB_CONCURRENCY workers on PORT (Sanic's worker manager)."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    metrics_dir = _metrics_directory()
    from app import hooks
    from app.main import create_app

    problems = settings.problems() + hooks.problems()
    if problems:
        for problem in problems:
            print(f"helpline: cannot start: {problem}", file=sys.stderr)
        return 2
    print(f"helpline: {settings.describe_mode()}", file=sys.stderr)
    if settings.single_worker:
        # One process owns the database and there is no release phase: bring it up to date.
        code = subprocess.call([sys.executable, "-m", "app.cli", "migrate"])
        if code != 0:
            print("helpline: cannot start: migrations failed (see above)", file=sys.stderr)
            return code
    loader = AppLoader(factory=create_app)
    app = loader.load()
    workers = max(1, settings.web_concurrency)
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=workers,
        single_process=workers == 1,
        # app/api/access.py writes the access log, with the request id.
        access_log=False,
        motd=False,
    )
    try:
        if workers == 1:
            Sanic.serve_single(primary=app)
        else:
            Sanic.serve(primary=app, app_loader=loader)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _metrics_directory() -> str | None:
    """Before prometheus-client is imported here or in a worker: a fresh directory where
    every worker writes its metrics, so /metrics sums them (the operator's
    PROMETHEUS_MULTIPROC_DIR if set, emptied; else a new temporary one, returned so it
    is removed at exit)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        shutil.rmtree(given, ignore_errors=True)
        os.makedirs(given, exist_ok=True)
        return None
    made = tempfile.mkdtemp(prefix="helpline-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def migrate(settings: Settings) -> int:
    """Apply every pending Piccolo migration (the Procfile's release phase).

    In-process, with Piccolo's own chatter kept for --debug: the one line printed says
    what happened, and a failure is one line too (see `explain`)."""
    import contextlib
    import io

    from piccolo.apps.migrations.commands.forwards import run_forwards

    from app import doctor as checks

    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        pending = asyncio.run(checks.pending_migrations(settings))
        result = asyncio.run(run_forwards("all")) if pending else None
    if DEBUG:
        print(chatter.getvalue(), file=sys.stderr)
    if result is not None and not result.success:
        print(f"helpline: migrations failed: {result.message}", file=sys.stderr)
        return 1
    where = checks.where(settings)
    print(f"migrations: {len(pending)} applied, database up to date ({where})")
    return 0


def _read_password(given: str | None) -> str:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise EOFError  # Ctrl-D, or an empty pipe: no password was given
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("the passwords differ")
    return first


async def _create_admin(
    settings: Settings, email: str, password: str, full_name: str | None, role: StaffRole
) -> dict[str, object]:
    from app import contract, db, models
    from app.auth import Principal
    from app.context import Services
    from app.domain import admins
    from app.state import MemoryState

    # The same rules as POST /api/auth/register: the same declared shape.
    new = contract.read(
        models.Registration, {"email": email, "password": password, "fullName": full_name}
    )
    services = Services.build(settings, state=MemoryState(), database=db.engine())
    out = await admins.register(
        services,
        Principal(role="admin", subject=OPERATOR_ID, staff_role="admin"),
        email=new.email,
        password=new.password,
        full_name=new.fullName,
        ip="cli",
        role=role,
    )
    admin: dict[str, object] = contract.to_builtins(out.admin)
    return admin


def create_admin(settings: Settings, args: argparse.Namespace) -> int:
    """An admin without HTTP: the first one of a desk, or one more (admin or agent) at
    any time."""
    from app.errors import ApiError, FieldProblems
    from app.models import STAFF_ROLES

    # `main` refused any other role before the settings were read.
    role = next(r for r in STAFF_ROLES if r == args.role)
    try:
        password = _read_password(args.password)
        admin = asyncio.run(_create_admin(settings, args.email, password, args.full_name, role))
    except ValueError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        fields = exc.details.fields if isinstance(exc.details, FieldProblems) else {}
        why = "; ".join(f"{k} {v}" for k, v in fields.items()) or exc.message
        print(f"helpline: {why}", file=sys.stderr)
        return 1
    print(f"created {admin['role']} {admin['email']} ({admin['id']})")
    return 0


def doctor(settings: Settings) -> int:
    """The mode and environment seen, then one line per problem; exit 1 if there is any."""
    from app import doctor as checks

    print(f"helpline doctor: {settings.describe_mode()}")
    print(f"environment: {checks.describe(settings)}")
    problems = asyncio.run(checks.run(settings))
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        return 1
    print(f"ok: {checks.checked(settings)}")
    return 0


# --debug anywhere on the command line: failures then show their traceback.
DEBUG = False

COMMANDS = {
    "serve": "run the server (one worker: migrates the database)",
    "migrate": "apply pending database migrations",
    "create-admin": "create a staff account (an admin unless --role agent)",
    "doctor": "check configuration, database, Redis and migrations",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line and exit code 2 like every
    other failure of the CLI (argparse prints the usage, then the error)."""

    def error(self, message: str) -> NoReturn:
        print(f"helpline: {message} (helpline --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="helpline", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="tracebacks instead of one line")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == "create-admin":
            command.add_argument("email")
            command.add_argument("--full-name", default=None)
            command.add_argument("--role", default="admin", help="admin (default) or agent")
            command.add_argument(
                "--password", default=None, help="default: prompted, or the first line of stdin"
            )
    return parser


def _unknown_command(words: list[str]) -> str | None:
    """argparse's own answer to a wrong sub-command is two lines listing the choices in
    its own syntax; this one is a sentence naming them."""
    first = next((w for w in words if not w.startswith("-")), None)
    if "-h" in words or "--help" in words or first in COMMANDS:
        return None
    said = "no command" if first is None else f"unknown command '{first}'"
    return f"{said}: use one of {', '.join(COMMANDS)}"


def _argument_problem(args: argparse.Namespace) -> str | None:
    """What argparse cannot check without importing the app (create-admin's role), said
    before the settings are read, so the mistake is the only line."""
    if args.command != "create-admin":
        return None
    from app.models import STAFF_ROLES

    if args.role in STAFF_ROLES:
        return None
    return f"unknown role '{args.role}': use {' or '.join(STAFF_ROLES)}"


def _run(args: argparse.Namespace) -> int:
    # piccolo_conf.py is found on the path, as Piccolo's own CLI finds it.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # Each command is a start of its own and draws its own random secret (where none is
    # set); one inherited from the environment belongs to another start (a shell or a
    # test process that built settings before). Its workers inherit the one drawn here.
    os.environ.pop(GENERATED_SECRET_VAR, None)
    if args.command != "serve":
        # Only a server signs tokens that anyone keeps: the warning about a per-start
        # secret would be a second line before these commands' one (doctor names a
        # missing secret as a problem of its own).
        logging.getLogger("app.config").setLevel(logging.ERROR)
    settings = Settings.from_env()
    if args.command == "serve":
        return serve(settings)
    # Every other command talks to the database URL: a malformed one is said first.
    bad_urls = settings.url_problems()
    if bad_urls and args.command != "doctor":
        for problem in bad_urls:
            print(f"helpline: {problem}", file=sys.stderr)
        return 2
    if args.command == "create-admin":
        return create_admin(settings, args)
    if args.command == "doctor":
        return doctor(settings)
    return migrate(settings)


def main(argv: Sequence[str] | None = None) -> int:
    global DEBUG
    argv = list(sys.argv[1:] if argv is None else argv)
    DEBUG = "--debug" in argv
    words = [a for a in argv if a != "--debug"]
    unknown = _unknown_command(words)
    if unknown is not None:
        print(f"helpline: {unknown}", file=sys.stderr)
        return USAGE_ERROR
    args = _parser().parse_args(words)
    problem = _argument_problem(args)
    if problem is not None:
        print(f"helpline: {problem}", file=sys.stderr)
        return USAGE_ERROR
    try:
        with warnings.catch_warnings():
            # Piccolo warns (in colour) on every failed connection; the line below says it.
            if not DEBUG:
                warnings.simplefilter("ignore")
            return _run(args)
    except KeyboardInterrupt:
        print("\nhelpline: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if DEBUG:
            raise
        print(f"helpline: {explain(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
