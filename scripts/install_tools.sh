#!/usr/bin/env bash
# Peer tools the tests run as users would (kept out of the project's venv: their pins conflict):
# img2dataset, to download a release with the command its dataset card prints. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv-tools/bin/img2dataset ]; then
  "$PY" -m venv .venv-tools
  .venv-tools/bin/python -m pip install -q "img2dataset==1.47.0"
fi
