#!/usr/bin/env bash
# PostgreSQL server binaries for the `postgres` test suite and bench/instance_scale.py (Debian's
# `postgresql` package). Idempotent: does nothing when initdb and pg_ctl are already there. The tests
# start their own throwaway cluster on 127.0.0.1 (laion_assets/testing/postgres.py); no service is
# enabled here.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/"$1" >/dev/null 2>&1; }
if have initdb && have pg_ctl; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have initdb && have pg_ctl
