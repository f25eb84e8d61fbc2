#!/usr/bin/env bash
# Headless Chromium for the search page's browser tests (Playwright drives the distribution's
# Chromium: `playwright install` downloads a browser build and does not work offline). Idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
