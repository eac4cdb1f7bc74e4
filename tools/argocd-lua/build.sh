#!/usr/bin/env bash
# Builds argocd-lua (main.go: Argo CD's health-script runtime on gopher-lua) or reuses a cached
# build.
#
# Output: $GPUPOOL_CACHE/argocd-lua-<source hash>/argocd-lua. The hash covers go.mod, go.sum,
# main.go and this script, so a change to any of them builds into a new folder. Prints the
# binary's path on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"

log() { echo "[argocd-lua] $*" >&2; }
die() { echo "[argocd-lua] ERROR: $*" >&2; exit 1; }

out_dir() {
  local hash
  hash="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-12)"
  echo "$cache_root/argocd-lua-$hash"
}

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  [[ -x /usr/local/go/bin/go ]] && { echo /usr/local/go/bin/go; return; }
  die "Go toolchain not found (need go >= 1.23 on PATH or in /usr/local/go)"
}

build() {
  local out="$1" go tmp
  go="$(find_go)"
  grep -qE '^require github\.com/yuin/gopher-lua v1\.1\.2$' "$here/go.mod" \
    || die "go.mod must require exactly github.com/yuin/gopher-lua v1.1.2 (Argo CD's pin)"
  mkdir -p "$cache_root"
  tmp="$(mktemp -d "$cache_root/.argocd-lua-build.XXXXXX")"
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "building with $("$go" version | cut -d' ' -f3)"
  # -mod=readonly: go.sum pins gopher-lua; a build never rewrites it.
  (cd "$here" && CGO_ENABLED=0 "$go" build -mod=readonly -buildvcs=false -trimpath -ldflags="-s -w" \
      -o "$tmp/argocd-lua" .) >&2 || die "go build failed"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  log "built into $out"
}

main() {
  local out
  out="$(out_dir)"
  if [[ ! -x "$out/argocd-lua" ]]; then
    mkdir -p "$cache_root"
    # One build at a time: parallel test runs and make targets share the result.
    exec 9>"$cache_root/.argocd-lua-build.lock"
    flock 9
    [[ -x "$out/argocd-lua" ]] || build "$out"
  else
    log "reusing $out"
  fi
  echo "$out/argocd-lua"
}

main "$@"
