#!/usr/bin/env bash
# pd.sh starts one pd-server on loopback in the foreground (Ctrl-C or SIGTERM stops it).
#
#   scripts/pd.sh [--client-port 2379] [--peer-port 2380] [--data-dir DIR] [--config FILE] [extra pd-server flags...]
#
# The binary comes from $PD_SERVER_BIN or scripts/build-pd.sh (built on first use).
# The HTTP API and gRPC listen on http://127.0.0.1:<client-port>; data goes to
# DIR (default: a fresh temp dir, removed on exit). GODEBUG=httpmuxgo121=1 is set
# because pd-server built with Go >= 1.22 panics at start without it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
client_port=2379
peer_port=2380
data_dir=""
config=""
extra=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--client-port) client_port="$2"; shift 2 ;;
	--peer-port) peer_port="$2"; shift 2 ;;
	--data-dir) data_dir="$2"; shift 2 ;;
	--config) config="$2"; shift 2 ;;
	*) extra+=("$1"); shift ;;
	esac
done

bin="${PD_SERVER_BIN:-}"
if [[ -z "$bin" ]]; then
	bin="$("$root/scripts/build-pd.sh")"
fi
if [[ -z "$data_dir" ]]; then
	data_dir="$(mktemp -d "${TMPDIR:-/tmp}/pd-data.XXXXXX")"
	tmp_dir="$data_dir"
fi
tmp_dir="${tmp_dir:-}"
args=(--name pd1 --data-dir "$data_dir/pd"
	--client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port"
	--peer-urls "http://127.0.0.1:$peer_port" --advertise-peer-urls "http://127.0.0.1:$peer_port"
	--log-file "$data_dir/pd.log")
if [[ -n "$config" ]]; then
	args+=(--config "$config")
fi
echo "pd.sh: pd-server on http://127.0.0.1:$client_port (data $data_dir, log $data_dir/pd.log)" >&2
export GODEBUG="${GODEBUG:+$GODEBUG,}httpmuxgo121=1"
"$bin" "${args[@]}" "${extra[@]}" &
pid=$!
cleanup() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if [[ -n "$tmp_dir" ]]; then rm -rf "$tmp_dir"; fi
}
trap cleanup EXIT INT TERM
wait "$pid"
