#!/usr/bin/env bash
# Runbook timing (docs/release.md): publish the demo, file a request (one published URL, re-spelt)
# and re-derive, timed, twice in this run: `rederive` (takedown_job: only removal entries changed,
# no dbt) and `rederive --full` (publish_job: every dbt model first).
# Usage: bash scripts/takedown_timing.sh [work dir]   (the work dir is emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-/tmp/takedown-runbook}; rm -rf "$D"; mkdir -p "$D"
export PYTHONPATH=$PWD
for mode in fast full; do
  # Each path on its own demo (the same build): the release index's fingerprint names the shard
  # files by path, so a copied root would take the full build.
  export LAION_ASSETS_ROOT=$D/$mode/data DAGSTER_HOME=$D/$mode/home
  cat /proc/loadavg
  /usr/bin/time -f "demo: %e s wall %U+%S s CPU" .venv/bin/python -m laion_assets.demo --root "$D/$mode/data" --dagster-home "$D/$mode/home" > "$D/demo-$mode.log" 2>&1 || { tail -20 "$D/demo-$mode.log"; exit 1; }
  URL=$(.venv/bin/python -c "
import pyarrow.parquet as pq, glob, pathlib
v=pathlib.Path('$D/$mode/data/releases/sample/LATEST').read_text().strip()
print(pq.read_table(sorted(glob.glob('$D/$mode/data/releases/sample/'+v+'/part-*.parquet'))[0]).column('URL')[0].as_py())")
  echo "$URL" | sed 's#^http://#HTTP://#' > "$D/dmca-2026-12-02.url.txt"
  flag=""; [ "$mode" = full ] && flag="--full"
  echo "== $mode"; cat /proc/loadavg
  s0=$(date +%s.%N)
  /usr/bin/time -f "file: %e s wall %U+%S s CPU" .venv/bin/python -m laion_assets.takedown file "$D/dmca-2026-12-02.url.txt" --root "$D/$mode/data"
  /usr/bin/time -f "rederive $flag: %e s wall %U+%S s CPU" .venv/bin/python -m laion_assets.takedown rederive $flag 2>"$D/$mode.stderr"
  s1=$(date +%s.%N)
  echo "$mode: from file to landed $(python3 -c "print(round($s1 - $s0, 1))") s wall"
  cat /proc/loadavg
  ls "$D/$mode/data/releases/sample/"*/WITHDRAWN.json
  grep -h '"status"\|rows_removed\|rows_matched' -A2 "$D/$mode"/data/removal/receipts/*.json | head -8
  tail -n 1 "$D/$mode.stderr"
done
