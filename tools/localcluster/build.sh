#!/usr/bin/env bash
# Builds the local cluster's multi-call binary (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) or reuses a cached one.
#
# Output: $GPUPOOL_CACHE/k8s-<version>-<source hash>/ with the binary, one
# symlink per component and kwok's stage definitions. The hash covers the Go
# sources, the pins and this script, so a change to any of them builds into a
# new folder (quickly, from the Go build cache, when only flags changed).
# Prints the bin folder on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
src="$here/k8s"
cache_root="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

log() { echo "[build] $*" >&2; }
die() { echo "[build] ERROR: $*" >&2; exit 1; }

bin_dir() {
  local hash
  hash="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" "$here/versions.env" "$here/build.sh" | sha256sum | cut -c1-12)"
  echo "$cache_root/k8s-$K8S_VERSION-$hash"
}

check_pins() {
  grep -q "k8s.io/kubernetes $K8S_VERSION\$" "$src/go.mod" || die "go.mod does not require k8s.io/kubernetes $K8S_VERSION"
  grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$src/go.mod" || die "go.mod does not require etcd $ETCD_VERSION"
  grep -q "sigs.k8s.io/kwok $KWOK_VERSION\$" "$src/go.mod" || die "go.mod does not require kwok $KWOK_VERSION"
}

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  [[ -x /usr/local/go/bin/go ]] && { echo /usr/local/go/bin/go; return; }
  die "Go toolchain not found (need go >= 1.26 on PATH or in /usr/local/go)"
}

# kwok's own binary ships no default stages (kwokctl adds them), so copy the
# upstream "fast" stages of the pinned release: node-initialize, node
# heartbeat with lease, and pod ready/complete/delete.
write_stages() {
  local go="$1" out="$2" kwok_dir
  kwok_dir="$(cd "$src" && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  [[ -d "$kwok_dir/kustomize/stage" ]] || die "kwok module source not found at $kwok_dir"
  local f first=1
  for f in node/fast/node-initialize.yaml \
           node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ $first == 1 ]] || echo "---"
    first=0
    cat "$kwok_dir/kustomize/stage/$f"
  done > "$out"
}

# Stamp the release version as upstream's hack/lib/version.sh does; unstamped
# binaries report v0.0.0, which breaks clients that check the server version
# (helm's kubeVersion, version-skew warnings).
ldflags() {
  local major minor rest flags="-s -w" key val pkg
  IFS=. read -r major minor rest <<<"${K8S_VERSION#v}"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for key in gitVersion=$K8S_VERSION gitMajor=$major gitMinor=$minor gitTreeState=clean \
               buildDate=1970-01-01T00:00:00Z; do
      val="${key#*=}"; key="${key%%=*}"
      flags+=" -X $pkg.$key=$val"
    done
  done
  echo "$flags"
}

build() {
  local out="$1" go tmp start
  go="$(find_go)"
  check_pins
  mkdir -p "$cache_root"
  tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "building Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION with $("$go" version | cut -d' ' -f3)"
  log "a cold build takes 5-8 minutes on 2 cores; later builds reuse the Go build cache"
  start=$SECONDS
  # CGO is off as in the upstream release builds of these binaries; VCS
  # stamping is off because the binary's identity is the cache key, not the
  # state of the enclosing work tree.
  (cd "$src" && CGO_ENABLED=0 "$go" build -buildvcs=false -trimpath -ldflags="$(ldflags)" \
      -o "$tmp/localcluster" .) >&2 || die "go build failed"
  write_stages "$go" "$tmp/kwok-stages.yaml"
  local c
  for c in "${components[@]}"; do ln -s localcluster "$tmp/$c"; done
  "$tmp/kubectl" version --client >&2
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  log "built in $((SECONDS - start))s into $out"
}

main() {
  local out
  out="$(bin_dir)"
  if [[ ! -x "$out/localcluster" || ! -f "$out/kwok-stages.yaml" ]]; then
    mkdir -p "$cache_root"
    # One build at a time, so a test run and a make target started together
    # do not compile twice.
    exec 9>"$cache_root/.build.lock"
    flock 9
    if [[ ! -x "$out/localcluster" || ! -f "$out/kwok-stages.yaml" ]]; then
      build "$out"
    fi
  else
    log "reusing $out"
  fi
  echo "$out"
}

main "$@"
