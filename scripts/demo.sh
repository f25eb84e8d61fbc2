#!/usr/bin/env bash
# Install, then run the whole pipeline on the embedded default (sample crawl, offline) into ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m laion_assets.demo "$@"
