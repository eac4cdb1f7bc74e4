"""The disruption budget, network policy and route rendered for a model."""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.api.traffic import AccessPeer, ParentReference, RoutingSpec
from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.render.disruption import render_disruption_budget
from gpupool.render.httproute import render_http_route
from gpupool.render.networkpolicy import render_network_policy, render_peer

IDENTITY = {"gpupool.io/model-deployment": "chat"}


def model(uid: str | None = "md-uid", **spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {"model": {"name": "llama-3.1-8b"}, "pool": "h100", **spec}
    meta: dict[str, Any] = {"name": "chat", "namespace": "team-a"}
    if uid:
        meta["uid"] = uid
    return ModelDeployment.model_validate({"metadata": meta, "spec": body})


def test_budget_allows_one_eviction_by_default_and_selects_the_identity_only() -> None:
    pdb = render_disruption_budget(model())
    assert pdb["apiVersion"] == "policy/v1" and pdb["kind"] == "PodDisruptionBudget"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": IDENTITY}
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    [owner] = pdb["metadata"]["ownerReferences"]
    assert owner["uid"] == "md-uid" and owner["controller"] is True and owner["kind"] == "ModelDeployment"
    assert pdb["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gpupool"
    assert "gpupool.io/pool" not in pdb["metadata"]["labels"]


@pytest.mark.parametrize("value", [0, 3, "25%", "100%"])
def test_budget_takes_the_count_or_percentage_as_written(value: int | str) -> None:
    pdb = render_disruption_budget(model(disruption={"maxUnavailable": value}))
    assert pdb["spec"]["maxUnavailable"] == value


def test_preview_of_a_file_has_no_owner_reference() -> None:
    assert "ownerReferences" not in render_disruption_budget(model(uid=None))["metadata"]


def test_peers_render_as_network_policy_peers() -> None:
    assert render_peer(AccessPeer()) == {"podSelector": {}}
    assert render_peer(AccessPeer(namespace="web")) == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}}
    }
    assert render_peer(AccessPeer(namespace_selector={}, pod_selector={"app": "x"})) == {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app": "x"}},
    }
    assert render_peer(AccessPeer(pod_selector={"app": "x"})) == {
        "podSelector": {"matchLabels": {"app": "x"}}
    }


def test_policy_admits_each_peer_to_its_ports_and_the_models_own_pods() -> None:
    policy = render_network_policy(
        model(),
        clients=[AccessPeer(namespace="web")],
        gateway=[AccessPeer(namespace="gw", pod_selector={"gateway.networking.k8s.io/gateway-name": "g"})],
        prometheus=[AccessPeer(namespace="monitoring")],
    )
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": IDENTITY}
    assert spec["policyTypes"] == ["Ingress"]
    clients, gateway, prometheus, own = spec["ingress"]
    assert clients["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert gateway["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert prometheus["ports"] == [{"protocol": "TCP", "port": 8000}]  # vLLM's /metrics is on its API port
    assert own == {"from": [{"podSelector": {"matchLabels": IDENTITY}}]}


def test_triton_clients_reach_http_and_grpc_and_prometheus_only_metrics() -> None:
    policy = render_network_policy(
        model(engine={"type": "triton"}),
        clients=[AccessPeer()],
        gateway=[],
        prometheus=[AccessPeer(namespace="monitoring")],
    )
    clients, prometheus, _ = policy["spec"]["ingress"]
    assert [p["port"] for p in clients["ports"]] == [8000, 8001]
    assert [p["port"] for p in prometheus["ports"]] == [8002]


def test_no_peer_means_no_rule_never_a_rule_without_from() -> None:
    policy = render_network_policy(model(), clients=[], gateway=[], prometheus=[])
    # An ingress rule without `from` admits every source: the only rule left is the model's own pods.
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": IDENTITY}}]}]
    assert all(rule.get("from") for rule in policy["spec"]["ingress"])


def test_route_sends_the_prefix_to_the_service_with_a_long_timeout() -> None:
    routing = RoutingSpec(
        parent_refs=[ParentReference(name="public", namespace="gateways", section_name="https")],
        hostnames=["chat.example.com"],
        path_prefix="/chat",
    )
    route = render_http_route(model(), routing)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    spec = route["spec"]
    assert spec["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
            "sectionName": "https",
        }
    ]
    assert spec["hostnames"] == ["chat.example.com"]
    [rule] = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/chat"}}]
    assert rule["backendRefs"][0] | {} == {
        "group": "",
        "kind": "Service",
        "name": "chat",
        "port": 8000,
        "weight": 1,
    }
    assert rule["timeouts"] == {"request": "600s"}
    assert rule["filters"][0]["urlRewrite"]["path"] == {
        "type": "ReplacePrefixMatch",
        "replacePrefixMatch": "/",
    }


def test_route_at_the_root_rewrites_nothing_and_defaults_the_gateway_namespace() -> None:
    route = render_http_route(model(), RoutingSpec(parent_refs=[ParentReference(name="g")]))
    assert route["spec"]["parentRefs"][0]["namespace"] == "team-a"
    assert "filters" not in route["spec"]["rules"][0]
    assert "hostnames" not in route["spec"]


def test_route_needs_a_gateway() -> None:
    with pytest.raises(ValueError, match="parentRef"):
        render_http_route(model(), RoutingSpec())
