#!/usr/bin/env bash
# make test: checks that go.mod is tidy, installs what the tests need,
# starts redis-server on a free loopback port (AOF in a temp dir), sets up
# podman with a test image, starts a one-node Slurm cluster on free ports,
# runs go vet and every test, stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# go.mod and go.sum must be exactly what `go mod tidy` leaves.
if ! tidy=$(go mod tidy -diff 2>&1); then
  echo "go.mod/go.sum are not tidy: run \`go mod tidy\` and commit the result. It would change:" >&2
  echo "$tidy" >&2
  exit 1
fi

ensure_pkg redis-server redis-server redis-tools
ensure_pkg redis-sentinel redis-sentinel || true
ensure_pkg shellcheck shellcheck || true
ensure_pkg chromium chromium || echo "chromium unavailable: browser tests will say so" >&2
if ! /usr/bin/python3 -c 'import nbclient, ipykernel' 2>/dev/null; then
  ensure_pkg jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-nbconvert || true
  /usr/bin/python3 -c 'import nbclient, ipykernel' 2>/dev/null || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-nbclient python3-ipykernel jupyter-nbconvert >/dev/null || true
fi

trap 'stop_redis; stop_podman; stop_slurm' EXIT
setup_podman
echo "test image: $GREENQ_TEST_IMAGE (podman, CONTAINERS_CONF=$CONTAINERS_CONF)"
start_redis
export GREENQ_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "test redis: $GREENQ_TEST_REDIS_URL"
if start_slurm; then
  echo "test slurm: one node, 4 GPUs, partition $GREENQ_TEST_SLURM_PARTITION (SLURM_CONF=$GREENQ_TEST_SLURM_CONF)"
else
  echo "slurm unavailable: the Slurm tests will say so (and fail under CI)" >&2
fi

go vet ./...
CGO_ENABLED=0 go build ./...   # the build without NVML must keep compiling
./scripts/vulncheck.sh
go build -o bin/greenq ./cmd/greenq
export GREENQ_E2E_BIN="$PWD/bin/greenq"   # the end-to-end and Slurm tests run this binary
./scripts/notebook.sh
go test -count=1 -timeout 8m ./...
