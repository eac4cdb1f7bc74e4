#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 without containers: etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler of one pinned
# release, with kwok simulating the kubelets of GPU, NPU and CPU nodes.
#
# Usage: cluster.sh up | down [--keep] | status | env | nodes | stop C | start C | kubectl ARGS...
#
#   up        install dependencies, build or reuse the binaries, start
#             everything and wait until the API is ready, the default
#             ServiceAccount exists and all nodes are Ready. Idempotent.
#   down      stop every process; remove the state folder unless --keep.
#   status    print the state of each component; exit 0 only if all are up.
#   env       print `export` lines (KUBECONFIG, PATH, ...); eval them.
#   nodes     create missing simulated nodes and delete extra ones, after
#             the counts in NVIDIA_NODES, ASCEND_NODES and CPU_NODES (`up`
#             only adds missing ones).
#   stop C    stop one component C (etcd, kube-apiserver, kube-controller-manager,
#             kube-scheduler or kwok) of a running cluster, for fault tests.
#   start C   start that component again and wait until it is healthy.
#   kubectl   run the pinned kubectl against the cluster.
#
# Settings (environment): GPUPOOL_CLUSTER_DIR (state, default <repo>/.cluster),
# GPUPOOL_CACHE (built binaries, default ~/.cache/gpupool), GPUPOOL_BIN_DIR
# (use binaries from there instead of building), GPUPOOL_SKIP_DEPS=1 (skip the
# apt step), ports GPUPOOL_{APISERVER,ETCD_CLIENT,ETCD_PEER,CONTROLLER_MANAGER,
# SCHEDULER,KWOK}_PORT, node counts NVIDIA_NODES (4), ASCEND_NODES (2),
# CPU_NODES (2).
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
PKI="$D/pki"
CONTEXT=gpupool-local
SERVICE_CIDR=10.96.0.0/16
API_URL="https://127.0.0.1:$APISERVER_PORT"
PYTHON="${PYTHON:-python3}"

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$D/kubeconfig" "$@"; }

# ---------------------------------------------------------------- failure --

STARTED_HERE=0
fail() {
  local component="${1:-}" msg="$2"
  echo "[cluster] ERROR: $msg" >&2
  if [[ -n "$component" ]]; then
    log_tail "$component"
  fi
  if [[ $STARTED_HERE == 1 ]]; then
    warn "stopping the components started by this run; state and logs stay in $D"
    stop_all
  fi
  exit 1
}

# wait_for COMPONENT TIMEOUT_S WHAT COMMAND...: polls COMMAND; fails early,
# with the component's log, if the component process has died.
wait_for() {
  local component="$1" timeout="$2" what="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$component" ]] && ! is_running "$component"; then
      fail "$component" "$component exited while waiting for $what"
    fi
    if ((SECONDS >= deadline)); then
      fail "$component" "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.5
  done
}

# -------------------------------------------------------------------- PKI --

# ca NAME CN: a self-signed EC certificate authority.
ca() {
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null
}

# cert NAME CN O EXTENSIONS [CA]: an EC key and a certificate signed by CA.
cert() {
  local name="$1" cn="$2" o="$3" ext="$4" signer="${5:-ca}" subj="/CN=$2"
  [[ -n "$o" ]] && subj="/O=$o/CN=$cn"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$signer.crt" -CAkey "$PKI/$signer.key" \
    -CAcreateserial -days 3650 -sha256 -out "$PKI/$name.crt" \
    -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$PKI/$name.csr"
}

make_pki() {
  [[ -f "$PKI/done" ]] && return
  log "creating certificates in $PKI"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  (umask 077
   ca ca gpupool-local-ca
   # Aggregated API servers (metrics adapters) trust requests the API server
   # proxies to them by this second CA, as in a kubeadm cluster.
   ca front-proxy-ca gpupool-local-front-proxy-ca
   local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
   local server="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
   cert apiserver kube-apiserver "" "$server"
   cert admin gpupool-admin system:masters "$client"
   cert controller-manager system:kube-controller-manager "" "$client"
   cert scheduler system:kube-scheduler "" "$client"
   # kwok writes the status of every simulated node and pod, and their leases.
   cert kwok kwok-controller system:masters "$client"
   cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "$client"
   cert front-proxy-client front-proxy-client "" "$client" front-proxy-ca
   # ServiceAccount tokens: the API server signs with the private key, the
   # controller-manager mints the tokens of its own controllers with it.
   openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
   openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  ) || fail "" "openssl failed while creating certificates"
  touch "$PKI/done"
}

# kubeconfig FILE CERT_NAME: a client-certificate kubeconfig for the cluster.
kubeconfig() {
  local file="$1" name="$2" b64="base64 -w0"
  umask 077
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    server: $API_URL
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $($b64 <"$PKI/$name.crt")
    client-key-data: $($b64 <"$PKI/$name.key")
contexts:
- name: $CONTEXT
  context:
    cluster: $CONTEXT
    user: $name
current-context: $CONTEXT
EOF
}

write_config() {
  mkdir -p "$D/kubeconfigs" "$D/logs" "$D/pids"
  cat >"$D/settings.env" <<EOF
# Written by cluster.sh up; read back by down, status and env.
SAVED_BIN_DIR=$BIN_DIR
SAVED_APISERVER_PORT=$APISERVER_PORT
SAVED_ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT
SAVED_ETCD_PEER_PORT=$ETCD_PEER_PORT
SAVED_CONTROLLER_MANAGER_PORT=$CONTROLLER_MANAGER_PORT
SAVED_SCHEDULER_PORT=$SCHEDULER_PORT
SAVED_KWOK_PORT=$KWOK_PORT
SAVED_PROMETHEUS_PORT=$PROMETHEUS_PORT
EOF
  kubeconfig "$D/kubeconfig" admin
  local c
  for c in controller-manager scheduler kwok; do kubeconfig "$D/kubeconfigs/$c.kubeconfig" "$c"; done
  cat >"$D/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $D/kubeconfigs/scheduler.kubeconfig
  # Benchmarks create hundreds of pods at once; the default 50 qps throttles.
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
EOF
}

# ------------------------------------------------------------- components --

curl_api() {
  curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL$1"
}
etcd_healthy() { curl -sf --max-time 5 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'; }
api_ready() { curl_api /readyz; }
# Their /healthz is open to anonymous requests by default.
secure_healthz() { curl -skf --max-time 5 "https://127.0.0.1:$1/healthz"; }
kwok_healthy() { curl -skf --max-time 5 "https://127.0.0.1:$KWOK_PORT/healthz"; }

start_etcd() {
  # No fsync: a throwaway test cluster, and fsync latency on shared disks
  # otherwise dominates every write.
  start_process etcd "$BIN_DIR/etcd" \
    --name=gpupool --data-dir="$D/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="gpupool=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level=warn
}

start_apiserver() {
  # The advertise address is loopback, which the API refuses as an endpoint
  # of the `kubernetes` Service, so that Service gets no endpoints: nothing
  # runs in a pod here to use it.
  start_process kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --allow-privileged=true \
    --audit-policy-file="$LC_HERE/audit-policy.yaml" \
    --audit-log-path="$D/audit.log" --audit-log-format=json \
    --audit-log-maxsize=200 --audit-log-maxbackup=1 \
    --profiling=false
}

start_controller_manager() {
  local kc="$D/kubeconfigs/controller-manager.kubeconfig"
  start_process kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$CONTROLLER_MANAGER_PORT" \
    --leader-elect=false \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --kube-api-qps=200 --kube-api-burst=400 \
    --profiling=false
}

start_scheduler() {
  local kc="$D/kubeconfigs/scheduler.kubeconfig"
  start_process kube-scheduler "$BIN_DIR/kube-scheduler" \
    --config="$D/kube-scheduler.yaml" \
    --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --profiling=false
}

start_kwok() {
  # Only nodes annotated kwok.x-k8s.io/node=fake are simulated. The lease
  # keeps them Ready between the (rare) status heartbeats. At INFO kwok logs
  # every lease renewal, which adds up with hundreds of nodes.
  start_process kwok "$BIN_DIR/kwok" \
    --kubeconfig="$D/kubeconfigs/kwok.kubeconfig" \
    --config="$BIN_DIR/kwok-stages.yaml" \
    --config="$LC_HERE/kwok/weights-stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --node-lease-duration-seconds=40 \
    -v=WARN
}

# etcd last, so the API server does not log a storm of lost connections.
stop_all() {
  stop_process kwok kube-scheduler kube-controller-manager kube-apiserver
  stop_process etcd
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do is_running "$c" || return 1; done
}

# ------------------------------------------------------------------ nodes --

# ensure_nodes [--prune]: create the simulated nodes that are missing; with
# --prune also delete those beyond the requested counts. `up` does not prune,
# so it never takes nodes (and their pods) away from a cluster sized by
# `nodes` for a benchmark.
ensure_nodes() {
  local existing wanted extra
  existing="$(kubectl_ get nodes -l type=kwok -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')"
  wanted="$("$PYTHON" "$LC_HERE/nodes/generate.py" --names)"
  extra="$(comm -23 <(sort <<<"$existing" | sed '/^$/d') <(sort <<<"$wanted"))"
  if [[ "${1:-}" == --prune && -n "$extra" ]]; then
    log "deleting $(wc -l <<<"$extra") simulated nodes beyond the requested counts"
    # One curl for all: kubectl deletes names one by one under its client
    # rate limit (5/s), a minute for a few hundred nodes.
    local urls=() n
    for n in $extra; do urls+=("$API_URL/api/v1/nodes/$n"); done
    curl -sf --max-time 120 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      -X DELETE "${urls[@]}" >/dev/null || fail "" "deleting nodes failed"
  fi
  local missing
  missing="$(comm -13 <(sort <<<"$existing" | sed '/^$/d') <(sort <<<"$wanted") | sed '/^$/d' | wc -l)"
  if ((missing > 0)); then
    log "creating $missing simulated nodes (NVIDIA_NODES=${NVIDIA_NODES:-4} ASCEND_NODES=${ASCEND_NODES:-2} CPU_NODES=${CPU_NODES:-2})"
    "$PYTHON" "$LC_HERE/nodes/generate.py" --skip "$(tr '\n' ',' <<<"$existing")" >"$D/nodes.json"
    kubectl_ create -f "$D/nodes.json" >/dev/null || fail kwok "creating nodes failed"
  fi
  log "waiting for the simulated nodes to be Ready"
  local deadline=$((SECONDS + 180)) notready
  while :; do
    notready="$(kubectl_ get nodes -l type=kwok -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | awk '$2 != "True"' | wc -l)"
    ((notready == 0)) && break
    is_running kwok || fail kwok "kwok exited while nodes were not Ready"
    ((SECONDS < deadline)) || fail kwok "$notready nodes still not Ready after 180s"
    sleep 1
  done
}

# ------------------------------------------------------------- commands --

resolve_bin_dir() {
  if [[ -n "${GPUPOOL_BIN_DIR:-}" ]]; then
    BIN_DIR="$GPUPOOL_BIN_DIR"
  else
    BIN_DIR="$("$LC_HERE/build.sh")" || fail "" "building the cluster binaries failed"
  fi
  [[ -x "$BIN_DIR/kube-apiserver" && -f "$BIN_DIR/kwok-stages.yaml" ]] || fail "" "no cluster binaries in $BIN_DIR"
}

cmd_up() {
  local start=$SECONDS
  if [[ "${GPUPOOL_SKIP_DEPS:-}" != 1 ]]; then
    "$LC_HERE/install-deps.sh" || fail "" "installing dependencies failed"
  fi
  local running_bin="$BIN_DIR"
  resolve_bin_dir
  if all_running && [[ -f "$PKI/done" ]] && api_ready >/dev/null 2>&1; then
    log "control plane already running at $API_URL"
    [[ "$running_bin" == "$BIN_DIR" ]] || warn "it runs binaries from $running_bin; 'down' then 'up' to use $BIN_DIR"
    BIN_DIR="$running_bin"
  else
    if [[ -d "$D/pids" ]] && ls "$D/pids/"*.pid >/dev/null 2>&1; then
      log "some components are down; restarting all of them"
      stop_all
    fi
    local port
    for port in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$CONTROLLER_MANAGER_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
      port_in_use "$port" && fail "" "port 127.0.0.1:$port is already in use (set GPUPOOL_*_PORT to move the cluster)"
    done
    make_pki
    write_config
    STARTED_HERE=1
    log "starting etcd $ETCD_VERSION on 127.0.0.1:$ETCD_CLIENT_PORT"
    start_etcd
    wait_for etcd 60 "etcd health" etcd_healthy
    log "starting kube-apiserver $K8S_VERSION on $API_URL"
    start_apiserver
    wait_for kube-apiserver 180 "kube-apiserver /readyz" api_ready
    log "starting kube-controller-manager, kube-scheduler and kwok $KWOK_VERSION"
    start_controller_manager
    start_scheduler
    start_kwok
    wait_for kube-controller-manager 120 "kube-controller-manager /healthz" secure_healthz "$CONTROLLER_MANAGER_PORT"
    wait_for kube-scheduler 120 "kube-scheduler /healthz" secure_healthz "$SCHEDULER_PORT"
    wait_for kwok 120 "kwok /healthz" kwok_healthy
  fi
  ensure_nodes
  log "waiting for the default ServiceAccount"
  wait_for kube-controller-manager 120 "ServiceAccount default/default" kubectl_ -n default get serviceaccount default
  log "cluster ready in $((SECONDS - start))s: KUBECONFIG=$D/kubeconfig"
  log "use it with: eval \"\$($LC_HERE/cluster.sh env)\""
}

cmd_down() {
  local keep=0
  [[ "${1:-}" == --keep ]] && keep=1
  if [[ -x "$LC_HERE/prometheus.sh" ]]; then "$LC_HERE/prometheus.sh" stop >/dev/null 2>&1 || true; fi
  stop_all
  if ((keep)); then
    log "stopped; state kept in $D"
  else
    rm -rf "$D"
    log "stopped and removed $D"
  fi
}

cmd_status() {
  local c ok=0 pid
  for c in "${COMPONENTS[@]}"; do
    pid="$(pid_of "$c")"
    if is_running "$c"; then
      printf '%-24s running (pid %s)\n' "$c" "$pid"
    else
      printf '%-24s stopped\n' "$c"
      ok=1
    fi
  done
  if [[ -f "$PKI/done" ]] && api_ready >/dev/null 2>&1; then
    printf '%-24s ready at %s\n' "api" "$API_URL"
    if [[ -n "${BIN_DIR:-}" && -x "$BIN_DIR/kubectl" ]]; then
      kubectl_ get nodes -L gpu-type --no-headers 2>/dev/null |
        awk '{n++; if ($2 == "Ready") r++; t[$NF]++} END {printf "%-24s %d/%d Ready\n", "nodes", r, n}'
    fi
  else
    printf '%-24s not ready\n' "api"
    ok=1
  fi
  return $ok
}

component_arg() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ "${1:-}" == "$c" ]] && return 0; done
  warn "name one component: ${COMPONENTS[*]}"
  exit 2
}

cmd_stop() {
  component_arg "$@"
  [[ -f "$D/settings.env" ]] || { warn "no cluster state in $D; run cluster.sh up"; exit 1; }
  stop_process "$1"
  log "stopped $1"
}

cmd_start() {
  component_arg "$@"
  [[ -f "$D/settings.env" ]] || { warn "no cluster state in $D; run cluster.sh up"; exit 1; }
  if is_running "$1"; then
    log "$1 is already running"
    return
  fi
  case "$1" in
    etcd) start_etcd; wait_for etcd 60 "etcd health" etcd_healthy ;;
    kube-apiserver) start_apiserver; wait_for kube-apiserver 180 "kube-apiserver /readyz" api_ready ;;
    kube-controller-manager)
      start_controller_manager
      wait_for kube-controller-manager 120 "kube-controller-manager /healthz" secure_healthz "$CONTROLLER_MANAGER_PORT" ;;
    kube-scheduler)
      start_scheduler
      wait_for kube-scheduler 120 "kube-scheduler /healthz" secure_healthz "$SCHEDULER_PORT" ;;
    kwok) start_kwok; wait_for kwok 120 "kwok /healthz" kwok_healthy ;;
  esac
  log "started $1"
}

cmd_env() {
  [[ -f "$D/settings.env" ]] || { warn "no cluster state in $D; run cluster.sh up"; exit 1; }
  printf 'export GPUPOOL_CLUSTER_DIR=%q\n' "$D"
  printf 'export KUBECONFIG=%q\n' "$D/kubeconfig"
  printf 'export GPUPOOL_KUBECTL=%q\n' "$BIN_DIR/kubectl"
  printf 'export GPUPOOL_BIN_DIR=%q\n' "$BIN_DIR"
  printf 'export GPUPOOL_API_URL=%q\n' "$API_URL"
  printf 'export GPUPOOL_AUDIT_LOG=%q\n' "$D/audit.log"
  printf 'export GPUPOOL_K8S_VERSION=%q\n' "$K8S_VERSION"
  printf 'export PATH=%q:"$PATH"\n' "$BIN_DIR"
}

main() {
  local cmd="${1:-}"
  shift || true
  mkdir -p "${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"
  case "$cmd" in
    up|down|nodes|stop|start)
      # One state-changing command at a time per state folder (a test run and
      # `make demo` may race).
      exec 8>"${GPUPOOL_CACHE:-$HOME/.cache/gpupool}/cluster-$(echo "$D" | sha256sum | cut -c1-12).cmdlock"
      flock -w 900 8 || { warn "another cluster.sh up/down/nodes on $D has held the lock for 15 minutes"; exit 1; }
      ;;
  esac
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    stop) cmd_stop "$@" ;;
    start) cmd_start "$@" ;;
    nodes)
      [[ -f "$D/settings.env" ]] && all_running || { warn "cluster is not running"; exit 1; }
      ensure_nodes --prune ;;
    kubectl)
      [[ -f "$D/settings.env" ]] || { warn "no cluster state in $D; run cluster.sh up"; exit 1; }
      exec "$BIN_DIR/kubectl" --kubeconfig "$D/kubeconfig" "$@" ;;
    *)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] || exit 2 ;;
  esac
}

main "$@"
