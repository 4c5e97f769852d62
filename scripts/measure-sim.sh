#!/usr/bin/env bash
# measure-sim.sh measures the simulator at scale: it starts a local pd-server
# plus tikv-sim (tikv-sim --start-pd) with STORES x REGIONS (default 5 x 10000,
# 3 replicas), reports setup time, then idles WARMUP seconds and samples the
# CPU use (utime+stime from /proc) and RSS of pd-server and tikv-sim over
# WINDOW seconds. Extra arguments go to tikv-sim, e.g.
#   scripts/measure-sim.sh --schedule patrol-region-interval=10ms   # PD's default patrol
# Env: STORES, REGIONS, WARMUP (20), WINDOW (60).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stores="${STORES:-5}"
regions="${REGIONS:-10000}"
warmup="${WARMUP:-20}"
window="${WINDOW:-60}"
work="$(mktemp -d "${TMPDIR:-/tmp}/measure-sim.XXXXXX")"
sim_pid=""
cleanup() {
	if [[ -n "$sim_pid" ]]; then
		kill -INT "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
	fi
	if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

"$root/scripts/build-pd.sh" >/dev/null
(cd "$root" && go build -o "$work/tikv-sim" ./cmd/tikv-sim)

start=$(date +%s.%N)
"$work/tikv-sim" --start-pd --pd-port 0 --control 127.0.0.1:0 \
	--stores "$stores" --regions "$regions" "$@" >"$work/out" 2>"$work/log" &
sim_pid=$!
until grep -q 'msg="tikv-sim running"' "$work/log"; do
	if ! kill -0 "$sim_pid" 2>/dev/null; then
		echo "tikv-sim exited:" >&2
		cat "$work/log" >&2
		exit 1
	fi
	sleep 0.1
done
ready=$(date +%s.%N)
pd_pid=$(pgrep -P "$sim_pid" pd-server)
sim_setup=$(grep -o 'msg="simulated stores ready".* setup=[^ ]*' "$work/log" | sed 's/.*setup=//')
pd_regions=$(grep -o 'msg="cluster ready".* regions=[0-9]*' "$work/log" | sed 's/.*regions=//')

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
sleep "$warmup"
s1=$(ticks "$sim_pid"); p1=$(ticks "$pd_pid")
sleep "$window"
s2=$(ticks "$sim_pid"); p2=$(ticks "$pd_pid")

printf 'stores x regions      %s x %s (3 replicas), PD reports %s regions after its keyspace splits\n' "$stores" "$regions" "$pd_regions"
printf 'setup, total          %.1f s (pd-server start + bootstrap + all stores Up and regions in PD)\n' "$(echo "$ready - $start" | bc)"
printf 'setup, simulator      %s (connect, AllocID, bootstrap, first heartbeat of every region)\n' "$sim_setup"
printf 'idle CPU pd-server    %.1f %% of one core (over %s s, after %s s warm-up)\n' "$(echo "scale=4; ($p2-$p1)*100/$hz/$window" | bc)" "$window" "$warmup"
printf 'idle CPU tikv-sim     %.1f %% of one core\n' "$(echo "scale=4; ($s2-$s1)*100/$hz/$window" | bc)"
printf 'RSS pd-server         %s MiB\n' "$(rss "$pd_pid")"
printf 'RSS tikv-sim          %s MiB\n' "$(rss "$sim_pid")"
