#!/usr/bin/env bash
# release.sh builds versioned, static operator binaries for Linux into dist/:
#   dist/operator-VERSION-linux-amd64, dist/operator-VERSION-linux-arm64,
#   dist/SHA256SUMS (sha256sum -c dist/SHA256SUMS checks them).
# VERSION defaults to `git describe --tags --always --dirty`; PLATFORMS
# (default "linux/amd64 linux/arm64") and DIST (default dist) can be set.
# Build flags: CGO_ENABLED=0 (static; the SQLite driver is pure Go), -trimpath,
# -ldflags "-s -w" plus the version stamp of scripts/ldflags.sh. The
# Dockerfile uses the same flags.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
platforms="${PLATFORMS:-linux/amd64 linux/arm64}"
dist="${DIST:-dist}"
ldflags="-s -w $(VERSION="$version" scripts/ldflags.sh)"
mkdir -p "$dist"
files=()
for p in $platforms; do
	os="${p%/*}" arch="${p#*/}"
	out="operator-$version-$os-$arch"
	echo "release: building $dist/$out" >&2
	CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath -ldflags "$ldflags" -o "$dist/$out" ./cmd/operator
	files+=("$out")
done
(cd "$dist" && sha256sum "${files[@]}" >SHA256SUMS)
echo "release: $dist/SHA256SUMS" >&2
(cd "$dist" && cat SHA256SUMS)
