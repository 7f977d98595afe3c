#!/usr/bin/env bash
# The main job: install, build the offline model, index corpus/, start the app on http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
.venv/bin/policyqa model build
.venv/bin/policyqa ingest corpus
exec .venv/bin/policyqa serve "$@"
