# shellcheck shell=bash
# Shared paths and helpers for scripts/setup, scripts/test and scripts/testbed/*.
# Source it; it does not change shell options of the caller.

DFE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DFE_CACHE="${DRAGONFLY_ENDPOINT_CACHE:-$HOME/.cache/dragonfly-endpoint}"
DFE_LOGS="$DFE_CACHE/logs"
DFE_VENV="$DFE_CACHE/venv"
DFE_PY="$DFE_VENV/bin/python"
DFE_WEED="$DFE_VENV/bin/weed"
DFE_TORCHSERVE="$DFE_VENV/bin/torchserve"

# TorchServe versions (docs/compatibility.md). The main venv has
# DFE_TORCHSERVE_VERSION; every other version gets a venv of its own that
# shares the main venv's torch (scripts/lib/torchserve.sh). The default
# suite runs the smoke (tests/e2e/versions.rs) on DFE_TORCHSERVE_SUITE;
# `scripts/test --torchserve-matrix` on DFE_TORCHSERVE_MATRIX: every
# supported version, and 0.8.2, which the plugin must refuse.
DFE_TORCHSERVE_VERSION="0.12.0"
DFE_TORCHSERVE_SUITE="0.12.0 0.9.0"
DFE_TORCHSERVE_MATRIX="0.8.2 0.9.0 0.10.0 0.11.0 0.11.1 0.12.0"

DFE_DFCLIENT_VERSION="1.5.10"
DFE_DFCLIENT_ROOT="$DFE_CACHE/dragonfly-client-$DFE_DFCLIENT_VERSION"
DFE_DFDAEMON="$DFE_DFCLIENT_ROOT/bin/dfdaemon"
DFE_DFGET="$DFE_DFCLIENT_ROOT/bin/dfget"

DFE_DRAGONFLY2_VERSION="v2.5.1"
DFE_DRAGONFLY2_ROOT="$DFE_CACHE/dragonfly2-$DFE_DRAGONFLY2_VERSION"
DFE_SCHEDULER="$DFE_DRAGONFLY2_ROOT/bin/scheduler"
DFE_MANAGER="$DFE_DRAGONFLY2_ROOT/bin/manager"

# Object-store emulators (scripts/testbed/azurite, scripts/testbed/gcs).
# Azurite 3.36+ needs Node 21+; the machines have Node 20.
DFE_AZURITE_VERSION="3.35.0"
DFE_AZURITE_ROOT="$DFE_CACHE/azurite-$DFE_AZURITE_VERSION"
DFE_AZURITE_BLOB="$DFE_AZURITE_ROOT/node_modules/.bin/azurite-blob"
DFE_FAKE_GCS_VERSION="v1.56.1"
DFE_FAKE_GCS_ROOT="$DFE_CACHE/fake-gcs-server-$DFE_FAKE_GCS_VERSION"
DFE_FAKE_GCS="$DFE_FAKE_GCS_ROOT/bin/fake-gcs-server"

# PostgreSQL server binaries (Debian keeps them off PATH).
DFE_PG_BIN="${DFE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
DFE_REDIS_SERVER="${DFE_REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"

export DFE_REPO DFE_CACHE DFE_LOGS DFE_VENV DFE_PY DFE_WEED DFE_TORCHSERVE \
  DFE_TORCHSERVE_VERSION DFE_TORCHSERVE_SUITE DFE_TORCHSERVE_MATRIX \
  DFE_DFCLIENT_VERSION DFE_DFCLIENT_ROOT DFE_DFDAEMON DFE_DFGET \
  DFE_DRAGONFLY2_VERSION DFE_DRAGONFLY2_ROOT DFE_SCHEDULER DFE_MANAGER \
  DFE_AZURITE_VERSION DFE_AZURITE_ROOT DFE_AZURITE_BLOB \
  DFE_FAKE_GCS_VERSION DFE_FAKE_GCS_ROOT DFE_FAKE_GCS \
  DFE_PG_BIN DFE_REDIS_SERVER

# dfe_torchserve_venv VERSION: the venv that holds TorchServe VERSION.
dfe_torchserve_venv() {
  if [[ "$1" == "$DFE_TORCHSERVE_VERSION" ]]; then
    printf '%s\n' "$DFE_VENV"
  else
    printf '%s/torchserve-%s\n' "$DFE_CACHE" "$1"
  fi
}

dfe_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# dfe_die COMPONENT LOGPATH MESSAGE: print a failure naming the component and its log.
dfe_die() {
  local comp="$1" log="$2"; shift 2
  printf 'ERROR [%s]: %s (log: %s)\n' "$comp" "$*" "$log" >&2
  if [[ -n "$log" && -f "$log" ]]; then
    printf -- '--- last lines of %s ---\n' "$log" >&2
    tail -n 25 "$log" >&2 || true
    printf -- '---\n' >&2
  fi
  exit 1
}

# dfe_free_ports N: print N distinct free TCP ports on 127.0.0.1, one per line.
# Ports come from 20000-32767 (below the ephemeral range), are test-bound, and are
# remembered for 15 minutes in a shared registry under a lock so that fixtures
# started concurrently never receive the same port.
dfe_free_ports() {
  local py=python3
  [[ -x "$DFE_PY" ]] && py="$DFE_PY"
  mkdir -p "$DFE_CACHE"
  "$py" "$DFE_REPO/scripts/lib/freeport.py" "$DFE_CACHE/ports.registry" "$1"
}

# dfe_spawn LOG CMD...: start CMD in its own session/process group, stdio to LOG.
# Prints the pid (which is also the process-group id).
dfe_spawn() {
  local log="$1"; shift
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $!
}

# dfe_alive PID: true when the process exists and is not a zombie.
dfe_alive() {
  local pid="$1" st
  [[ -n "$pid" && -r /proc/$pid/stat ]] || return 1
  st="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$st" != Z && "$st" != X ]]
}

# dfe_group_pids PGID: live (non-zombie) processes in the process group or in the
# session it leads (dfe_spawn makes the pid a session leader, so children that
# moved to a process group of their own are still found).
dfe_group_pids() {
  local pgid="$1" p
  for p in $( (pgrep -g "$pgid"; pgrep -s "$pgid") 2>/dev/null | sort -u); do
    dfe_alive "$p" && echo "$p"
  done
  return 0
}

# dfe_signal_group PGID SIGNAL: signal the process group and every session member.
dfe_signal_group() {
  local pgid="$1" sig="$2" p
  kill -s "$sig" -- "-$pgid" 2>/dev/null || true
  for p in $(dfe_group_pids "$pgid"); do kill -s "$sig" "$p" 2>/dev/null || true; done
}

# dfe_stop_group PGID [SIGNAL] [TIMEOUT_S]: signal the whole process group, wait
# until every member is gone, escalate to SIGKILL after TIMEOUT_S (default 20).
# SIGNAL goes to the leader only when it is "LEADER:SIG" (e.g. LEADER:INT for
# PostgreSQL's fast shutdown); the rest of the group is left to the leader.
dfe_stop_group() {
  local pgid="$1" sig="${2:-TERM}" timeout="${3:-20}" i
  [[ -n "$pgid" ]] || return 0
  [[ -n "$(dfe_group_pids "$pgid")" ]] || return 0
  if [[ "$sig" == LEADER:* ]]; then
    sig="${sig#LEADER:}"
    kill -s "$sig" "$pgid" 2>/dev/null || true
  else
    dfe_signal_group "$pgid" "$sig"
  fi
  for ((i = 0; i < timeout * 10; i++)); do
    [[ -z "$(dfe_group_pids "$pgid")" ]] && return 0
    sleep 0.1
  done
  dfe_log "process group $pgid still alive after ${timeout}s of SIG$sig; sending SIGKILL"
  dfe_signal_group "$pgid" KILL
  for ((i = 0; i < 100; i++)); do
    [[ -z "$(dfe_group_pids "$pgid")" ]] && return 0
    sleep 0.1
  done
  dfe_log "process group $pgid survived SIGKILL: $(dfe_group_pids "$pgid" | tr '\n' ' ')"
  return 1
}

# dfe_wait_tcp HOST PORT TIMEOUT_S PID: wait until something accepts on HOST:PORT
# while PID stays alive. Returns 1 on timeout, 2 when PID died.
dfe_wait_tcp() {
  local host="$1" port="$2" timeout="$3" pid="$4" i
  for ((i = 0; i < timeout * 10; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    [[ -n "$pid" ]] && ! dfe_alive "$pid" && return 2
    sleep 0.1
  done
  return 1
}

# dfe_wait_http URL TIMEOUT_S PID [CURL ARGS...]: wait for a 2xx answer.
dfe_wait_http() {
  local url="$1" timeout="$2" pid="$3" i; shift 3
  for ((i = 0; i < timeout * 5; i++)); do
    if curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; then return 0; fi
    [[ -n "$pid" ]] && ! dfe_alive "$pid" && return 2
    sleep 0.2
  done
  return 1
}

# dfe_env_get FILE KEY: value of KEY in an env file written by a fixture.
dfe_env_get() {
  local file="$1" key="$2"
  [[ -f "$file" ]] || return 0
  sed -n "s/^${key}=//p" "$file" | tail -n 1
}

# dfe_random_hex N: N random hex characters.
dfe_random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c "$1"; }

# dfe_cargo_target_dir: cargo's target dir for this checkout, kept in the
# cache so rebuilds of the same checkout are incremental. One per checkout
# path: cargo's fingerprints point at absolute source paths, and a target
# dir shared by two checkouts can reuse the other checkout's build.
dfe_cargo_target_dir() {
  printf '%s/target-%s\n' "$DFE_CACHE" "$(printf '%s' "$DFE_REPO" | sha256sum | cut -c1-12)"
}
