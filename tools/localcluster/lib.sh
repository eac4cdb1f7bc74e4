# Shared settings and process helpers of cluster.sh and prometheus.sh.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are used by the scripts sourcing this

LC_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LC_REPO="$(cd "$LC_HERE/../.." && pwd)"
# shellcheck source=versions.env
source "$LC_HERE/versions.env"

D="${GPUPOOL_CLUSTER_DIR:-$LC_REPO/.cluster}"
# Ports: GPUPOOL_* from the environment, else those the last `up` saved (so
# `down`, `status` and `env` find the cluster that actually runs), else the
# defaults.
if [[ -f "$D/settings.env" ]]; then
  # shellcheck source=/dev/null
  source "$D/settings.env"
fi
APISERVER_PORT="${GPUPOOL_APISERVER_PORT:-${SAVED_APISERVER_PORT:-16443}}"
ETCD_CLIENT_PORT="${GPUPOOL_ETCD_CLIENT_PORT:-${SAVED_ETCD_CLIENT_PORT:-12379}}"
ETCD_PEER_PORT="${GPUPOOL_ETCD_PEER_PORT:-${SAVED_ETCD_PEER_PORT:-12380}}"
CONTROLLER_MANAGER_PORT="${GPUPOOL_CONTROLLER_MANAGER_PORT:-${SAVED_CONTROLLER_MANAGER_PORT:-16257}}"
SCHEDULER_PORT="${GPUPOOL_SCHEDULER_PORT:-${SAVED_SCHEDULER_PORT:-16259}}"
KWOK_PORT="${GPUPOOL_KWOK_PORT:-${SAVED_KWOK_PORT:-16247}}"
PROMETHEUS_PORT="${GPUPOOL_PROMETHEUS_PORT:-${SAVED_PROMETHEUS_PORT:-19090}}"
BIN_DIR="${SAVED_BIN_DIR:-}"

log() { echo "[cluster $(date +%H:%M:%S)] $*"; }
warn() { echo "[cluster $(date +%H:%M:%S)] $*" >&2; }

pid_of() { cat "$D/pids/$1.pid" 2>/dev/null || true; }

# A pid file alone is not proof: the pid may have been reused since. Every
# process started here has the state folder in its command line.
is_running() {
  local pid
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$D"
}

# start_process NAME COMMAND [ARGS...]: runs in its own session so that a
# Ctrl-C in the terminal or test runner that called `up` does not reach it.
start_process() {
  local name="$1"; shift
  mkdir -p "$D/pids" "$D/logs"
  echo "--- start $(date -Is): $*" >>"$D/logs/$name.log"
  # fd 8 and 9 carry the command locks; a daemon keeping them would hold the
  # lock for its whole life.
  setsid "$@" >>"$D/logs/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  local pid=$! waited=0
  echo "$pid" >"$D/pids/$name.pid"
  # Until the forked shell has exec'd the command, its command line does not
  # name the cluster and is_running says no: wait for the exec (or the end).
  while ! is_running "$name" && kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
    sleep 0.05
    waited=$((waited + 1))
  done
}

# stop_process NAME...: SIGTERM to all at once (each takes a second or
# more to shut down gracefully), SIGKILL to those still there after 10s.
stop_process() {
  local name pid pids=() i
  for name in "$@"; do
    if is_running "$name"; then
      pid="$(pid_of "$name")"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$name:$pid")
    fi
    rm -f "$D/pids/$name.pid"
  done
  for ((i = 0; i < 100; i++)); do
    local alive=0 entry
    for entry in "${pids[@]}"; do kill -0 "${entry#*:}" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  for entry in "${pids[@]}"; do
    if kill -0 "${entry#*:}" 2>/dev/null; then
      warn "${entry%%:*} (pid ${entry#*:}) ignored SIGTERM for 10s; killing it"
      kill -KILL "${entry#*:}" 2>/dev/null || true
    fi
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
  local name="$1" file="$D/logs/$1.log"
  if [[ -f "$file" ]]; then
    echo "----- last 40 lines of $file -----" >&2
    tail -n 40 "$file" >&2
    echo "----- end of $name log -----" >&2
  fi
}
