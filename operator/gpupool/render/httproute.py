"""The Gateway API HTTPRoute of a model: from the Gateways it names to the model's Service.

One route per model, whatever its pools: the Service already spans them. Requests under the path
prefix go to the Service's http port, the prefix replaced by `/` when it is not `/` already, with
a request timeout long enough for a streamed generation (a gateway's own default is often 15 s).
"""

from __future__ import annotations

from typing import Any

from gpupool.api.traffic import RoutingSpec, parent_namespace
from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.owned import model_metadata
from gpupool.render.vllm import HTTP_PORT

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = f"{GATEWAY_GROUP}/v1"


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
        "backendRefs": [
            {
                "group": "",
                "kind": "Service",
                "name": lbl.object_name(md.metadata["name"]),
                "port": HTTP_PORT,
                "weight": 1,
            }
        ],
        "timeouts": {"request": f"{routing.request_timeout_seconds}s"},
    }
    if routing.path_prefix != "/":
        rule["filters"] = [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            }
        ]
    spec: dict[str, Any] = {"parentRefs": parents, "rules": [rule]}
    if routing.hostnames:
        spec["hostnames"] = list(routing.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": model_metadata(md),
        "spec": spec,
    }
