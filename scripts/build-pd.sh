#!/usr/bin/env bash
# build-pd.sh builds pd-server from the Go module pinned in tools/pdserver
# (github.com/tikv/pd@v1.1.0-beta.0.20240407022249-7179657d129b, -tags without_dashboard)
# into ${OPERATOR_CACHE_DIR:-$HOME/.cache/operator}/pd-server-7179657d129b/pd-server.
# An existing binary there is reused. The binary path is printed on stdout; build
# progress goes to stderr (a line every 15 s: ~2 minutes on 2 cores the first time).
# `build-pd.sh --path` prints the path without building.
# Run pd-server with GODEBUG=httpmuxgo121=1 (scripts/pd.sh does).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${OPERATOR_CACHE_DIR:-$HOME/.cache/operator}/pd-server-7179657d129b"
bin="$cache/pd-server"

if [[ "${1:-}" == "--path" ]]; then
	echo "$bin"
	exit 0
fi
if [[ -x "$bin" && "${1:-}" != "--force" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
# Parallel callers (e.g. several test packages on a fresh clone) build once.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache/.build.lock"
	flock 9
	if [[ -x "$bin" && "${1:-}" != "--force" ]]; then
		echo "$bin"
		exit 0
	fi
fi
tmp="$(mktemp "$cache/pd-server.XXXXXX")"
echo "build-pd: building github.com/tikv/pd/cmd/pd-server into $cache" >&2
echo "build-pd: the first build downloads PD's modules and compiles ~1000 packages: usually ~2 minutes on 2 cores; later runs reuse it" >&2
# A heartbeat while go build is silent, so a first run does not look hung.
start=$SECONDS
(
	while sleep 15; do
		echo "build-pd: still building pd-server ($((SECONDS - start))s elapsed, usually ~120s)..." >&2
	done
) &
beat=$!
trap 'kill "$beat" 2>/dev/null; rm -f "$tmp"' EXIT
(
	cd "$root/tools/pdserver"
	go build -tags without_dashboard -trimpath -o "$tmp" github.com/tikv/pd/cmd/pd-server
)
kill "$beat" 2>/dev/null || true
chmod +x "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "build-pd: built $bin in $((SECONDS - start))s" >&2
echo "$bin"
