#!/usr/bin/env bash
# The LeaderWorkerSet controller (sigs.k8s.io/lws, pinned in lws/version.env)
# against the local control plane: its CRDs, its webhooks on loopback with a
# self-signed certificate, and its manager as a local process.
#
# Usage: lws.sh start | stop | status
#
# Optional: a cluster without it keeps working, and gpupool reports a
# condition for a multi-node model when the LeaderWorkerSet CRD is missing.
# `start` is idempotent; `stop` stops the manager and removes the webhook
# configurations and CRDs, so the cluster is as before (LeaderWorkerSets and
# their pods go with the CRD).
#
# Settings: the cluster's (GPUPOOL_CLUSTER_DIR, ...), and
# GPUPOOL_LWS_WEBHOOK_PORT (16444), the port of its webhook server on
# 127.0.0.1.
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

WEBHOOK_PORT="${GPUPOOL_LWS_WEBHOOK_PORT:-16444}"
LWS_DIR="$D/lws"
NAME=lws-controller-manager

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$D/kubeconfig" "$@"; }

fail() { echo "[lws] ERROR: $*" >&2; log_tail "$NAME"; exit 1; }

# A self-signed serving certificate for 127.0.0.1; the webhook
# configurations trust it as their CA bundle.
make_cert() {
  [[ -f "$LWS_DIR/certs/tls.crt" ]] && return
  mkdir -p "$LWS_DIR/certs"
  (umask 077
   openssl ecparam -name prime256v1 -genkey -noout -out "$LWS_DIR/certs/tls.key" 2>/dev/null
   openssl req -x509 -new -key "$LWS_DIR/certs/tls.key" -subj "/CN=lws-webhook" -days 3650 -sha256 \
     -addext "subjectAltName=IP:127.0.0.1" -addext "extendedKeyUsage=serverAuth" \
     -out "$LWS_DIR/certs/tls.crt" 2>/dev/null) || fail "openssl failed"
}

write_config() {
  cat >"$LWS_DIR/config.yaml" <<CONFIG
apiVersion: config.lws.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
webhook:
  host: 127.0.0.1
  port: $WEBHOOK_PORT
  certDir: $LWS_DIR/certs
metrics:
  bindAddress: "0"
health:
  healthProbeBindAddress: "0"
CONFIG
}

# webhook KIND PATH RESOURCE OPERATIONS [POD_SELECTOR]: one webhook entry,
# called by URL instead of through a Service. Pod webhooks only see pods of
# a LeaderWorkerSet, as upstream's kustomize patches select them.
webhook() {
  local name="$1" path="$2" group="$3" resource="$4" ops="$5" selector="${6:-}"
  cat <<ENTRY
- name: $name
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig:
    url: https://127.0.0.1:$WEBHOOK_PORT$path
    caBundle: $(base64 -w0 "$LWS_DIR/certs/tls.crt")
  rules:
  - apiGroups: ["$group"]
    apiVersions: [v1]
    operations: [$ops]
    resources: [$resource]
ENTRY
  if [[ -n "$selector" ]]; then
    cat <<ENTRY
  objectSelector:
    matchExpressions:
    - {key: leaderworkerset.sigs.k8s.io/name, operator: Exists}
ENTRY
  fi
}

write_webhooks() {
  {
    echo "apiVersion: admissionregistration.k8s.io/v1"
    echo "kind: MutatingWebhookConfiguration"
    echo "metadata: {name: lws-mutating-webhook-configuration}"
    echo "webhooks:"
    webhook mleaderworkerset.kb.io /mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset \
      leaderworkerset.x-k8s.io leaderworkersets "CREATE, UPDATE"
    webhook mpod.kb.io /mutate--v1-pod "" pods CREATE pods
    echo "---"
    echo "apiVersion: admissionregistration.k8s.io/v1"
    echo "kind: ValidatingWebhookConfiguration"
    echo "metadata: {name: lws-validating-webhook-configuration}"
    echo "webhooks:"
    webhook vleaderworkerset.kb.io /validate-leaderworkerset-x-k8s-io-v1-leaderworkerset \
      leaderworkerset.x-k8s.io leaderworkersets "CREATE, UPDATE"
    webhook vpod.kb.io /validate--v1-pod "" pods "CREATE, UPDATE" pods
  } >"$LWS_DIR/webhooks.yaml"
}

crd_established() {
  kubectl_ get crd leaderworkersets.leaderworkerset.x-k8s.io \
    -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null || true
}

webhook_serving() { curl -sk --max-time 2 -o /dev/null "https://127.0.0.1:$WEBHOOK_PORT/"; }

cmd_start() {
  [[ -f "$D/settings.env" && -n "$BIN_DIR" ]] || fail "no running cluster in $D; run cluster.sh up first"
  local lws_bin
  lws_bin="$("$LC_HERE/lws/build.sh")" || fail "building the LeaderWorkerSet controller failed"
  mkdir -p "$LWS_DIR"
  make_cert
  write_config
  write_webhooks
  # The release's CRDs as they are: v0.9.0's carry no conversion webhook.
  kubectl_ apply --server-side -f "$lws_bin/crds" >/dev/null || fail "installing the CRDs failed"
  local deadline=$((SECONDS + 60))
  until [[ "$(crd_established)" == True ]]; do
    ((SECONDS < deadline)) || fail "the LeaderWorkerSet CRD was not established within 60s"
    sleep 0.5
  done
  if ! is_running "$NAME"; then
    port_in_use "$WEBHOOK_PORT" && fail "port 127.0.0.1:$WEBHOOK_PORT is in use (set GPUPOOL_LWS_WEBHOOK_PORT)"
    log "starting the LeaderWorkerSet controller $LWS_VERSION (webhooks on 127.0.0.1:$WEBHOOK_PORT)"
    start_process "$NAME" env KUBECONFIG="$D/kubeconfig" "$lws_bin/manager" \
      --config="$LWS_DIR/config.yaml" --zap-log-level=info --zap-devel=false
  fi
  deadline=$((SECONDS + 60))
  until webhook_serving; do
    is_running "$NAME" || fail "the LeaderWorkerSet controller exited"
    ((SECONDS < deadline)) || fail "its webhook server did not answer within 60s"
    sleep 0.5
  done
  kubectl_ apply --server-side -f "$LWS_DIR/webhooks.yaml" >/dev/null || fail "installing the webhooks failed"
  log "LeaderWorkerSet controller ready"
}

cmd_stop() {
  if [[ -f "$D/settings.env" && -n "$BIN_DIR" && -f "$D/kubeconfig" ]]; then
    kubectl_ delete --ignore-not-found --wait=false -f "$LWS_DIR/webhooks.yaml" >/dev/null 2>&1 || true
    kubectl_ delete --ignore-not-found --wait=false crd \
      leaderworkersets.leaderworkerset.x-k8s.io disaggregatedsets.disaggregatedset.x-k8s.io >/dev/null 2>&1 || true
  fi
  stop_process "$NAME"
}

cmd_status() {
  if is_running "$NAME"; then echo "$NAME running (pid $(pid_of "$NAME"))"; else echo "$NAME stopped"; exit 1; fi
}

# shellcheck source=lws/version.env
source "$LC_HERE/lws/version.env"
case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
