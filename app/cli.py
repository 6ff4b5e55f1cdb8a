"""`helpline` console script: serve, migrate (and the operator commands)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

from app.config import ConfigError, Settings


def serve(settings: Settings) -> int:
    """Run the server with WEB_CONCURRENCY workers on PORT (Sanic's worker manager)."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app.main import create_app

    problems = settings.problems()
    if problems:
        for problem in problems:
            print(f"helpline: cannot start: {problem}", file=sys.stderr)
        return 2
    if settings.embedded:
        print("helpline: embedded mode: single worker, not for production", file=sys.stderr)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helpline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server")
    commands.add_parser("migrate", help="apply pending database migrations")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    return migrate()


if __name__ == "__main__":
    sys.exit(main())
