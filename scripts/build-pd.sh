#!/usr/bin/env bash
# build-pd.sh builds pd-server from the Go module pinned in tools/pdserver
# (github.com/tikv/pd@v1.1.0-beta.0.20240407022249-7179657d129b, -tags without_dashboard)
# into ${OPERATOR_CACHE_DIR:-$HOME/.cache/operator}/pd-server-7179657d129b/pd-server.
# An existing binary there is reused. The binary path is printed on stdout; build
# progress goes to stderr. Run pd-server with GODEBUG=httpmuxgo121=1 (scripts/pd.sh does).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${OPERATOR_CACHE_DIR:-$HOME/.cache/operator}/pd-server-7179657d129b"
bin="$cache/pd-server"

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
trap 'rm -f "$tmp"' EXIT
echo "build-pd: building github.com/tikv/pd/cmd/pd-server (takes ~2 min on 2 cores)..." >&2
(
	cd "$root/tools/pdserver"
	go build -tags without_dashboard -trimpath -o "$tmp" github.com/tikv/pd/cmd/pd-server
)
chmod +x "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "build-pd: built $bin" >&2
echo "$bin"
