#!/usr/bin/env bash
# Install, then run the test suite (add pytest arguments, e.g. -m "not e2e").
# The default run uses pytest-xdist: PYTEST_WORKERS workers (default: the CPUs, at most 4), each
# taking whole test files (`--dist loadfile`, so a file's fixtures are built once). PYTEST_WORKERS=0
# runs everything in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
workers="${PYTEST_WORKERS:-}"
if [ -z "$workers" ]; then
  workers="$(nproc 2>/dev/null || echo 2)"
  [ "$workers" -gt 4 ] && workers=4
fi
if [ "$workers" -eq 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
exec .venv/bin/python -m pytest -q -n "$workers" --dist loadfile "$@"
