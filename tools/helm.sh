#!/usr/bin/env bash
# Installs the pinned Helm from its Go module (or reuses a cached build) and
# prints the path of the binary on stdout. Progress goes to stderr.
#
# Usage: tools/helm.sh            install if needed, print the binary's path
#        tools/helm.sh ARGS...    install if needed, then run helm ARGS...
#
# The binary lands in $GPUPOOL_CACHE/helm-<version>/helm (default
# ~/.cache/gpupool), outside the repository, so a second run costs nothing and
# a version bump builds into a new folder. It is built with the same linker
# flags as Helm's own Makefile, so `helm version` reports the release and
# `helm template` assumes the Kubernetes version of the client-go Helm was
# built with (not the v1.20 fallback of an unstamped build).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
cache_root="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"
dest="$cache_root/helm-$HELM_VERSION"
bin="$dest/helm"
tmp=""

log() { echo "[helm] $*" >&2; }
die() { echo "[helm] ERROR: $*" >&2; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  [[ -x /usr/local/go/bin/go ]] && { echo /usr/local/go/bin/go; return; }
  die "Go toolchain not found (need go >= 1.24 on PATH or in /usr/local/go)"
}

build() {
  local go module_dir client_go k8s_minor pkg flags start
  go="$(find_go)"
  mkdir -p "$cache_root"
  # One build at a time: parallel test workers may all ask for helm at once.
  exec 9>"$cache_root/helm-$HELM_VERSION.lock"
  flock 9
  [[ -x "$bin" ]] && return
  start=$SECONDS
  log "building helm $HELM_VERSION from its Go module (a few minutes the first time)"
  # Outside any module, so that this repository's files play no part.
  tmp="$(mktemp -d "$cache_root/.helm-build.XXXXXX")"
  trap '[[ -z "$tmp" ]] || rm -rf "$tmp"' EXIT
  module_dir="$(cd "$tmp" && GOFLAGS=-mod=mod "$go" mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -f "$module_dir/go.mod" ]] || die "could not download helm.sh/helm/v3@$HELM_VERSION"
  # Helm's Makefile derives its default Kubernetes version from client-go's.
  client_go="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$module_dir/go.mod" | head -1)"
  [[ -n "$client_go" ]] || die "client-go version not found in Helm's go.mod"
  k8s_minor="$client_go"
  flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  (cd "$tmp" && GOBIN="$tmp/bin" CGO_ENABLED=0 "$go" install -trimpath -ldflags "$flags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2 || die "go install of helm $HELM_VERSION failed"
  "$tmp/bin/helm" version --short >/dev/null || die "the built helm does not run"
  mkdir -p "$dest"
  mv "$tmp/bin/helm" "$bin"
  log "helm $HELM_VERSION ready in $((SECONDS - start))s: $bin"
}

[[ -x "$bin" ]] || build
if (($# == 0)); then
  echo "$bin"
else
  exec "$bin" "$@"
fi
