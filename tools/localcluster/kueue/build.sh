#!/usr/bin/env bash
# Builds the Kueue controller manager (sigs.k8s.io/kueue) of the pinned
# release from its Go module, or reuses a cached build.
#
# Output: $GPUPOOL_CACHE/kueue-<version>-<script hash>/ with the manager
# binary (`manager`), the release's CRDs (`crds/`) and its webhook
# configurations (`webhooks.yaml`, as upstream's config/ has them, pointing at
# a Service; kueue.sh rewrites them to a loopback URL). The folder name
# carries the version and a hash of the pins and this script, so a new pin or
# a changed build builds into a new folder. Prints the folder on stdout;
# progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=version.env
source "$here/version.env"
grep -qE "sigs\.k8s\.io/kueue $KUEUE_VERSION( |$)" "$here/go.mod" || { echo "[kueue-build] ERROR: go.mod does not require sigs.k8s.io/kueue $KUEUE_VERSION" >&2; exit 1; }
cache_root="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"

log() { echo "[kueue-build] $*" >&2; }
die() { echo "[kueue-build] ERROR: $*" >&2; exit 1; }

out_dir() {
  local hash
  hash="$(cat "$here/go.mod" "$here/go.sum" "$here/version.env" "$here/build.sh" | sha256sum | cut -c1-12)"
  echo "$cache_root/kueue-$KUEUE_VERSION-$hash"
}

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  [[ -x /usr/local/go/bin/go ]] && { echo /usr/local/go/bin/go; return; }
  die "Go toolchain not found (need go >= 1.26 on PATH or in /usr/local/go)"
}

build() {
  local out="$1" go tmp start moddir
  go="$(find_go)"
  mkdir -p "$cache_root"
  tmp="$(mktemp -d "$cache_root/.kueue-build.XXXXXX")"
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "building sigs.k8s.io/kueue $KUEUE_VERSION with $("$go" version | cut -d' ' -f3)"
  start=$SECONDS
  # go.mod here names the release's manager as a tool; go.sum pins every
  # module of it (the release's own go.mod has no replace directives, so the
  # build resolves to exactly its pins). The version is stamped as
  # upstream's Makefile does.
  (cd "$here" && "$go" mod download sigs.k8s.io/kueue) >&2 || die "downloading the kueue module failed"
  moddir="$(cd "$here" && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
  [[ -d "$moddir/config/components/crd/bases" ]] || die "kueue module source not found at $moddir"
  # Without Kueue's internal certificate management, the release's main reads the metrics
  # server's certificate from the fixed path /etc/kueue/metrics/certs even when metrics are
  # off, and exits without it. The manager is built from a copy of the release's
  # cmd/kueue/main.go (its only file) that reads the folder from KUEUE_METRICS_CERT_DIR,
  # falling back to that path, in a module with this folder's go.mod and go.sum; every other
  # package is the release's own.
  mkdir -p "$tmp/src"
  cp "$here/go.mod" "$here/go.sum" "$tmp/src/"
  sed 's|metricsCertPath := "/etc/kueue/metrics/certs"|metricsCertPath := func() string { if dir := os.Getenv("KUEUE_METRICS_CERT_DIR"); dir != "" { return dir }; return "/etc/kueue/metrics/certs" }()|' \
    "$moddir/cmd/kueue/main.go" >"$tmp/src/main.go"
  grep -q KUEUE_METRICS_CERT_DIR "$tmp/src/main.go" || die "cmd/kueue/main.go of $KUEUE_VERSION has no metricsCertPath to override"
  (cd "$tmp/src" && CGO_ENABLED=0 "$go" build -buildvcs=false -trimpath \
      -ldflags="-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
      -o "$tmp/manager" .) >&2 || die "go build failed"
  rm -rf "$tmp/src"
  mkdir -p "$tmp/crds"
  cp "$moddir"/config/components/crd/bases/*.yaml "$tmp/crds/"
  cp "$moddir/config/components/webhook/manifests.yaml" "$tmp/webhooks.yaml"
  chmod -R u+w "$tmp/crds" "$tmp/webhooks.yaml"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  log "built in $((SECONDS - start))s into $out"
}

main() {
  local out
  out="$(out_dir)"
  if [[ ! -x "$out/manager" ]]; then
    mkdir -p "$cache_root"
    exec 9>"$cache_root/.kueue-build.lock"
    flock 9
    [[ -x "$out/manager" ]] || build "$out"
  else
    log "reusing $out"
  fi
  echo "$out"
}

main "$@"
