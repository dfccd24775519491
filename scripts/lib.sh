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

# start_slurm: a one-node Slurm cluster (slurm-wlm 22.05 from Debian) with
# everything in a temp dir: munged on its own key and socket, slurmctld
# and slurmd on free ports, one node of 16 CPUs and 4 GPUs (gres.conf
# points them at /dev/null-like devices) in partition "gpu", no slurmdbd
# (jobs are read with scontrol; JobCompType=jobcomp/filetxt keeps a log).
# Needs root (slurmd starts jobs as their users). Sets SLURM_DIR and the
# daemons' PIDs, and exports GREENQ_TEST_SLURM_CONF and
# GREENQ_TEST_SLURM_PARTITION; returns once sinfo shows the node idle.
start_slurm() {
  if [ "$(id -u)" != 0 ]; then echo "start_slurm: needs root (slurmd, munged)" >&2; return 1; fi
  ensure_pkg slurmctld slurm-wlm munge || return 1
  ensure_pkg munged munge || return 1
  SLURM_DIR=$(mktemp -d)
  local d=$SLURM_DIR host ctld_port slurmd_port
  chmod 755 "$d"
  mkdir -p "$d/munge" "$d/key" "$d/state" "$d/spool" "$d/log"
  chmod 700 "$d/key"; chmod 755 "$d/munge"
  head -c 1024 /dev/urandom >"$d/key/munge.key"; chmod 400 "$d/key/munge.key"
  munged --foreground --force --key-file="$d/key/munge.key" --socket="$d/munge/socket" \
    --pid-file="$d/munge/munged.pid" --log-file="$d/log/munged.log" --seed-file="$d/munge/seed" \
    >"$d/log/munged.out" 2>&1 &
  MUNGED_PID=$!
  for _ in $(seq 1 50); do [ -S "$d/munge/socket" ] && break; sleep 0.1; done
  host=$(hostname -s)
  ctld_port=$(free_port); slurmd_port=$(free_port)
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
  cat >"$d/slurm.conf" <<CONF
ClusterName=greenqtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$d/jobcomp.txt
GresTypes=gpu
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=600
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
NodeName=$host NodeAddr=127.0.0.1 CPUs=16 RealMemory=4000 Gres=gpu:4 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat >"$d/gres.conf" <<CONF
Name=gpu File=/dev/null
Name=gpu File=/dev/zero
Name=gpu File=/dev/full
Name=gpu File=/dev/urandom
CONF
  export SLURM_CONF="$d/slurm.conf"
  slurmctld -D -f "$SLURM_CONF" >"$d/log/slurmctld.out" 2>&1 &
  SLURMCTLD_PID=$!
  slurmd -D -f "$SLURM_CONF" >"$d/log/slurmd.out" 2>&1 &
  SLURMD_PID=$!
  for _ in $(seq 1 100); do
    if sinfo -h -p gpu -o %T 2>/dev/null | grep -qx idle; then
      export GREENQ_TEST_SLURM_CONF="$SLURM_CONF" GREENQ_TEST_SLURM_PARTITION=gpu
      unset SLURM_CONF # tests pass it to Slurm's commands themselves
      return 0
    fi
    sleep 0.1
  done
  echo "slurm did not start:" >&2; tail -n 20 "$d"/log/* >&2; unset SLURM_CONF; return 1
}

stop_slurm() {
  if [ -n "${SLURM_DIR:-}" ] && [ -n "${SLURMCTLD_PID:-}" ]; then
    # End the jobs first: their slurmstepd processes outlive slurmd.
    SLURM_CONF="$SLURM_DIR/slurm.conf" scancel --partition gpu 2>/dev/null || true
    for _ in $(seq 1 50); do
      [ -z "$(SLURM_CONF="$SLURM_DIR/slurm.conf" squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  local p
  for p in "${SLURMD_PID:-}" "${SLURMCTLD_PID:-}" "${MUNGED_PID:-}"; do
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || continue
    wait "$p" 2>/dev/null
    for _ in $(seq 1 50); do # gone, or a zombie (not this shell's child)
      grep -qs '^[0-9]* ([^)]*) [^Z]' "/proc/$p/stat" || break
      sleep 0.1
    done
  done
  [ -n "${SLURM_DIR:-}" ] && rm -rf "$SLURM_DIR"
  return 0
}
