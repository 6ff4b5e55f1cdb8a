#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml: exact versions and sha256 hashes of every
# package, for Python 3.11+ on any platform (markers keep platform-only packages apart).
#   requirements.txt      the runtime (a Heroku-style build installs it; so does serve.sh)
#   requirements-dev.txt  runtime + dev + bench extras, same versions (scripts/test.sh)
# Without arguments, locked versions that still satisfy pyproject are kept (adding a
# dependency changes nothing else); `--upgrade` takes the newest releases pyproject allows,
# `--upgrade-package NAME` one package. Then run `bash scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check uv==0.13.9
common=(--universal --python-version 3.11 --generate-hashes --quiet
  --custom-compile-command "bash scripts/lock.sh")
.venv/bin/uv pip compile pyproject.toml "${common[@]}" "$@" -o requirements.txt
.venv/bin/uv pip compile pyproject.toml --all-extras -c requirements.txt "${common[@]}" "$@" \
  -o requirements-dev.txt
