#!/usr/bin/env bash
# Install and run the server. Without DATABASE_URL / REDIS_URL it runs embedded
# (SQLite file + in-process state, one worker; `helpline serve` migrates the file);
# set both for production. Needs Python 3.11+; node/npm for the demo console's assets.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate
      break
    fi
  done
  if [ -z "${PYTHON:-}" ]; then
    echo "serve.sh: Python 3.11 or newer is needed" >&2
    exit 1
  fi
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .

if command -v npm >/dev/null; then
  npm ci --prefix app/demo --no-audit --no-fund --loglevel=error >/dev/null
else
  echo "serve.sh: npm not found: the API works, the demo console at /demo lacks its client" >&2
fi

# A private signing key for this checkout, kept in .env (git-ignored) so tokens survive
# restarts. Production sets JWT_SECRET itself.
if [ -z "${JWT_SECRET:-}" ] && ! grep -qs '^JWT_SECRET=' .env; then
  echo "JWT_SECRET=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')" >>.env
  echo "serve.sh: wrote a random JWT_SECRET to .env" >&2
fi

echo "serve.sh: demo console at http://localhost:${PORT:-3001}/demo" >&2
exec .venv/bin/helpline serve
