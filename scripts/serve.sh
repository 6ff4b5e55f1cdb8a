#!/usr/bin/env bash
# Install and run the server. Without DATABASE_URL / REDIS_URL it runs embedded
# (SQLite file + in-process state, one worker); set both for production.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/helpline serve
