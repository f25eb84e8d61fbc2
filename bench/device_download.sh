#!/usr/bin/env bash
# Download part of the device suite (issue 22): download images/s with a 1-core budget vs every core
# on a lent machine (goal on 16 cores: >= 12x), by host mix: one host, skewed (one host 60 %), many
# hosts (the loopback host farm). Called from bench/device_suite.sh; prints the mix bench's last line
#   bench: download mode=mix cores=<n> ... one_scaling=.. skewed_scaling=.. many_scaling=.. ratio=<smallest>
# Usage: bench/device_download.sh [N_URLS]   (default 6000: ~1-2 min on 16 idle cores)
# PYTHON overrides the interpreter (default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-6000}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
echo "device_download: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), N=$N"
PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" timeout 420 "$PY" bench/download.py --mix one,skewed,many --n "$N"
