#!/usr/bin/env bash
# pg.sh runs a throwaway PostgreSQL on loopback for the several-replicas demo
# (README.md, "Several replicas"; docs/ha.md), as internal/pgtest does for the
# tests: Debian's postgresql package (the newest /usr/lib/postgresql/N/bin, or
# $PG_BIN), initialised in a fresh temporary directory, listening on
# 127.0.0.1 only.
#
#   scripts/pg.sh start    initdb, start postgres, create the role and database
#                          "operator"; prints the URL and writes demo/pg.env
#   scripts/pg.sh stop     stop it and remove its directory
#   scripts/pg.sh status   show whether it runs
#   scripts/pg.sh psql     psql as the superuser on the "operator" database
#
# Port: PG_PORT (default 55432); state file: PG_STATE (default demo/pg.env). The owner role "operator" (password
# "operator") owns the database; give the daemons a runtime role without
# UPDATE/DELETE on the audit table in production (docs/ha.md). initdb and
# postgres refuse to run as root: as root, both run as the "postgres" system
# user (created by the Debian package), and the directory is handed to it.
# Nothing is kept: stop removes the data.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${PG_STATE:-$root/demo/pg.env}"
port="${PG_PORT:-55432}"

die() {
	printf 'pg.sh: %s\n' "$*" >&2
	exit 1
}

bindir() {
	if [[ -n "${PG_BIN:-}" ]]; then
		echo "$PG_BIN"
		return
	fi
	local d best="" bestv=0 v
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" && -x "$d/postgres" ]] || continue
		v="$(basename "$(dirname "$d")")"
		[[ "$v" =~ ^[0-9]+$ ]] || continue
		if ((v > bestv)); then best="$d" bestv="$v"; fi
	done
	[[ -n "$best" ]] || die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql, or set PG_BIN"
	echo "$best"
}

# as_pg runs a command as the postgres system user when root, else as is.
as_pg() {
	if [[ "$(id -u)" == 0 ]]; then
		if command -v runuser >/dev/null; then
			runuser -u postgres -- "$@"
		else
			su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
		fi
	else
		"$@"
	fi
}

load() {
	[[ -f "$state" ]] || return 1
	# shellcheck disable=SC1090
	source "$state"
}

running() {
	load && [[ -n "${PG_DIR:-}" ]] && as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1
}

start() {
	if running; then
		echo "pg.sh: already running: $PG_URL"
		return
	fi
	local bin dir pw
	bin="$(bindir)"
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is taken: set PG_PORT"
	fi
	dir="$(mktemp -d "${TMPDIR:-/tmp}/operator-pg.XXXXXX")"
	chmod 700 "$dir"
	if [[ "$(id -u)" == 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root, and initdb refuses root: no postgres system user to run it as"
		chown postgres: "$dir"
	fi
	pw="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	printf '%s\n' "$pw" >"$dir/pwfile"
	[[ "$(id -u)" == 0 ]] && chown postgres: "$dir/pwfile"
	as_pg "$bin/initdb" -D "$dir/data" -U postgres --pwfile "$dir/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		die "initdb failed: $(tail -5 "$dir/initdb.log")"
	rm -f "$dir/pwfile"
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir" start >/dev/null ||
		die "postgres did not start: $(tail -5 "$dir/postgres.log")"
	as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
		-c "CREATE ROLE operator LOGIN PASSWORD 'operator'" -c "CREATE DATABASE operator OWNER operator" >/dev/null
	mkdir -p "$(dirname "$state")"
	cat >"$state" <<EOF
# Written by scripts/pg.sh start; removed by scripts/pg.sh stop.
PG_BINDIR=$bin
PG_DIR=$dir
PG_PORT=$port
PG_URL=postgres://operator:operator@127.0.0.1:$port/operator?sslmode=disable
EOF
	load
	echo "pg.sh: PostgreSQL $(basename "$(dirname "$bin")") on 127.0.0.1:$port (data $dir, log $dir/postgres.log)"
	echo "pg.sh: database URL: $PG_URL (also in $state as PG_URL)"
}

stop() {
	load || {
		echo "pg.sh: not started"
		return
	}
	as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$PG_DIR" "$state"
	echo "pg.sh: stopped, $PG_DIR removed"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status)
	if running; then echo "pg.sh: running: $PG_URL (data $PG_DIR)"; else echo "pg.sh: not running"; fi
	;;
psql)
	running || die "not running: scripts/pg.sh start"
	shift
	as_pg "$PG_BINDIR/psql" -h "$PG_DIR" -p "$PG_PORT" -U postgres -d operator "$@"
	;;
*) die "usage: scripts/pg.sh [start|stop|status|psql]" ;;
esac
