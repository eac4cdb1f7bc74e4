"""Kubernetes IO for a model's disruption budget, network policy, route and Inference Extension
objects.

- `route_model`: before the model's objects are applied, ask the API server whether it serves
  HTTPRoutes (the Gateway API CRDs may be absent), the Inference Extension's InferencePool and
  InferenceObjective when the route asks for them, and whether the Gateways the route names (and
  the endpoint picker's Service the InferencePool names) exist;
  without the HTTPRoute kind the route is left out, without the Inference Extension's kinds their
  objects are and the route sends to the Service, and the Routed condition says what was found.
- `prune_traffic`: delete the model's budget, policy, route, InferencePool or InferenceObjective
  once it no longer renders one (routing, routing.inferencePool or access.networkPolicy turned
  off), if this ModelDeployment controls it.
- `list_traffic`: the resync's listing of them, to refresh the cache the pruning reads; it reads
  the API server's discovery of the optional kinds again (`rediscover`), so CRDs installed later
  are used from the next resync on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gpupool.api.conditions import now_rfc3339
from gpupool.controller.kube import (
    GATEWAY,
    HTTP_ROUTE,
    INFERENCE_EXTENSION_POOL,
    INFERENCE_OBJECTIVE,
    NETWORK_POLICY,
    POD_DISRUPTION_BUDGET,
    SERVICE,
    Kube,
    controlled_by,
)
from gpupool.render.labels import object_name
from gpupool.services.modeldeployment import ModelOutcome
from gpupool.services.traffic import (
    extension_pool_of,
    parent_gateways,
    route_of,
    routed_status,
    without_inference_extension,
    without_route,
)

if TYPE_CHECKING:
    from gpupool.controller.state import ClusterCache

TRAFFIC = (POD_DISRUPTION_BUDGET, NETWORK_POLICY, HTTP_ROUTE, INFERENCE_EXTENSION_POOL, INFERENCE_OBJECTIVE)
# Kinds whose CRDs a cluster may lack.
OPTIONAL = (HTTP_ROUTE, INFERENCE_EXTENSION_POOL, INFERENCE_OBJECTIVE)


def serves_inference_extension(kube: Kube) -> bool:
    return kube.serves(INFERENCE_EXTENSION_POOL) and kube.serves(INFERENCE_OBJECTIVE)


def rediscover(kube: Kube) -> None:
    """Read the API server's discovery of the optional kinds again (once per resync)."""
    for resource in OPTIONAL:
        kube.serves(resource, refresh=True)


def route_model(kube: Kube, outcome: ModelOutcome) -> ModelOutcome:
    """The outcome with the route kept only where the API server serves it, and Routed set."""
    if not outcome.apply:
        return outcome
    route = route_of(outcome.objects)
    if route is None:
        status = routed_status(outcome.status, None, served=True, missing=(), now=now_rfc3339())
        return outcome if status is outcome.status else replace(outcome, status=status)
    served = kube.serves(HTTP_ROUTE)
    extension_pool = extension_pool_of(outcome.objects)
    extension_served = extension_pool is None or serves_inference_extension(kube)
    missing = [key for key in parent_gateways(route) if served and kube.get(GATEWAY, *key) is None]
    picker_found = True
    if served and extension_pool is not None and extension_served:
        meta, picker = extension_pool["metadata"], extension_pool["spec"]["endpointPickerRef"]
        picker_found = kube.get(SERVICE, meta["namespace"], picker["name"]) is not None
    status = routed_status(
        outcome.status,
        route,
        served=served,
        missing=missing,
        now=now_rfc3339(),
        extension_pool=extension_pool,
        extension_served=extension_served,
        picker_found=picker_found,
    )
    objects = outcome.objects if extension_served else without_inference_extension(outcome.objects)
    if not served:
        objects = without_route(objects)
    return replace(outcome, objects=objects, status=status)


def prune_traffic(kube: Kube, cache: ClusterCache, body: dict[str, Any], outcome: ModelOutcome) -> int:
    """Delete the budget, policy, route or Inference Extension object the model held and no longer
    renders; the deletes made."""
    meta = body["metadata"]
    wanted = {(o["apiVersion"], o["kind"]) for o in outcome.objects}
    deleted = 0
    for resource in TRAFFIC:
        if (resource.api_version, resource.kind) in wanted:
            continue
        current = cache.child(resource.kind, meta["namespace"], object_name(meta["name"]))
        deleted += delete_controlled(kube, cache, body, current)
    return deleted


def delete_controlled(
    kube: Kube, cache: ClusterCache, body: dict[str, Any], held: dict[str, Any] | None
) -> int:
    """Delete `held` (the cache's copy of a child) when the model `body` controls it, and forget it;
    the deletes made."""
    if held is None:
        return 0
    if not controlled_by(held, body["metadata"].get("uid")):
        return 0
    deleted = 1 if kube.delete(held) else 0
    cache.forget(held)
    return deleted


def list_traffic(kube: Kube, cache: ClusterCache, label_selector: str) -> None:
    """Refresh the cache's budgets, policies, routes and Inference Extension objects (the optional
    kinds only where they are served)."""
    rediscover(kube)
    for resource in TRAFFIC:
        if resource in OPTIONAL and not kube.serves(resource):
            continue
        items, version = kube.list_at(resource, label_selector=label_selector)
        cache.refresh(resource.kind, items, version)
