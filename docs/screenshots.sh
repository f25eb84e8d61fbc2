#!/usr/bin/env bash
# Screenshots of the asset graph (and the shard job, the checks and the automation page) for the
# README: starts `dagster dev` on the demo's instance, waits for the code location, and takes PNGs
# with headless Chromium. Not run in CI.
#
#   bash scripts/demo.sh                  # once: fills .dagster_home and data/
#   bash docs/screenshots.sh [OUT_DIR]    # default docs/img
#
# Needs Chromium (`apt-get install chromium` on Debian/Ubuntu, or set CHROMIUM=/path/to/chrome).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$REPO/docs/img}"
VENV_BIN="${VENV_BIN:-$REPO/.venv/bin}"
export DAGSTER_HOME="${DAGSTER_HOME:-$REPO/.dagster_home}"
export LAION_ASSETS_ROOT="${LAION_ASSETS_ROOT:-$REPO/data}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
[ -n "$CHROMIUM" ] || { echo "no Chromium found: apt-get install chromium, or set CHROMIUM" >&2; exit 1; }
[ -f "$DAGSTER_HOME/dagster.yaml" ] || { echo "no demo instance at $DAGSTER_HOME: run scripts/demo.sh first" >&2; exit 1; }

PORT="$("$VENV_BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$(mktemp)"
cd "$REPO"
# As the README says: the venv is not activated; the code location finds its own dbt.
setsid "$VENV_BIN/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
DEV_PID=$!
stop_dev() {  # TERM the whole session, then KILL what is left after 30 s (a `dagster dev` stuck in
  # its shutdown once outlived this script and kept its port)
  kill -TERM -- -"$DEV_PID" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 -- -"$DEV_PID" 2>/dev/null || break; sleep 1; done
  kill -KILL -- -"$DEV_PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap stop_dev EXIT

URL="http://127.0.0.1:$PORT"
QUERY='{"query":"{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"}'
for _ in $(seq 1 240); do
  if curl -fsS -H 'Content-Type: application/json' -d "$QUERY" "$URL/graphql" 2>/dev/null | grep -q '"loadStatus":"LOADED"'; then
    break
  fi
  kill -0 "$DEV_PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 1
done

# Mark the first-visit "join the community" dialog as seen, so it does not cover the screenshots.
curl -fsS -H 'Content-Type: application/json' -d '{"query":"mutation { setNuxSeen }"}' "$URL/graphql" >/dev/null

mkdir -p "$OUT"
shoot() {  # shoot NAME PATH: one full-HD PNG after the page's scripts settled
  "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1920,1080 \
    --virtual-time-budget=15000 --screenshot="$OUT/$1.png" "$URL$2" >/dev/null 2>&1
  echo "wrote $OUT/$1.png"
}
shoot asset-graph "/asset-groups"
shoot shard-job "/locations/laion_assets/jobs/shard_job"
shoot extract-group "/locations/laion_assets/asset-groups/extract"
shoot publish-group "/locations/laion_assets/asset-groups/publish"
# Checks live on each asset's page in Dagster 1.13 (a top-level /asset-checks opens the Overview):
# the shard checks of filtered_pairs, one status per shard (partitioned checks).
shoot checks "/assets/filtered_pairs?view=checks"
shoot automation "/automation"
shoot runs "/runs"
