#!/usr/bin/env bash
# make fuzz: runs every fuzz target (API decoding, config, provider parsers,
# workload CSV, …) for a bounded time each. FUZZTIME=30s by default.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" || status=1
  done
done
exit $status
