"""Decide the objects that guard and route a model: its disruption budget, network policy and route.

Pure. A model's `spec.access` and `spec.routing` win, access field by field; what they leave unset
comes from the first of its pools (in the order of `spec.pool`/`spec.pools`) that sets it, then
from the defaults: clients from the model's own namespace, the proxy pods of the Gateways it is
routed from, Prometheus pods labelled `app.kubernetes.io/name=prometheus` anywhere, and no route.

A route with `routing.inferencePool` comes with the model's Gateway API Inference Extension
InferencePool and InferenceObjective, and sends to the InferencePool. The objective's priority,
unless the spec sets one, is the model's tier's rank in its pool: the number of the pool's tiers
whose PriorityClass value is lower (with the default tiers P0 2, P1 1, P2 0; 0 is also what the
endpoint picker gives a request that names no objective).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpupool.api.conditions import ConditionStatus, ConditionType, Reason, set_condition
from gpupool.api.traffic import (
    AccessPeer,
    AccessSpec,
    InferenceExtensionSpec,
    RoutingSpec,
    parent_namespace,
)
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentStatus
from gpupool.render.disruption import render_disruption_budget
from gpupool.render.httproute import render_http_route, service_backend
from gpupool.render.inference_extension import (
    INFERENCE_POOL_API_VERSION,
    INFERENCE_POOL_KIND,
    OBJECTIVE_API_VERSION,
    OBJECTIVE_HEADER,
    OBJECTIVE_KIND,
    endpoint_picker_name,
    render_inference_extension_pool,
    render_inference_objective,
)
from gpupool.render.labels import selector_labels
from gpupool.render.networkpolicy import render_network_policy

# GEP-1762 (Gateway API, in-cluster Gateway deployments): implementations MUST label what they
# generate for a Gateway, its proxy pods included, with this label and the Gateway's name.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
# The label the Inference Extension's inferencepool chart puts on its endpoint picker's pods, with
# the picker's Service name (config/charts/inferencepool/templates/_helpers.tpl, v1.3.0).
ENDPOINT_PICKER_POD_LABEL = "inferencepool"
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
    """The proxy pods of each Gateway the model is routed from (GEP-1762's label), and with
    routing.inferencePool its endpoint picker's pods, which read the engines' metrics."""
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
    if routing.inference_pool is not None and routing.parent_refs:
        picker = endpoint_picker_name(md, routing.inference_pool)
        peers.append(AccessPeer(pod_selector={ENDPOINT_PICKER_POD_LABEL: picker}))
    return peers


def objective_priority(
    md: ModelDeployment, pools: Sequence[InferencePool], spec: InferenceExtensionSpec
) -> int:
    """The priority of the model's InferenceObjective: the spec's, else how many tiers of the
    first of its pools that has its tier rank below it (by PriorityClass value)."""
    if spec.priority is not None:
        return spec.priority
    for pool in pools:
        tier = pool.spec.tier(md.spec.tier)
        if tier is not None:
            return sum(1 for t in pool.spec.tiers if t.priority < tier.priority)
    return 0


def traffic_objects(
    md: ModelDeployment, pools: Sequence[InferencePool], serving: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The model's PodDisruptionBudget, its NetworkPolicy (unless access.networkPolicy is false)
    and, when it is routed from some Gateway, its HTTPRoute (with routing.inferencePool, its
    Inference Extension InferencePool and InferenceObjective too). `pools`: the pools it runs on,
    in order of preference; `serving`: the selector of its serving pods, its Service's (by default
    the model's identity label)."""
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
        extension = routing.inference_pool
        if extension is not None:
            selector = selector_labels(md.metadata["name"]) if serving is None else serving
            objects.append(render_inference_extension_pool(md, extension, selector))
            objects.append(render_inference_objective(md, objective_priority(md, pools, extension)))
        objects.append(render_http_route(md, routing))
    return objects


def route_of(objects: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == "HTTPRoute"), None)


def without_route(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] != "HTTPRoute"]


_EXTENSION_POOL = (INFERENCE_POOL_API_VERSION, INFERENCE_POOL_KIND)
_OBJECTIVE = (OBJECTIVE_API_VERSION, OBJECTIVE_KIND)


def is_inference_extension(obj: dict[str, Any]) -> bool:
    """An Inference Extension object (not gpupool's own InferencePool kind)."""
    return (obj["apiVersion"], obj["kind"]) in (_EXTENSION_POOL, _OBJECTIVE)


def extension_pool_of(objects: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((o for o in objects if (o["apiVersion"], o["kind"]) == _EXTENSION_POOL), None)


def without_inference_extension(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects without the Inference Extension's, the route sending to the model's Service
    again (its objective header dropped): what a cluster without those kinds can take."""
    kept: list[dict[str, Any]] = []
    for obj in objects:
        if is_inference_extension(obj):
            continue
        if obj["kind"] == "HTTPRoute":
            obj = _to_service(obj)
        kept.append(obj)
    return kept


def _to_service(route: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in route["spec"]["rules"]:
        backends = [
            service_backend(ref["name"]) if ref.get("kind") == INFERENCE_POOL_KIND else ref
            for ref in rule["backendRefs"]
        ]
        filters = [f for f in rule.get("filters") or [] if not _names_objective(f)]
        changed = {**rule, "backendRefs": backends, "filters": filters}
        if not filters:
            del changed["filters"]
        rules.append(changed)
    return {**route, "spec": {**route["spec"], "rules": rules}}


def _names_objective(route_filter: dict[str, Any]) -> bool:
    modifier = route_filter.get("requestHeaderModifier") or {}
    return any(h.get("name") == OBJECTIVE_HEADER for h in modifier.get("set") or [])


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
    extension_pool: dict[str, Any] | None = None,
    extension_served: bool = True,
    picker_found: bool = True,
) -> ModelDeploymentStatus:
    """The status with its Routed condition: none without a route; False when the API server has no
    HTTPRoute kind (the route is not applied), when the route asks for an Inference Extension
    InferencePool (`extension_pool`) and the API server lacks its kinds (the route is applied to
    the Service meanwhile), when a Gateway is missing (the route is applied and attaches when the
    Gateway appears), or when the endpoint picker's Service is (`picker_found` False: everything is
    applied); True otherwise. Ready does not depend on it: the model serves through its
    Service either way."""
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
    elif extension_pool is not None and not extension_served:
        verdict = (
            ConditionStatus.FALSE,
            Reason.INFERENCE_EXTENSION_MISSING,
            f"the API server has no {INFERENCE_POOL_API_VERSION} {INFERENCE_POOL_KIND} or "
            f"{OBJECTIVE_API_VERSION} {OBJECTIVE_KIND} kind: install the Gateway API Inference "
            f"Extension CRDs, or remove spec.routing.inferencePool (HTTPRoute {name} sends to the "
            "model's Service meanwhile)",
        )
    elif missing:
        absent = ", ".join(f"{ns}/{gw}" for ns, gw in missing)
        verdict = (
            ConditionStatus.FALSE,
            Reason.GATEWAY_NOT_FOUND,
            f"Gateway {absent} does not exist: create it or fix spec.routing.parentRefs; HTTPRoute "
            f"{name} is applied and attaches when it appears",
        )
    elif extension_pool is not None and not picker_found:
        picker = extension_pool["spec"]["endpointPickerRef"]
        verdict = (
            ConditionStatus.FALSE,
            Reason.ENDPOINT_PICKER_NOT_FOUND,
            f"the endpoint picker's Service {picker['name']} does not exist: run the picker for "
            f"InferencePool {extension_pool['metadata']['name']} (docs/rollouts.md) or fix "
            "spec.routing.inferencePool.endpointPicker.name; with failureMode "
            f"{picker['failureMode']} the Gateway "
            + ("fails the model's requests" if picker["failureMode"] == "FailClose" else "picks pods itself")
            + " until the picker answers",
        )
    else:
        message = f"HTTPRoute {name} attaches to Gateway {gateways}"
        if extension_pool is not None:
            picker = extension_pool["spec"]["endpointPickerRef"]
            message += (
                f" and sends to InferencePool {extension_pool['metadata']['name']}, whose endpoint "
                f"picker is Service {picker['name']} port {picker['port']['number']}"
            )
        verdict = (ConditionStatus.TRUE, Reason.ROUTED, message)
    conditions = set_condition(status.conditions, ConditionType.ROUTED, *verdict, generation, now)
    return status.model_copy(update={"conditions": conditions})
