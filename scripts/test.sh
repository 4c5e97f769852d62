#!/usr/bin/env bash
# Runs every test: installs what the tests need (Prometheus from Debian),
# builds pd-server from its Go module (cached), then go vet and go test -race
# over the whole module, real-cluster tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null 2>&1; then
  echo "==> installing prometheus (Debian package) for the metrics tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

echo "==> building pd-server (cached after the first time)"
PD_SERVER_BIN=$(./scripts/build-pd.sh)
export PD_SERVER_BIN

echo "==> go vet ./..."
go vet ./...

echo "==> go test -race ./..."
go test -race -count=1 -timeout 20m ./...
