# shellcheck shell=bash
# Shared helpers for the scripts: install what is missing from Debian's
# packages, and start a throw-away redis-server on a free loopback port.

# The Go toolchain every script builds and tests with (see the Makefile).
export GOTOOLCHAIN=${GOTOOLCHAIN_FOR_GREENQ:-go1.27.3}
# go-nvml's header marks calls greenq never makes as deprecated; without
# this every cgo build prints a screen of warnings about them.
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g} -Wno-deprecated-declarations"

apt_updated=""
ensure_pkg() { # ensure_pkg COMMAND PACKAGE...: installs the packages when COMMAND is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  shift; apt_install "$@"
}

ensure_file() { # ensure_file PATH PACKAGE...: installs the packages when PATH is missing
  [ -e "$1" ] && return 0
  shift; apt_install "$@"
}

apt_install() { # apt_install PACKAGE...
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "missing; install Debian packages: $*" >&2; return 1
  fi
  local SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq >/dev/null; apt_updated=1; fi
  echo "installing $* from Debian's packages" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( (RANDOM % 20000) + 30000 ))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# start_redis: sets REDIS_PORT, REDIS_DIR, REDIS_PID; AOF on, in a temp dir.
start_redis() {
  REDIS_DIR=$(mktemp -d)
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
    --appendonly yes --save '' --daemonize no --loglevel warning >"$REDIS_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  echo "redis-server did not start:" >&2; cat "$REDIS_DIR/redis.log" >&2; return 1
}

stop_redis() {
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  [ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
  return 0
}

# setup_podman: installs podman (with runc, which works on this kernel's
# cgroup setup where crun does not, and catatonit for --init), writes a
# containers.conf of the tests' own, and imports the test image: a busybox
# rootfs with a /MARKER file (no registry is reachable). Sets and exports
# CONTAINERS_CONF and GREENQ_TEST_IMAGE.
setup_podman() {
  ensure_pkg podman podman runc catatonit busybox-static || return 1
  ensure_pkg runc runc || return 1
  ensure_file /bin/busybox busybox-static || return 1
  ensure_file /usr/libexec/podman/catatonit catatonit || return 1
  PODMAN_DIR=$(mktemp -d)
  cat >"$PODMAN_DIR/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
  local root="$PODMAN_DIR/rootfs"
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for c in sh echo sleep cat env ls pwd id touch mkdir rm true false trap; do ln -sf busybox "$root/bin/$c"; done
  echo greenq-test-image >"$root/MARKER"
  tar -C "$root" -cf "$PODMAN_DIR/rootfs.tar" .
  export GREENQ_TEST_IMAGE=localhost/greenq-test:busybox
  podman import -q "$PODMAN_DIR/rootfs.tar" "$GREENQ_TEST_IMAGE" >/dev/null
}

stop_podman() {
  [ -n "${PODMAN_DIR:-}" ] && rm -rf "$PODMAN_DIR"
  return 0
}
