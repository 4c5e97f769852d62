#!/usr/bin/env bash
# gen-docs.sh writes the man pages (from the command tree, so they match
# `operator --help`) into ${1:-dist/man} and the shell completions into
# ${1:-dist/man}/../completion. Install: cp dist/man/*.1 /usr/local/share/man/man1/
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-dist/man}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -ldflags "$(scripts/ldflags.sh)" -o "$tmp/operator" ./cmd/operator
"$tmp/operator" docs man "$out"
comp="$(dirname "$out")/completion"
mkdir -p "$comp"
for sh in bash zsh fish; do
	"$tmp/operator" completion "$sh" >"$comp/operator.$sh"
done
echo "gen-docs: man pages in $out, completions in $comp" >&2
