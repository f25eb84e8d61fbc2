#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with pinned dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# the stamp covers the C sources too: `pip install -e .` is what compiles them (setup.py)
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt setup.py laion_assets/core/extract/*.c laion_assets/core/extract/*.h | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
