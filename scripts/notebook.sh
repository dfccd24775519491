#!/usr/bin/env bash
# Executes the demo notebook (api/python/greenq_demo.ipynb) against a live
# `greenq dev` on a free port; fails if any cell errors. Part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if ! /usr/bin/python3 -c 'import nbclient, ipykernel, nbconvert' 2>/dev/null; then
  echo "notebook: Debian's python3-nbclient python3-ipykernel jupyter-nbconvert are missing" >&2
  exit 1
fi
[ -x bin/greenq ] || go build -o bin/greenq ./cmd/greenq
port=$(free_port)
log=$(mktemp)
bin/greenq dev --listen "127.0.0.1:$port" >"$log" 2>&1 &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 $dev 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
out=${GREENQ_ARTIFACTS:-$(mktemp -d)}
mkdir -p "$out"
if api/python/run_notebook.sh "http://127.0.0.1:$port" "$out"; then
  echo "notebook executed without errors"
else
  echo "greenq dev log:" >&2; tail -50 "$log" >&2
  echo "notebook failed" >&2
  exit 1
fi
