#!/usr/bin/env bash
# Headless Chromium for the tests that render the project's HTML (dbt docs, the telemetry
# quality report): Debian's chromium, installed with apt-install.sh when it is missing.
#
#   scripts/chromium.sh path     install it if missing; print the browser's path
set -euo pipefail

find_browser() {
    command -v chromium 2>/dev/null || { [ -x /usr/bin/chromium ] && echo /usr/bin/chromium; }
}

case "${1:-}" in
path)
    if ! find_browser >/dev/null; then
        "$(dirname "$0")/apt-install.sh" chromium
    fi
    find_browser || { echo "chromium.sh: chromium installed but not found" >&2; exit 1; }
    ;;
*)
    echo "usage: chromium.sh path" >&2
    exit 2
    ;;
esac
