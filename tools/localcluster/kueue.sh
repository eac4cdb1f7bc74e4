#!/usr/bin/env bash
# Kueue (sigs.k8s.io/kueue, pinned in kueue/version.env) against the local
# control plane: its CRDs, its webhooks on loopback with a self-signed
# certificate, and its manager as a local process. The LeaderWorkerSet
# integration needs the LeaderWorkerSet CRD: start lws.sh first.
#
# Usage: kueue.sh start | stop | status
#
# Optional: a cluster without it keeps working, and gpupool reports a
# condition on a pool with spec.scheduler kueue when Kueue's CRDs are
# missing. `start` is idempotent; `stop` stops the manager and removes the
# webhook configurations and CRDs, so the cluster is as before (Kueue's
# objects go with their CRDs).
#
# Settings: the cluster's (GPUPOOL_CLUSTER_DIR, ...), and
# GPUPOOL_KUEUE_WEBHOOK_PORT (16445), the port of its webhook server on
# 127.0.0.1.
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

WEBHOOK_PORT="${GPUPOOL_KUEUE_WEBHOOK_PORT:-16445}"
KUEUE_DIR="$D/kueue"
NAME=kueue-controller-manager
# The integrations gpupool's workloads need: LeaderWorkerSets (one Workload
# per group, admitted whole), Deployments (a Workload per pod) and pods, which
# both build on. Their webhooks, and Kueue's own kinds', are the only ones
# registered, so other kinds of the cluster never wait on a Kueue webhook.
WEBHOOKS="mclusterqueue.kb.io mresourceflavor.kb.io mworkload.kb.io mleaderworkerset.kb.io mpod.kb.io mdeployment.kb.io
vclusterqueue.kb.io vcohort.kb.io vresourceflavor.kb.io vworkload.kb.io vleaderworkerset.kb.io vpod.kb.io vdeployment.kb.io"

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$D/kubeconfig" "$@"; }

fail() { echo "[kueue] ERROR: $*" >&2; log_tail "$NAME"; exit 1; }

# A self-signed serving certificate for 127.0.0.1; the webhook
# configurations trust it as their CA bundle.
make_cert() {
  [[ -f "$KUEUE_DIR/certs/tls.crt" ]] && return
  mkdir -p "$KUEUE_DIR/certs"
  (umask 077
   openssl ecparam -name prime256v1 -genkey -noout -out "$KUEUE_DIR/certs/tls.key" 2>/dev/null
   openssl req -x509 -new -key "$KUEUE_DIR/certs/tls.key" -subj "/CN=kueue-webhook" -days 3650 -sha256 \
     -addext "subjectAltName=IP:127.0.0.1" -addext "extendedKeyUsage=serverAuth" \
     -out "$KUEUE_DIR/certs/tls.crt" 2>/dev/null) || fail "openssl failed"
}

# Kueue's defaults (config/components/manager/controller_manager_config.yaml)
# but: no leader election, certificates from make_cert, webhooks on loopback,
# no metrics or health listeners, only the integrations above, and
# waitForPodsReady: a group admitted but not running within the timeout is
# evicted and requeued, so admitted quota never stays held by pods that cannot
# start.
write_config() {
  cat >"$KUEUE_DIR/config.yaml" <<CONFIG
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
webhook:
  host: 127.0.0.1
  port: $WEBHOOK_PORT
  certDir: $KUEUE_DIR/certs
metrics:
  bindAddress: "0"
health:
  healthProbeBindAddress: "0"
clientConnection:
  qps: 50
  burst: 100
manageJobsWithoutQueueName: false
managedJobsNamespaceSelector:
  matchExpressions:
  - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kueue-system]}
waitForPodsReady:
  timeout: 10m
  blockAdmission: false
integrations:
  frameworks:
  - pod
  - deployment
  - leaderworkerset.x-k8s.io/leaderworkerset
CONFIG
}

# The release's webhook manifests with the entries above, each called by URL
# instead of through a Service; pod and Deployment webhooks skip the system
# namespaces, as upstream's kustomize patches do.
write_webhooks() {
  local ca
  ca="$(base64 -w0 "$KUEUE_DIR/certs/tls.crt")"
  awk -v keep="$WEBHOOKS" -v url="https://127.0.0.1:$WEBHOOK_PORT" -v ca="$ca" '
    BEGIN { n = split(keep, k, /[ \n]+/); for (i = 1; i <= n; i++) wanted[k[i]] = 1 }
    function flush() {
      if (entry != "" && wanted[name]) {
        printf "%s", entry
        if (name ~ /^[mv](pod|deployment)\.kb\.io$/) {
          print "  namespaceSelector:"
          print "    matchExpressions:"
          print "    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kueue-system]}"
        }
      }
      entry = ""; name = ""
    }
    /^---/ || /^apiVersion:/ { flush(); print; next }
    /^kind:/ || /^webhooks:/ { print; next }
    /^metadata:/ { next }
    /^  name: (mutating|validating)-webhook-configuration/ { sub(/name: /, "name: kueue-"); print "metadata:"; print; next }
    /^- admissionReviewVersions:/ { flush(); entry = $0 "\n"; next }
    /^    service:/ || /^      name: webhook-service/ || /^      namespace: system/ { next }
    /^      path: / { entry = entry "    url: " url $2 "\n    caBundle: " ca "\n"; next }
    /^  name: / { name = $2 }
    { if (entry != "") entry = entry $0 "\n" }
    END { flush() }
  ' "$1/webhooks.yaml" >"$KUEUE_DIR/webhooks.yaml"
  [[ "$(grep -c '^  name: [mv].*\.kb\.io' "$KUEUE_DIR/webhooks.yaml")" == "$(echo $WEBHOOKS | wc -w)" ]] \
    || fail "the release's webhook manifests lack some of: $WEBHOOKS"
}

# Every CRD of the release, not only the kinds gpupool writes: the manager sets up
# indexes on AdmissionCheck and the MultiKueue kinds at start and exits when one is
# not served yet.
crds_established() {
  local file crd
  for file in "$1"/kueue.x-k8s.io_*.yaml; do
    crd="$(basename "$file" .yaml)"
    crd="${crd#kueue.x-k8s.io_}.kueue.x-k8s.io"
    [[ "$(kubectl_ get crd "$crd" \
      -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null || true)" == True ]] || return 1
  done
}

webhook_serving() { curl -sk --max-time 2 -o /dev/null "https://127.0.0.1:$WEBHOOK_PORT/"; }

cmd_start() {
  [[ -f "$D/settings.env" && -n "$BIN_DIR" ]] || fail "no running cluster in $D; run cluster.sh up first"
  kubectl_ get crd leaderworkersets.leaderworkerset.x-k8s.io >/dev/null 2>&1 \
    || fail "the LeaderWorkerSet CRD is missing: run lws.sh start first (Kueue's LeaderWorkerSet integration needs it)"
  local kueue_bin
  kueue_bin="$("$LC_HERE/kueue/build.sh")" || fail "building Kueue failed"
  mkdir -p "$KUEUE_DIR"
  make_cert
  write_config
  write_webhooks "$kueue_bin"
  kubectl_ create namespace kueue-system --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  # The release's CRDs as they are (config/components/crd/bases): they serve
  # v1beta1 and v1beta2 without a conversion webhook; gpupool and Kueue both
  # use v1beta2, the storage version.
  kubectl_ apply --server-side -f "$kueue_bin/crds" >/dev/null || fail "installing the CRDs failed"
  local deadline=$((SECONDS + 60))
  until crds_established "$kueue_bin/crds"; do
    ((SECONDS < deadline)) || fail "Kueue's CRDs were not established within 60s"
    sleep 0.5
  done
  # Up to three starts: on a loaded machine the manager can exit at start-up while the API
  # server's discovery still catches up with the CRDs just installed; its log says why.
  local attempt
  for attempt in 1 2 3; do
    if ! is_running "$NAME"; then
      port_in_use "$WEBHOOK_PORT" && fail "port 127.0.0.1:$WEBHOOK_PORT is in use (set GPUPOOL_KUEUE_WEBHOOK_PORT)"
      log "starting Kueue $KUEUE_VERSION (webhooks on 127.0.0.1:$WEBHOOK_PORT), attempt $attempt"
      # The visibility API server (an aggregated API on its own port) is off:
      # nothing here reads pending workloads through it.
      # KUEUE_METRICS_CERT_DIR: see kueue/build.sh (the metrics server itself is off).
      start_process "$NAME" env KUBECONFIG="$D/kubeconfig" KUEUE_METRICS_CERT_DIR="$KUEUE_DIR/certs" "$kueue_bin/manager" \
        --config="$KUEUE_DIR/config.yaml" --feature-gates=VisibilityOnDemand=false \
        --zap-log-level=info --zap-devel=false
    fi
    deadline=$((SECONDS + 90))
    until webhook_serving || ! is_running "$NAME"; do
      ((SECONDS < deadline)) || fail "its webhook server did not answer within 90s"
      sleep 0.5
    done
    webhook_serving && break
    ((attempt < 3)) || fail "Kueue exited"
    log "Kueue exited at start-up; starting it again in 2s"
    sleep 2
  done
  kubectl_ apply --server-side -f "$KUEUE_DIR/webhooks.yaml" >/dev/null || fail "installing the webhooks failed"
  log "Kueue ready"
}

cmd_stop() {
  if [[ -f "$D/settings.env" && -n "$BIN_DIR" && -f "$D/kubeconfig" ]]; then
    kubectl_ delete --ignore-not-found --wait=false mutatingwebhookconfiguration kueue-mutating-webhook-configuration >/dev/null 2>&1 || true
    kubectl_ delete --ignore-not-found --wait=false validatingwebhookconfiguration kueue-validating-webhook-configuration >/dev/null 2>&1 || true
    local crds
    crds="$(kubectl_ get crd -o name 2>/dev/null | grep '\.kueue\.x-k8s\.io$' || true)"
    [[ -z "$crds" ]] || kubectl_ delete --ignore-not-found --wait=false $crds >/dev/null 2>&1 || true
  fi
  stop_process "$NAME"
}

cmd_status() {
  if is_running "$NAME"; then echo "$NAME running (pid $(pid_of "$NAME"))"; else echo "$NAME stopped"; exit 1; fi
}

# shellcheck source=kueue/version.env
source "$LC_HERE/kueue/version.env"
case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
