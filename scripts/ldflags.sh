#!/usr/bin/env bash
# ldflags.sh prints the -ldflags that stamp `operator version`: the version
# ($VERSION, else `git describe --tags --always --dirty`, else "dev") and the
# commit ($COMMIT, else `git rev-parse HEAD`). GOFLAGS=-buildvcs=false (and
# source tarballs) leave Go's own VCS stamp empty, so the scripts pass these.
# Usage: go build -ldflags "$(scripts/ldflags.sh)" ./cmd/operator
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="${COMMIT:-$(git -C "$root" rev-parse HEAD 2>/dev/null || true)}"
if [[ -n "$commit" ]] && ! git -C "$root" diff --quiet HEAD 2>/dev/null; then
	commit="$commit+dirty"
fi
pkg=github.com/tikvops/operator/internal/cli
echo "-X $pkg.Version=$version -X $pkg/version.Commit=$commit"
