#!/usr/bin/env bash
# Builds the LeaderWorkerSet controller manager (sigs.k8s.io/lws) of the
# pinned release from its Go module, or reuses a cached build.
#
# Output: $GPUPOOL_CACHE/lws-<version>-<script hash>/ with the manager binary
# (`manager`) and the release's CRDs (`crds/`). The folder name carries the
# version and a hash of the pins and this script, so a new pin or a changed
# build builds into a new folder. Prints the folder on stdout; progress goes
# to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=version.env
source "$here/version.env"
grep -qE "sigs\.k8s\.io/lws $LWS_VERSION( |$)" "$here/go.mod" || { echo "[lws-build] ERROR: go.mod does not require sigs.k8s.io/lws $LWS_VERSION" >&2; exit 1; }
cache_root="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"

log() { echo "[lws-build] $*" >&2; }
die() { echo "[lws-build] ERROR: $*" >&2; exit 1; }

out_dir() {
  local hash
  hash="$(cat "$here/go.mod" "$here/go.sum" "$here/version.env" "$here/build.sh" | sha256sum | cut -c1-12)"
  echo "$cache_root/lws-$LWS_VERSION-$hash"
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
  tmp="$(mktemp -d "$cache_root/.lws-build.XXXXXX")"
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "building sigs.k8s.io/lws $LWS_VERSION with $("$go" version | cut -d' ' -f3)"
  start=$SECONDS
  # go.mod here names the release's manager as a tool; go.sum pins every
  # module of it. The version is stamped as upstream's Makefile does.
  (cd "$here" && CGO_ENABLED=0 "$go" build -buildvcs=false -trimpath \
      -ldflags="-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$LWS_VERSION" \
      -o "$tmp/manager" sigs.k8s.io/lws/cmd) >&2 || die "go build failed"
  moddir="$(cd "$here" && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/lws)"
  [[ -d "$moddir/config/crd/bases" ]] || die "lws module source not found at $moddir"
  mkdir -p "$tmp/crds"
  cp "$moddir"/config/crd/bases/*.yaml "$tmp/crds/"
  chmod -R u+w "$tmp/crds"
  "$tmp/manager" --version >&2
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
    exec 9>"$cache_root/.lws-build.lock"
    flock 9
    [[ -x "$out/manager" ]] || build "$out"
  else
    log "reusing $out"
  fi
  echo "$out"
}

main "$@"
