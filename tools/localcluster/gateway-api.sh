#!/usr/bin/env bash
# The Gateway API CRDs (standard channel) of a pinned release, for the end-to-end tests.
#
# The YAMLs ship in the Go module sigs.k8s.io/gateway-api under config/crd/standard; they are
# fetched through the Go module proxy (checked against the Go checksum database like any
# module) and copied into the cache outside the repository, so the second run reads no network.
#
# Output (stdout): the directory holding the CRD YAMLs,
#   $GPUPOOL_CACHE/gateway-api-<version>/ (GPUPOOL_CACHE defaults to ~/.cache/gpupool).
set -euo pipefail

# v1.6.3: the newest release whose go.mod builds with the Go toolchain the project pins
# (v1.7.0 asks for Go 1.27).
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
cache_root="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}"
out="$cache_root/gateway-api-$GATEWAY_API_VERSION"

if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache_root"
exec 9>"$out.lock"
flock 9
if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Outside any module: -mod=mod lets `go mod download` fetch a module by path and version.
dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
  python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
src="$dir/config/crd/standard"
rm -rf "$out"
mkdir -p "$out"
# The CRDs only: the release's ValidatingAdmissionPolicy (safe upgrades) is not one.
for f in "$src"/gateway.networking.k8s.io_*.yaml; do
  case "$f" in *_vap_*) continue ;; esac
  cp "$f" "$out/"
  chmod u+w "$out/$(basename "$f")"
done
grep -q "bundle-version: $GATEWAY_API_VERSION" "$out/gateway.networking.k8s.io_httproutes.yaml"
touch "$out/.complete"
echo "$out"
