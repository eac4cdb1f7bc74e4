#!/usr/bin/env bash
# The Gateway API Inference Extension CRDs of a pinned release, for the end-to-end tests: the
# InferencePool (inference.networking.k8s.io/v1) and InferenceObjective
# (inference.networking.x-k8s.io/v1alpha2) that gpupool renders for spec.routing.inferencePool.
#
# The YAMLs ship in the Go module sigs.k8s.io/gateway-api-inference-extension under
# config/crd/bases; they are fetched through the Go module proxy and copied into the cache
# outside the repository, so the second run reads no network (module-cache.sh).
#
# Output (stdout): the directory holding the CRD YAMLs,
#   $GPUPOOL_CACHE/inference-extension-<version>/ (GPUPOOL_CACHE defaults to ~/.cache/gpupool).
set -euo pipefail
# shellcheck source=module-cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/module-cache.sh"

# v1.3.0: the release whose InferencePool v1 and InferenceObjective v1alpha2 gpupool renders.
INFERENCE_EXTENSION_VERSION="${INFERENCE_EXTENSION_VERSION:-v1.3.0}"
out="${GPUPOOL_CACHE:-$HOME/.cache/gpupool}/inference-extension-$INFERENCE_EXTENSION_VERSION"
# The two kinds gpupool writes; the release's other CRDs (the older x-k8s.io InferencePool,
# InferencePoolImport, InferenceModelRewrite) are not installed.
CRDS=(inference.networking.k8s.io_inferencepools.yaml inference.networking.x-k8s.io_inferenceobjectives.yaml)

cache_or_lock "$out"
src="$(module_dir "sigs.k8s.io/gateway-api-inference-extension@$INFERENCE_EXTENSION_VERSION")/config/crd/bases"
rm -rf "$out"
mkdir -p "$out"
for f in "${CRDS[@]}"; do
  cp "$src/$f" "$out/"
  chmod u+w "$out/$f"
  grep -q "bundle-version: $INFERENCE_EXTENSION_VERSION" "$out/$f"
done
touch "$out/.complete"
echo "$out"
