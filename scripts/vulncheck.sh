#!/usr/bin/env bash
# make vulncheck: govulncheck over every package, offline. The live
# vulnerability database (vuln.go.dev) cannot be reached from here, so the
# check reads the snapshot that the golang.org/x/vulndb module ships
# (data/osv), fetched like any module from the Go module proxy. Bump
# VULNDB_VERSION to check against newer advisories.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
dir=$(go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/data/osv" ] || { echo "vulncheck: no data/osv in golang.org/x/vulndb@$VULNDB_VERSION" >&2; exit 1; }
echo "govulncheck $GOVULNCHECK_VERSION, $(go version | cut -d' ' -f3), advisories of golang.org/x/vulndb@$VULNDB_VERSION"
go run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$dir/data/osv" ./...
