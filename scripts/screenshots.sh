#!/usr/bin/env bash
# Regenerates the web console's screenshots in docs/console/ from a real run:
# the browser test (internal/console, TestConsoleInBrowser) drives headless
# Chromium against a real pd-server with simulated stores and the daemon, and
# saves a PNG of each main page when OPERATOR_CONSOLE_SCREENSHOTS is set.
# Needs Debian's chromium (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/docs/console"
mkdir -p "$out"
PD_SERVER_BIN=$(./scripts/build-pd.sh)
export PD_SERVER_BIN
CI=true OPERATOR_CONSOLE_SCREENSHOTS="$out" go test -count=1 -run '^TestConsoleInBrowser$' ./internal/console/
ls -1 "$out"/*.png
