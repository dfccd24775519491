#!/usr/bin/env bash
# make test: installs what the tests need, starts redis-server on a free
# loopback port (AOF in a temp dir), sets up podman with a test image, runs
# go vet and every test, stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_pkg redis-server redis-server redis-tools
ensure_pkg redis-sentinel redis-sentinel || true
ensure_pkg shellcheck shellcheck || true
ensure_pkg chromium chromium || echo "chromium unavailable: browser tests will say so" >&2
if ! /usr/bin/python3 -c 'import nbclient, ipykernel' 2>/dev/null; then
  ensure_pkg jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-nbconvert || true
  /usr/bin/python3 -c 'import nbclient, ipykernel' 2>/dev/null || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-nbclient python3-ipykernel jupyter-nbconvert >/dev/null || true
fi

trap 'stop_redis; stop_podman' EXIT
setup_podman
echo "test image: $GREENQ_TEST_IMAGE (podman, CONTAINERS_CONF=$CONTAINERS_CONF)"
start_redis
export GREENQ_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "test redis: $GREENQ_TEST_REDIS_URL"

go vet ./...
CGO_ENABLED=0 go build ./...   # the build without NVML must keep compiling
./scripts/vulncheck.sh
go build -o bin/greenq ./cmd/greenq
./scripts/notebook.sh
go test -count=1 -timeout 8m ./...
