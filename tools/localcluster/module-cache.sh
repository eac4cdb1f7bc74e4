# Files of a Go module at a pinned release, cached outside the repository: sourced by
# gateway-api.sh and inference-extension.sh. The module comes through the Go module proxy
# (checked against the Go checksum database like any module); once the cache is complete, no
# network is read.
# shellcheck shell=bash

# cache_or_lock OUT: print OUT and exit when the cache is complete; otherwise hold its lock (on
# file descriptor 9, for the rest of the script) so that concurrent runs fill it once.
cache_or_lock() {
  local out="$1"
  if [[ -f "$out/.complete" ]]; then
    echo "$out"
    exit 0
  fi
  mkdir -p "$(dirname "$out")"
  exec 9>"$out.lock"
  flock 9
  if [[ -f "$out/.complete" ]]; then
    echo "$out"
    exit 0
  fi
}

# module_dir PATH@VERSION: download the module (or find it in the Go module cache) and print the
# folder that holds it.
module_dir() {
  local work dir
  work="$(mktemp -d)"
  # Outside any module: -mod=mod lets `go mod download` fetch a module by path and version.
  dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
  rm -rf "$work"
  echo "$dir"
}
