"""Decide the objects that guard and route a model: its disruption budget, network policy and route.

Pure. A model's `spec.access` and `spec.routing` win, access field by field; what they leave unset
comes from the first of its pools (in the order of `spec.pool`/`spec.pools`) that sets it, then
from the defaults: clients from the model's own namespace, the proxy pods of the Gateways it is
routed from, Prometheus pods labelled `app.kubernetes.io/name=prometheus` anywhere, and no route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpupool.api.conditions import ConditionStatus, ConditionType, Reason, set_condition
from gpupool.api.traffic import AccessPeer, AccessSpec, RoutingSpec, parent_namespace
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentStatus
from gpupool.render.disruption import render_disruption_budget
from gpupool.render.httproute import render_http_route
from gpupool.render.networkpolicy import render_network_policy

# GEP-1762 (Gateway API, in-cluster Gateway deployments): implementations MUST label what they
# generate for a Gateway, its proxy pods included, with this label and the Gateway's name.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
# The label prometheus-operator and the prometheus-community chart put on Prometheus server pods.
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}


def default_clients() -> list[AccessPeer]:
    """Every pod of the model's own namespace."""
    return [AccessPeer()]


def default_prometheus() -> list[AccessPeer]:
    return [AccessPeer(namespace_selector={}, pod_selector=dict(PROMETHEUS_POD_LABELS))]


def routing_of(md: ModelDeployment, pools: Sequence[InferencePool]) -> RoutingSpec | None:
    """The model's routing, else its first pool's that has one; None: no route."""
    if md.spec.routing is not None:
        return md.spec.routing
    return next((p.spec.routing for p in pools if p.spec.routing is not None), None)


def _pool_access(pools: Sequence[InferencePool]) -> list[AccessSpec]:
    return [p.spec.access for p in pools if p.spec.access is not None]


def gateway_peers(md: ModelDeployment, routing: RoutingSpec | None) -> list[AccessPeer]:
    """The proxy pods of each Gateway the model is routed from (GEP-1762's label)."""
    if routing is None:
        return []
    namespace = md.metadata.get("namespace", "")
    peers: list[AccessPeer] = []
    for parent in routing.parent_refs:
        peer = AccessPeer(
            namespace=parent_namespace(parent, namespace), pod_selector={GATEWAY_NAME_LABEL: parent.name}
        )
        if peer not in peers:
            peers.append(peer)
    return peers


def traffic_objects(md: ModelDeployment, pools: Sequence[InferencePool]) -> list[dict[str, Any]]:
    """The model's PodDisruptionBudget, its NetworkPolicy (unless access.networkPolicy is false)
    and, when it is routed from some Gateway, its HTTPRoute. `pools`: the pools it runs on, in
    order of preference."""
    objects = []
    # A preemptible tier's pods are the first to give way (docs/placement.md): a budget would make
    # the scheduler's preemption pick a higher tier's pods instead, so they get none.
    if not any(t.name == md.spec.tier and t.preemptible for p in pools for t in p.spec.tiers):
        objects.append(render_disruption_budget(md))
    routing = routing_of(md, pools)
    chain = [a for a in (md.spec.access, *_pool_access(pools)) if a is not None]
    # The switch comes from the first access that is set (the model's, else a pool's).
    if chain[0].network_policy if chain else True:
        clients = next((a.clients for a in chain if a.clients is not None), None)
        gateway = next((a.gateway for a in chain if a.gateway is not None), None)
        prometheus = next((a.prometheus for a in chain if a.prometheus is not None), None)
        objects.append(
            render_network_policy(
                md,
                clients=default_clients() if clients is None else clients,
                gateway=gateway_peers(md, routing) if gateway is None else gateway,
                prometheus=default_prometheus() if prometheus is None else prometheus,
            )
        )
    if routing is not None and routing.parent_refs:
        objects.append(render_http_route(md, routing))
    return objects


def route_of(objects: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == "HTTPRoute"), None)


def without_route(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] != "HTTPRoute"]


def parent_gateways(route: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, name) of every Gateway the route names, in order, once each."""
    seen: list[tuple[str, str]] = []
    for ref in route["spec"]["parentRefs"]:
        key = (ref["namespace"], ref["name"])
        if key not in seen:
            seen.append(key)
    return seen


def routed_status(
    status: ModelDeploymentStatus,
    route: dict[str, Any] | None,
    *,
    served: bool,
    missing: Sequence[tuple[str, str]],
    now: str,
) -> ModelDeploymentStatus:
    """The status with its Routed condition: none without a route; False when the API server has no
    HTTPRoute kind (the route is not applied) or a Gateway is missing (the route is applied and
    attaches when the Gateway appears); True otherwise. Ready does not depend on it: the model
    serves through its Service either way."""
    generation = status.observed_generation
    if route is None:
        kept = [c for c in status.conditions if c.type != ConditionType.ROUTED.value]
        return (
            status if len(kept) == len(status.conditions) else status.model_copy(update={"conditions": kept})
        )
    name = route["metadata"]["name"]
    gateways = ", ".join(f"{ns}/{gw}" for ns, gw in parent_gateways(route))
    if not served:
        verdict = (
            ConditionStatus.FALSE,
            Reason.GATEWAY_API_MISSING,
            "the API server has no gateway.networking.k8s.io/v1 HTTPRoute kind: install the Gateway "
            "API CRDs, or remove spec.routing (the model is served through its Service meanwhile)",
        )
    elif missing:
        absent = ", ".join(f"{ns}/{gw}" for ns, gw in missing)
        verdict = (
            ConditionStatus.FALSE,
            Reason.GATEWAY_NOT_FOUND,
            f"Gateway {absent} does not exist: create it or fix spec.routing.parentRefs; HTTPRoute "
            f"{name} is applied and attaches when it appears",
        )
    else:
        verdict = (ConditionStatus.TRUE, Reason.ROUTED, f"HTTPRoute {name} attaches to Gateway {gateways}")
    conditions = set_condition(status.conditions, ConditionType.ROUTED, *verdict, generation, now)
    return status.model_copy(update={"conditions": conditions})
