#!/usr/bin/env bash
# Install, then run the test suite (add pytest arguments, e.g. -m "not e2e").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest -q "$@"
