#!/usr/bin/env bash
# The whole test suite: install (with test extras and, as root, Chromium + a CJK font), build the model, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/browser_deps.sh || echo "(browser tests will be skipped: Chromium could not be installed)"
.venv/bin/policyqa model build
exec .venv/bin/python -m pytest -q "$@"
