#!/usr/bin/env bash
# The same labelled accelerator nodes on kind, for machines with Docker.
#
# Usage: kind.sh up | down | env
#
# Creates a kind cluster from kind-config.yaml (one control plane, two NVIDIA,
# one Ascend and one CPU worker), then gives each worker the labels, taints and
# extended resources of its class from ../nodes/generate.py. The kubelets have
# no device plugins here, so the GPU/NPU capacity is advertised by patching
# node status, as the Kubernetes docs describe for extended resources; pods
# requesting them schedule but get no real device.
#
# Settings: KIND_CLUSTER_NAME (gpupool), KUBECTL (kubectl), KIND_NODE_IMAGE (a kindest/node image
# of the pinned minor release, with its digest from the kind release notes),
# KIND_VERSION (installed with `go install` when kind is missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name="${KIND_CLUSTER_NAME:-gpupool}"
# kind v0.33.0 release notes: images pre-built for that release.
image="${KIND_NODE_IMAGE:-kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed}"
kind_version="${KIND_VERSION:-v0.33.0}"
# Inside the (git-ignored) local cluster folder; kind itself keeps the cluster.
state="${GPUPOOL_KIND_DIR:-${GPUPOOL_CLUSTER_DIR:-$(cd "$here/../../.." && pwd)/.cluster}/kind}"
kubeconfig="$state/kubeconfig"

log() { echo "[kind] $*"; }
die() { echo "[kind] ERROR: $*" >&2; exit 1; }

ensure_kind() {
  command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "kind needs a running Docker engine; use 'make cluster-up' instead"
  if ! command -v kind >/dev/null; then
    log "installing kind $kind_version with go install"
    GOBIN="${GOBIN:-$HOME/go/bin}" go install "sigs.k8s.io/kind@$kind_version"
    export PATH="${GOBIN:-$HOME/go/bin}:$PATH"
  fi
}

kc() { "${KUBECTL:-kubectl}" --kubeconfig "$kubeconfig" "$@"; }

# label_node NODE CLASS: apply a class's labels, taints and extended resources.
label_node() {
  local node="$1" cls="$2" spec
  spec="$(python3 "$here/../nodes/generate.py" --kind-node "$node" "$cls")"
  python3 - "$spec" <<'PY' | while IFS=$'\t' read -r kind arg; do
import json, sys
spec = json.loads(sys.argv[1])
for k, v in spec["labels"].items():
    print(f"label\t{k}={v}")
for t in spec["taints"]:
    print(f"taint\t{t['key']}={t['value']}:{t['effect']}")
for r, n in spec["resources"].items():
    path = "/status/capacity/" + r.replace("~", "~0").replace("/", "~1")
    print("resource\t" + json.dumps([{"op": "add", "path": path, "value": n}]))
PY
    case "$kind" in
      label) kc label node "$node" "$arg" --overwrite >/dev/null ;;
      taint) kc taint node "$node" "$arg" --overwrite >/dev/null ;;
      resource) kc patch node "$node" --subresource=status --type=json -p "$arg" >/dev/null ;;
    esac
  done
  log "$node: $cls"
}

cmd_up() {
  ensure_kind
  mkdir -p "$state"
  if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
    log "creating kind cluster $name with $image"
    kind create cluster --name "$name" --image "$image" --config "$here/kind-config.yaml" --kubeconfig "$kubeconfig" --wait 180s
  else
    kind get kubeconfig --name "$name" >"$kubeconfig"
  fi
  local node cls
  while read -r node cls; do
    [[ -n "$cls" ]] && label_node "$node" "$cls"
  done < <(kc get nodes -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.labels.localcluster\.gpupool\.io/class}{"\n"}{end}')
  kc wait --for=condition=Ready nodes --all --timeout=180s >/dev/null
  local i
  for ((i = 0; i < 60; i++)); do
    kc -n default get serviceaccount default >/dev/null 2>&1 && break
    sleep 1
  done
  log "ready: export KUBECONFIG=$kubeconfig"
}

cmd_down() {
  command -v kind >/dev/null || { log "kind not installed; nothing to delete"; return; }
  kind delete cluster --name "$name"
  rm -rf "$state"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env)
    [[ -f "$kubeconfig" ]] || { mkdir -p "$state"; kind get kubeconfig --name "$name" >"$kubeconfig"; }
    echo "export KUBECONFIG=$kubeconfig" ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
