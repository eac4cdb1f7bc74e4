"""The Gateway API Inference Extension objects of a model (`spec.routing.inferencePool`).

- An InferencePool (inference.networking.k8s.io/v1, not gpupool's own cluster-scoped kind of the
  same name) named like the model's Service, over the same pods (the model's identity label; the
  groups' leaders for a model over several nodes), on the engine's HTTP port. The Gateway asks its
  endpoint picker which of those pods takes each request; the picker reads the engines' queue
  depth and KV-cache use.
- An InferenceObjective (inference.networking.x-k8s.io/v1alpha2) of the same name with the
  model's priority. The picker looks an objective up by the name a request carries in the
  `x-gateway-inference-objective` header (pkg/epp/metadata, v1.3.0), so the model's HTTPRoute
  sets that header on every request it forwards (`objective_header_filter`).

The field names and enums are those of the v1.3.0 CRDs (config/crd/bases in the Go module
sigs.k8s.io/gateway-api-inference-extension).
"""

from __future__ import annotations

from typing import Any, Final

from gpupool.api.traffic import ENDPOINT_PICKER_SUFFIX, InferenceExtensionSpec
from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.owned import model_metadata
from gpupool.render.vllm import HTTP_PORT

INFERENCE_GROUP: Final = "inference.networking.k8s.io"
INFERENCE_POOL_API_VERSION: Final = f"{INFERENCE_GROUP}/v1"
INFERENCE_POOL_KIND: Final = "InferencePool"
OBJECTIVE_API_VERSION: Final = "inference.networking.x-k8s.io/v1alpha2"
OBJECTIVE_KIND: Final = "InferenceObjective"
OBJECTIVE_HEADER: Final = "x-gateway-inference-objective"


def endpoint_picker_name(md: ModelDeployment, spec: InferenceExtensionSpec) -> str:
    """The picker's Service: as the spec names it, else the model's Service name with -epp."""
    return spec.endpoint_picker.name or lbl.object_name(md.metadata["name"]) + ENDPOINT_PICKER_SUFFIX


def render_inference_extension_pool(
    md: ModelDeployment, spec: InferenceExtensionSpec, serving: dict[str, str]
) -> dict[str, Any]:
    """The model's Inference Extension InferencePool over the pods `serving` selects (the
    Service's selector)."""
    picker = spec.endpoint_picker
    return {
        "apiVersion": INFERENCE_POOL_API_VERSION,
        "kind": INFERENCE_POOL_KIND,
        "metadata": model_metadata(md),
        "spec": {
            "selector": {"matchLabels": dict(sorted(serving.items()))},
            "targetPorts": [{"number": HTTP_PORT}],
            "endpointPickerRef": {
                "group": "",
                "kind": "Service",
                "name": endpoint_picker_name(md, spec),
                "port": {"number": picker.port},
                "failureMode": picker.failure_mode.value,
            },
        },
    }


def render_inference_objective(md: ModelDeployment, priority: int) -> dict[str, Any]:
    """The model's InferenceObjective: its requests' priority within its InferencePool."""
    metadata = model_metadata(md)
    return {
        "apiVersion": OBJECTIVE_API_VERSION,
        "kind": OBJECTIVE_KIND,
        "metadata": metadata,
        "spec": {
            "poolRef": {"group": INFERENCE_GROUP, "kind": INFERENCE_POOL_KIND, "name": metadata["name"]},
            "priority": priority,
        },
    }


def objective_header_filter(md: ModelDeployment) -> dict[str, Any]:
    """The HTTPRoute filter that names the model's objective on every request (a client's own
    header is overwritten, so no client picks a higher priority)."""
    return {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {
            "set": [{"name": OBJECTIVE_HEADER, "value": lbl.object_name(md.metadata["name"])}]
        },
    }
