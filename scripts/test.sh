#!/usr/bin/env bash
# The whole test suite: install, lint, type-check, then every test against the real
# PostgreSQL and Redis (TEST_PG_DSN / TEST_REDIS_URL to point elsewhere). Needs Python
# 3.11+, npm and Chromium (checked first).
set -euo pipefail
cd "$(dirname "$0")/.."
# What the suite needs besides Python: each missing one is named in one line, with how to
# get it (Debian names; `.ci/run` installs Chromium itself).
need() {
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
    echo "scripts/test.sh: $1 not found: $2" >&2
    exit 1
  fi
}
need python3 "install Python 3.11+ with venv (apt-get install -y python3 python3-venv)"
need npm "install Node.js and npm (apt-get install -y nodejs npm): the socket.io-client and browser tests use them"
need "${CHROMIUM:-/usr/bin/chromium}" "install Chromium (apt-get install -y chromium) or set CHROMIUM to its path: the demo and /docs browser tests drive it"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Exactly the locked versions (hash-checked), then the project itself without resolving
# anything more (the locked setuptools builds it): see the README's "Dependencies".
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
  -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
if [ -f tests/js/package.json ]; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null
fi
npm ci --prefix app/demo --no-audit --no-fund --loglevel=error >/dev/null
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
