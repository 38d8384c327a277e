#!/usr/bin/env bash
# Creates .venv with every pinned dependency and the project installed in editable mode.
# Idempotent: a second run only checks that the lock file is satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip install --quiet "uv==0.13.9"
fi
# requirements.lock pins the whole dependency tree (made with: uv pip compile pyproject.toml --extra dev)
VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install --quiet -r requirements.lock
VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install --quiet --no-deps -e .
