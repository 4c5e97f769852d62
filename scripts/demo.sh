#!/usr/bin/env bash
# demo.sh runs the operator's whole job on this machine: a real pd-server with
# three simulated TiKV stores whose leaders are all on one store, and
# `operator run` watching it, with PD's balance-leader-scheduler paused (as if
# left paused after maintenance). It waits until the leader-imbalance ticket is
# diagnosed with a resume_scheduler proposal (the fix of the cause), shows it,
# and prints the next commands (dry run, approve, watch PD, audit, a stopped
# store, reject, a token over HTTP).
#
#   scripts/demo.sh          start (stops and cleans up a previous demo first)
#   scripts/demo.sh stop     stop everything the demo started
#   scripts/demo.sh status   show what is running
#
# Everything lives in demo/ (pids, logs, PD data, demo/operator.toml,
# demo/operator.db). Ports (override with the environment):
#   DEMO_PD_PORT=2379 DEMO_PD_PEER_PORT=2380 DEMO_CONTROL=127.0.0.1:20200 DEMO_LISTEN=127.0.0.1:9469
# DEMO_EXTRA_CONFIG=FILE appends FILE to demo/operator.toml (e.g. deploy/demo-notify.toml:
# notifications to cmd/fake-slack, README.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
demo="$root/demo"
pd_port="${DEMO_PD_PORT:-2379}"
peer_port="${DEMO_PD_PEER_PORT:-2380}"
control="${DEMO_CONTROL:-127.0.0.1:20200}"
listen="${DEMO_LISTEN:-127.0.0.1:9469}"
pd_url="http://127.0.0.1:$pd_port"
ctl_url="http://$control"
op=(bin/operator --config demo/operator.toml)

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf '\ndemo: %s\n' "$*" >&2
	exit 1
}

alive() { [[ -f "$demo/$1.pid" ]] && kill -0 "$(cat "$demo/$1.pid")" 2>/dev/null; }

stop_one() {
	local name="$1" pidfile="$demo/$1.pid" pid
	[[ -f "$pidfile" ]] || return 0
	pid="$(cat "$pidfile")"
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		echo "stopped $name (pid $pid)"
	fi
	rm -f "$pidfile"
}

stop_all() {
	# The operator first (it finishes an execution in flight), then the
	# stores, then PD.
	stop_one operator
	stop_one tikv-sim
	stop_one pd-server
}

status() {
	local name
	for name in pd-server tikv-sim operator; do
		if alive "$name"; then
			echo "$name: running (pid $(cat "$demo/$name.pid"))"
		else
			echo "$name: not running"
		fi
	done
}

port_free() {
	# true when nothing accepts connections on 127.0.0.1:$1
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s.
wait_for() {
	local secs="$1" what="$2"
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			die "timed out after ${secs}s waiting for $what (logs in demo/)"
		fi
		sleep 0.5
	done
}

pd_up_stores() {
	local n
	n="$(curl -sf "$pd_url/pd/api/v1/stores" | grep -c '"state_name": "Up"' || true)"
	[[ "$n" -ge 3 ]]
}

proposal_ready() {
	"${op[@]}" -o json actions list --status pending 2>/dev/null | grep -q '"action_type": "resume_scheduler"'
}

start() {
	for tool in go curl; do
		command -v "$tool" >/dev/null || die "$tool is required"
	done
	if [[ -d "$demo" ]]; then
		say "Cleaning up a previous demo"
		stop_all
		rm -rf "$demo"
	fi
	for p in "$pd_port" "$peer_port" "${control##*:}" "${listen##*:}"; do
		port_free "$p" || die "port $p is in use on 127.0.0.1; stop what uses it or set DEMO_PD_PORT, DEMO_PD_PEER_PORT, DEMO_CONTROL, DEMO_LISTEN"
	done
	mkdir -p "$demo" bin

	say "Building bin/operator and bin/tikv-sim"
	go build -ldflags "$(scripts/ldflags.sh)" -o bin/operator ./cmd/operator
	go build -o bin/tikv-sim ./cmd/tikv-sim

	if [[ -x "$(scripts/build-pd.sh --path)" ]]; then
		say "Using the cached pd-server"
	else
		say "Building pd-server from its Go module: the first time only, usually ~2 minutes on 2 cores (cached in ${OPERATOR_CACHE_DIR:-$HOME/.cache/operator}); progress below"
	fi
	pd_bin="$(scripts/build-pd.sh)"
	note "$pd_bin"

	say "Starting a real pd-server on $pd_url"
	# GODEBUG=httpmuxgo121=1: pd-server built with Go >= 1.22 panics at start without it.
	GODEBUG="${GODEBUG:+$GODEBUG,}httpmuxgo121=1" nohup "$pd_bin" --name demo-pd --data-dir "$demo/pd" \
		--client-urls "$pd_url" --advertise-client-urls "$pd_url" \
		--peer-urls "http://127.0.0.1:$peer_port" --advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--log-file "$demo/pd.log" >"$demo/pd.out" 2>&1 &
	echo $! >"$demo/pd-server.pid"
	wait_for 60 "PD to answer on $pd_url" curl -sf "$pd_url/pd/api/v1/health"
	note "log: demo/pd.log"

	say "Starting tikv-sim: 3 simulated TiKV stores, every leader on the first store"
	nohup bin/tikv-sim --pd "$pd_url" --stores 3 --regions 26 --skew-leaders --pause-balance-leader \
		--control "$control" >"$demo/tikv-sim.log" 2>&1 &
	echo $! >"$demo/tikv-sim.pid"
	wait_for 90 "the simulated stores to be ready" grep -q "tikv-sim running" "$demo/tikv-sim.log"
	wait_for 60 "PD to show 3 Up stores" pd_up_stores
	note "control API: $ctl_url (docs/simulator.md); log: demo/tikv-sim.log"
	note "PD's balance-leader-scheduler is paused (tikv-sim --pause-balance-leader, PD's pause API): on a real"
	note "cluster a scheduler left paused after maintenance is exactly how such a skew persists. The diagnosis"
	note "finds the cause and proposes resume_scheduler; once approved, PD evens the leaders out itself."

	# The web console (docs/console.md) with a demo approver token: only its
	# SHA-256 goes into the configuration; the secret is printed at the end.
	local token_json console_token console_sha
	token_json="$(bin/operator -o json auth token demo --role approver)"
	console_token="$(printf '%s\n' "$token_json" | grep -o '"token": *"[^"]*"' | cut -d'"' -f4)"
	console_sha="$(printf '%s\n' "$token_json" | grep -o '"sha256": *"[^"]*"' | cut -d'"' -f4)"
	[[ -n "$console_token" && -n "$console_sha" ]] || die "operator auth token printed no token: $token_json"

	cat >"$demo/operator.toml" <<EOF
# Written by scripts/demo.sh. Format: docs in README.md ("Configuration").
[pd]
endpoints = ["$pd_url"]

[database]
path = "$demo/operator.db"   # absolute: the CLI works from any directory

[monitor]
interval = "2s"       # a cycle every 2 s (default 10 s)
quiet-period = "10s"  # a ticket resolves after its invariant held for 10 s (default 30 s)

[diagnosis]
backend = "rules"     # built-in runbooks, offline

[server]
listen = "$listen"    # /metrics and /healthz

[invariants]
default-for = "0s"    # fire at once (default 1m, like PingCAP's alert rules)
# The demo cluster has 30 regions (26 + PD's 4 keyspace splits), all led by
# one store: leaders 30/0/0. Once balance-leader runs again, PD evens them out
# to within its own tolerance, well inside min-diff 12.
leader-imbalance-min-diff = 12

[console]
enabled = true        # the web console at http://$listen/ui/ (docs/console.md)

[[auth.tokens]]       # the demo's approver: its secret is printed at the end of scripts/demo.sh
name = "demo"
role = "approver"
sha256 = "$console_sha"
EOF

	if [[ -n "${DEMO_EXTRA_CONFIG:-}" ]]; then
		# e.g. deploy/demo-notify.toml: notifications to cmd/fake-slack (README.md)
		cat "$DEMO_EXTRA_CONFIG" >>"$demo/operator.toml"
		note "appended $DEMO_EXTRA_CONFIG to demo/operator.toml"
	fi

	say "Starting the operator (logs: demo/operator.log)"
	nohup bin/operator run --config demo/operator.toml >"$demo/operator.log" 2>&1 &
	echo $! >"$demo/operator.pid"
	wait_for 30 "the operator's /healthz on $listen" curl -sf "http://$listen/healthz"
	note "effective configuration: bin/operator --config demo/operator.toml config show"

	say "Waiting for the leader-imbalance ticket, its diagnosis and a resume_scheduler proposal"
	wait_for 120 "a resume_scheduler proposal (see demo/operator.log)" proposal_ready

	local json ticket_id action_id stores
	json="$("${op[@]}" -o json actions list --status pending)"
	action_id="$(printf '%s\n' "$json" | grep -m1 '"id":' | grep -o '[0-9]\+')"
	ticket_id="$(printf '%s\n' "$json" | grep -m1 '"ticket_id":' | grep -o '[0-9]\+')"
	stores="$(curl -sf "$ctl_url/v1/stores" | grep -o '"id": *[0-9]\+' | grep -o '[0-9]\+' | tr '\n' ' ')"
	read -r -a store_ids <<<"$stores"
	# The store to stop in step 5: not the skewed one.
	local spare="${store_ids[${#store_ids[@]}-1]}"

	cat >"$demo/demo.env" <<EOF
# Written by scripts/demo.sh: the ids of this demo run, for the README's commands.
export OPERATOR_CONFIG=$demo/operator.toml
PD=$pd_url SIM=$ctl_url TICKET=$ticket_id ACTION=$action_id
SKEW_STORE=${store_ids[0]} SPARE_STORE=$spare LISTEN=$listen
CONSOLE_URL=http://$listen/ui/ CONSOLE_TOKEN=$console_token
EOF

	say "operator tickets list"
	"${op[@]}" tickets list
	say "operator tickets show $ticket_id"
	"${op[@]}" tickets show "$ticket_id"
	say "operator actions show $action_id"
	"${op[@]}" actions show "$action_id"

	cat <<EOF

$(printf '\033[1m')==> The demo is running. Next, copy and paste (README.md has the same after: source demo/demo.env):$(printf '\033[0m')

  source demo/demo.env      # OPERATOR_CONFIG (so bin/operator finds PD and the database) and this run's ids

  # 1. Dry run: preconditions against live PD and the exact PD request; nothing is sent.
  #    It prints the hash of its audit record: your approval is bound to it.
  bin/operator actions approve $action_id --dry-run

  # 2. Before: PD's balance-leader-scheduler is paused, and store ${store_ids[0]} leads every region.
  curl -s '$pd_url/pd/api/v1/schedulers?status=paused'
  curl -s $pd_url/pd/api/v1/stores | grep -E '"(id|leader_count)"'

  # 3. Approve. Decisions go through the daemon (its Unix socket next to the database), which
  #    knows who you are (root and the daemon's user are admins). The approval is signed and
  #    bound to this action, this cluster, the dry run you saw, and expires in 15 min; the
  #    executor re-checks all of it, sends the request and waits for PD to show the effect.
  bin/operator auth whoami
  bin/operator actions approve $action_id
  curl -s '$pd_url/pd/api/v1/schedulers?status=paused'        # balance-leader no longer listed
  sleep 30; curl -s $pd_url/pd/api/v1/stores | grep -E '"(id|leader_count)"'   # PD evened them out

  # 4. The ticket resolved (the executor re-checked it right after the action), and the signed
  #    audit trail holds.
  bin/operator tickets list
  bin/operator tickets show $ticket_id
  bin/operator audit list
  bin/operator audit verify

  # 5. Stop simulated store $spare: its peers are reported down at once (region_down_peer),
  #    PD shows it Disconnected after 20 s without a heartbeat, and store_disconnected opens.
  curl -s -XPOST $ctl_url/v1/stores/$spare/stop
  sleep 30; bin/operator tickets list
  curl -s -XPOST $ctl_url/v1/stores/$spare/start      # back: the tickets resolve after the quiet period

  # 6. Reject path: pause the scheduler and skew the leaders again (a new ticket, linked to the
  #    resolved one); the rules propose a new action, which you reject; approving it afterwards
  #    is refused (exit 4). Other tickets may have opened meanwhile: take the newest pending id.
  curl -s -XPOST $pd_url/pd/api/v1/schedulers/balance-leader-scheduler -d '{"delay": 3600}'
  curl -s -XPOST $ctl_url/v1/stores/${store_ids[0]}/take-leaders
  sleep 10; bin/operator actions list --status pending     # pending = proposed or dry_run
  A2=\$(bin/operator -o json actions list --status pending | grep -m1 '"id"' | grep -o '[0-9]\+')
  bin/operator actions reject \$A2 --reason "moving leaders by hand tonight"
  bin/operator actions approve \$A2

  # 7. A token over HTTP, as from another host: README.md ("Ask for a new diagnosis ...")
  #    shows the whole sequence (rediagnose, token, restart, approve with --server --token).
  bin/operator auth token tara --role approver

  # Metrics and health of the daemon:
  curl -s http://$listen/healthz; curl -s http://$listen/metrics | grep '^operator_' | grep -v _bucket

  scripts/demo.sh stop                             # stop everything (logs stay in demo/)
EOF
	cat <<EOF

$(printf '\033[1m')==> Web console: http://$listen/ui/$(printf '\033[0m')
    Log in with the demo approver token: $console_token
    (also in demo/demo.env as CONSOLE_TOKEN): open the leader_imbalance ticket, its action,
    Dry run, then Approve, and watch the status change live (docs/console.md).
EOF
}

case "${1:-start}" in
start) start ;;
stop)
	stop_all
	echo "demo stopped (logs and data stay in demo/; scripts/demo.sh removes them on the next start)"
	;;
status) status ;;
*)
	echo "usage: scripts/demo.sh [start|stop|status]" >&2
	exit 2
	;;
esac
