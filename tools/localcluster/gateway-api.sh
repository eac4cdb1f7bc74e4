#!/usr/bin/env bash
# The Gateway API CRDs (standard channel) of a pinned release, for the end-to-end tests.
#
# The YAMLs ship in the Go module sigs.k8s.io/gateway-api under config/crd/standard; they are
# fetched through the Go module proxy and copied into the cache outside the repository, so the
# second run reads no network (module-cache.sh).
#
# Output (stdout): the directory holding the CRD YAMLs,
#   $GPUPOOL_CACHE/gateway-api-<version>/ (GPUPOOL_CACHE defaults to ~/.cache/gpupool).
set -euo pipefail
# shellcheck source=module-cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/module-cache.sh"

# v1.6.3: the newest release whose go.mod builds with the Go toolchain the project pins
# (v1.7.0 asks for Go 1.27).
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
out="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}/gateway-api-$GATEWAY_API_VERSION"

cache_or_lock "$out"
src="$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")/config/crd/standard"
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
