"""The NetworkPolicy of a model: who may call it.

Ingress only (engines download weights and reach their peers outward freely). Admitted, each to its
ports only:
- the clients of `access.clients` to the API ports (http; Triton's grpc too);
- the Gateway's proxy pods to the http port;
- Prometheus to the metrics port (vLLM serves /metrics on its API port, Triton on its own);
- the model's own pods, to any port (the processes of one multi-node instance talk to each other).
Everything else is denied once the policy selects the pods. A rule is rendered only with at least
one peer: an ingress rule without `from` would admit every source.
"""

from __future__ import annotations

from typing import Any

from gpupool.api.traffic import AccessPeer
from gpupool.api.v1alpha1 import EngineType, ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.owned import model_metadata
from gpupool.render.vllm import GRPC_PORT, HTTP_PORT, METRICS_PORT

# The label the API server sets on every namespace (Kubernetes 1.22 and later), which a
# namespaceSelector uses to pick one namespace by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _port(number: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": number}


def api_ports(engine: EngineType) -> list[int]:
    return [HTTP_PORT, GRPC_PORT] if engine is EngineType.TRITON else [HTTP_PORT]


def metrics_port(engine: EngineType) -> int:
    return METRICS_PORT if engine is EngineType.TRITON else HTTP_PORT


def render_peer(peer: AccessPeer) -> dict[str, Any]:
    """A NetworkPolicyPeer: a named namespace or a namespace selector, and a pod selector; with
    neither namespace field, pods of the policy's own namespace."""
    rendered: dict[str, Any] = {}
    if peer.namespace is not None:
        rendered["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}
    elif peer.namespace_selector is not None:
        selector = dict(sorted(peer.namespace_selector.items()))
        rendered["namespaceSelector"] = {"matchLabels": selector} if selector else {}
    if peer.pod_selector or "namespaceSelector" not in rendered:
        selector = dict(sorted((peer.pod_selector or {}).items()))
        rendered["podSelector"] = {"matchLabels": selector} if selector else {}
    return rendered


def _rule(peers: list[AccessPeer], ports: list[int]) -> list[dict[str, Any]]:
    if not peers:
        return []
    return [{"from": [render_peer(p) for p in peers], "ports": [_port(n) for n in ports]}]


def render_network_policy(
    md: ModelDeployment,
    *,
    clients: list[AccessPeer],
    gateway: list[AccessPeer],
    prometheus: list[AccessPeer],
) -> dict[str, Any]:
    """The model's NetworkPolicy from the peers resolved for it (the spec's, the pool's or the
    defaults: `gpupool.services.traffic`)."""
    engine = md.spec.engine.type
    own = lbl.selector_labels(md.metadata["name"])
    ingress = [
        *_rule(clients, api_ports(engine)),
        *_rule(gateway, [HTTP_PORT]),
        *_rule(prometheus, [metrics_port(engine)]),
        {"from": [{"podSelector": {"matchLabels": dict(own)}}]},
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": model_metadata(md),
        "spec": {
            "podSelector": {"matchLabels": dict(own)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
