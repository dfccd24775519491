#!/usr/bin/env bash
# run.sh starts greenq on one machine as separate processes: a throw-away
# Redis (redis-server from PATH, on a free port), `greenq server`, and one
# `greenq worker` per region of the config. Ctrl-C (or SIGTERM) stops them
# all: workers first (they get their --grace to pause jobs), then the
# server, then Redis; the Redis data directory is removed.
#
# Usage: deployments/local/run.sh [CONFIG]   (default deployments/local/greenq.yaml)
#
# Environment:
#   GREENQ_BIN     greenq binary (default bin/greenq, else greenq from PATH)
#   GREENQ_LISTEN  API address (default 127.0.0.1:8080)
#   REDIS_PORT     Redis port (default: the first free port from 6390)
#   REGIONS        space-separated regions to run workers for (default: all in CONFIG)
#   WORKER_GPUS    --gpus for each worker (default 1)
#   WORKER_GRACE   --grace for each worker (default 10s)
# Functions run through traps and wait_until look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

config=${1:-deployments/local/greenq.yaml}
listen=${GREENQ_LISTEN:-127.0.0.1:8080}
gpus=${WORKER_GPUS:-1}
grace=${WORKER_GRACE:-10s}

die() {
	echo "run.sh: $*" >&2
	exit 2
}

if [[ -n ${GREENQ_BIN:-} ]]; then
	greenq=$GREENQ_BIN
elif [[ -x bin/greenq ]]; then
	greenq=$root/bin/greenq
elif command -v greenq >/dev/null; then
	greenq=$(command -v greenq)
else
	die "no greenq binary: run 'make build' or set GREENQ_BIN"
fi
command -v redis-server >/dev/null || die "redis-server is not on PATH"
[[ -r $config ]] || die "cannot read config $config"

# regions lists the names under the top-level regions: key of a greenq.yaml
# written one "- name: X" per region, as the shipped configs are.
regions() {
	awk '
		/^[^[:space:]#]/ { inside = ($0 ~ /^regions:/) }
		inside && /^[[:space:]]*-[[:space:]]*name:/ {
			sub(/^[[:space:]]*-[[:space:]]*name:[[:space:]]*/, "")
			sub(/[[:space:]]*(#.*)?$/, "")
			gsub(/["\047]/, "")
			print
		}' "$1"
}

# port_open HOST PORT succeeds when something accepts connections there.
port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# http_ok HOST PORT PATH succeeds on a 2xx answer.
http_ok() {
	local status
	{ exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3
	read -r _ status _ <&3 || status=
	exec 3<&- 3>&-
	[[ $status == 2* ]]
}

# wait_until SECONDS CMD... polls CMD every 0.2s until it succeeds.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

read -r -a region_list <<<"${REGIONS:-$(regions "$config" | tr '\n' ' ')}"
((${#region_list[@]} > 0)) || die "no regions in $config (set REGIONS)"

redis_port=${REDIS_PORT:-}
if [[ -z $redis_port ]]; then
	for p in $(seq 6390 6490); do
		if ! port_open 127.0.0.1 "$p"; then
			redis_port=$p
			break
		fi
	done
	[[ -n $redis_port ]] || die "no free port for Redis in 6390-6490"
fi
redis_url="redis://127.0.0.1:$redis_port/0"
api_host=${listen%:*}
api_port=${listen##*:}
[[ $api_host == 0.0.0.0 || -z $api_host ]] && api_host=127.0.0.1

work=$(mktemp -d "${TMPDIR:-/tmp}/greenq-local.XXXXXX")
redis_pid=
server_pid=
worker_pids=()

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	stop "${worker_pids[@]}"
	stop "$server_pid"
	stop "$redis_pid"
	rm -rf "$work"
	echo "run.sh: stopped" >&2
	exit "$status"
}

# stop PID... sends SIGTERM and waits for each process to exit.
stop() {
	local pid
	for pid in "$@"; do
		if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
	done
	for pid in "$@"; do
		if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... runs CMD in the background with its output prefixed by
# NAME and leaves its pid in $started.
start() {
	local name=$1
	shift
	"$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	started=$!
}

start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work"
redis_pid=$started
redis_ready() {
	kill -0 "$redis_pid" 2>/dev/null || die "redis-server exited"
	port_open 127.0.0.1 "$redis_port"
}
wait_until 10 redis_ready || die "Redis did not start on port $redis_port"

start server "$greenq" server --config="$config" --redis="$redis_url" --listen="$listen"
server_pid=$started
server_ready() {
	kill -0 "$server_pid" 2>/dev/null || die "greenq server exited"
	http_ok "$api_host" "$api_port" /readyz
}
wait_until 30 server_ready || die "greenq server not ready at http://$listen/readyz"

for region in "${region_list[@]}"; do
	start "worker $region" "$greenq" worker --config="$config" --redis="$redis_url" --region="$region" --gpus="$gpus" --grace="$grace"
	worker_pids+=("$started")
done

echo "run.sh: greenq local stack ready: API http://$api_host:$api_port, Redis $redis_url, workers: ${region_list[*]}" >&2
echo "run.sh: try: GREENQ_API_URL=http://$api_host:$api_port $greenq regions" >&2

# Any process that exits ends the stack (set -e is off for wait -n's status).
set +e
wait -n "$redis_pid" "$server_pid" "${worker_pids[@]}"
status=$?
set -e
echo "run.sh: a process exited with status $status; stopping" >&2
exit 1
