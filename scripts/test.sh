#!/usr/bin/env bash
# Runs every test: installs what the tests need (Prometheus, Alertmanager and PostgreSQL
# from Debian), builds pd-server from its Go module (cached), then go vet and go test -race
# over the whole module, real-cluster tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null 2>&1; then
  echo "==> installing prometheus (Debian package) for the metrics tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "==> installing prometheus-alertmanager (Debian package) for the alerting tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  # internal/pgtest starts a real PostgreSQL from these binaries for the
  # store's conformance suite (the PostgreSQL backend).
  echo "==> installing postgresql (Debian package) for the PostgreSQL store tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
  # packaging/ verifies the systemd unit with it; best effort: the test
  # skips with a message when it cannot be installed.
  echo "==> installing systemd-analyze (Debian package systemd) for packaging/operator.service"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd >/dev/null; } ||
    echo "==> systemd not installable here: the unit check will be skipped"
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package) for the web console's browser tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

echo "==> building pd-server (cached after the first time)"
PD_SERVER_BIN=$(./scripts/build-pd.sh)
export PD_SERVER_BIN

echo "==> go vet ./..."
go vet ./...

echo "==> go test -race ./..."
go test -race -count=1 -timeout 20m ./...
