#!/usr/bin/env bash
# Runbook timing (docs/release.md): publish the demo once, then file a request and re-derive, timed.
# Usage: bash scripts/takedown_timing.sh [work dir]   (the work dir is emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-/tmp/takedown-runbook}; rm -rf "$D"; mkdir -p "$D"
export PYTHONPATH=$PWD LAION_ASSETS_ROOT=$D/data DAGSTER_HOME=$D/home
cat /proc/loadavg
/usr/bin/time -f "demo: %e s wall %U+%S s CPU" .venv/bin/python -m laion_assets.demo --root "$D/data" --dagster-home "$D/home" > "$D/demo.log" 2>&1 || { tail -20 "$D/demo.log"; exit 1; }
URL=$(.venv/bin/python -c "
import pyarrow.parquet as pq, glob, pathlib
v=pathlib.Path('$D/data/releases/sample/LATEST').read_text().strip()
print(pq.read_table(sorted(glob.glob('$D/data/releases/sample/'+v+'/part-*.parquet'))[0]).column('URL')[0].as_py())")
echo "$URL" | sed 's#^http://#HTTP://#' > "$D/dmca-2026-12-02.url.txt"
cat /proc/loadavg
date +%T.%N
/usr/bin/time -f "file: %e s wall %U+%S s CPU" .venv/bin/python -m laion_assets.takedown file "$D/dmca-2026-12-02.url.txt" --root "$D/data"
/usr/bin/time -f "rederive: %e s wall %U+%S s CPU" .venv/bin/python -m laion_assets.takedown rederive
date +%T.%N
cat /proc/loadavg
ls "$D/data/releases/sample/"*/WITHDRAWN.json
cat "$D"/data/removal/receipts/*.json | head -40
