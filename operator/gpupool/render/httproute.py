"""The Gateway API HTTPRoute of a model: from the Gateways it names to the model's Service.

One route per model, whatever its pools: the Service already spans them. Requests under the path
prefix go to the Service's http port, the prefix replaced by `/` when it is not `/` already, with
a request timeout long enough for a streamed generation (a gateway's own default is often 15 s).
With `routing.inferencePool` the route sends to the model's Inference Extension InferencePool
instead (`route_backend`), naming the model's InferenceObjective in a header on each request.
"""

from __future__ import annotations

from typing import Any

from gpupool.api.traffic import RoutingSpec, parent_namespace
from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.inference_extension import (
    INFERENCE_GROUP,
    INFERENCE_POOL_KIND,
    objective_header_filter,
)
from gpupool.render.owned import model_metadata
from gpupool.render.vllm import HTTP_PORT

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = f"{GATEWAY_GROUP}/v1"


def service_backend(name: str) -> dict[str, Any]:
    """A backendRef to the model's Service `name`, on its http port."""
    return {"group": "", "kind": "Service", "name": name, "port": HTTP_PORT, "weight": 1}


def route_backend(md: ModelDeployment, routing: RoutingSpec) -> dict[str, Any]:
    """Where the model's route sends: its Inference Extension InferencePool with
    `routing.inferencePool` (the endpoint picker then chooses a pod), else its Service.

    One backendRef with weight 1. A split between revisions by weight needs one backend per
    revision: a Service per revision does that, while one InferencePool spans every pod of the
    model, so behind it a revision's share is its share of the pods."""
    name = lbl.object_name(md.metadata["name"])
    if routing.inference_pool is not None:
        return {"group": INFERENCE_GROUP, "kind": INFERENCE_POOL_KIND, "name": name, "weight": 1}
    return service_backend(name)


def render_http_route(md: ModelDeployment, routing: RoutingSpec) -> dict[str, Any]:
    """The model's HTTPRoute; `routing` must name at least one Gateway."""
    if not routing.parent_refs:
        raise ValueError("an HTTPRoute needs at least one parentRef")
    namespace = md.metadata.get("namespace", "")
    parents = []
    for parent in routing.parent_refs:
        ref: dict[str, Any] = {
            "group": GATEWAY_GROUP,
            "kind": "Gateway",
            "name": parent.name,
            "namespace": parent_namespace(parent, namespace),
        }
        if parent.section_name is not None:
            ref["sectionName"] = parent.section_name
        if parent.port is not None:
            ref["port"] = parent.port
        parents.append(ref)
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": routing.path_prefix}}],
        "backendRefs": [route_backend(md, routing)],
        "timeouts": {"request": f"{routing.request_timeout_seconds}s"},
    }
    filters = []
    if routing.path_prefix != "/":
        filters.append(
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            }
        )
    if routing.inference_pool is not None:
        filters.append(objective_header_filter(md))
    if filters:
        rule["filters"] = filters
    spec: dict[str, Any] = {"parentRefs": parents, "rules": [rule]}
    if routing.hostnames:
        spec["hostnames"] = list(routing.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": model_metadata(md),
        "spec": spec,
    }
