#!/usr/bin/env bash
# The whole test suite: install, lint, type-check, then every test against the real
# PostgreSQL and Redis (TEST_PG_DSN / TEST_REDIS_URL to point elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
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
