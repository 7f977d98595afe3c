#!/usr/bin/env bash
# Create .venv and install policyqa with pinned dependencies (idempotent; offline except package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "policyqa needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.policyqa-installed
want="$(sha256sum pyproject.toml | cut -c1-16)-${1:-run}"
if [ ! -f "$stamp" ] || ! grep -qx -- "$want" "$stamp" 2>/dev/null; then
  echo "== installing dependencies (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  if [ "${1:-run}" = "test" ]; then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  echo "$want" > "$stamp"
fi
