"""Kubernetes IO for a model's disruption budget, network policy and route.

- `route_model`: before the model's objects are applied, ask the API server whether it serves
  HTTPRoutes (the Gateway API CRDs may be absent) and whether the Gateways the route names exist;
  without the kind the route is left out, and the Routed condition says what was found.
- `prune_traffic`: delete the model's budget, policy or route once it no longer renders one (routing
  or access.networkPolicy turned off), if this ModelDeployment controls it.
- `list_traffic`: the resync's listing of them, to refresh the cache the pruning reads; it reads
  the API server's discovery of HTTPRoutes again, so Gateway API CRDs installed later are used
  from the next resync on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gpupool.api.conditions import now_rfc3339
from gpupool.controller.kube import GATEWAY, HTTP_ROUTE, NETWORK_POLICY, POD_DISRUPTION_BUDGET, Kube
from gpupool.render.labels import object_name
from gpupool.services.modeldeployment import ModelOutcome
from gpupool.services.traffic import parent_gateways, route_of, routed_status, without_route

if TYPE_CHECKING:
    from gpupool.controller.state import ClusterCache

TRAFFIC = (POD_DISRUPTION_BUDGET, NETWORK_POLICY, HTTP_ROUTE)


def route_model(kube: Kube, outcome: ModelOutcome) -> ModelOutcome:
    """The outcome with the route kept only where the API server serves it, and Routed set."""
    if not outcome.apply:
        return outcome
    route = route_of(outcome.objects)
    if route is None:
        status = routed_status(outcome.status, None, served=True, missing=(), now=now_rfc3339())
        return outcome if status is outcome.status else replace(outcome, status=status)
    served = kube.serves(HTTP_ROUTE)
    missing = [key for key in parent_gateways(route) if served and kube.get(GATEWAY, *key) is None]
    status = routed_status(outcome.status, route, served=served, missing=missing, now=now_rfc3339())
    objects = outcome.objects if served else without_route(outcome.objects)
    return replace(outcome, objects=objects, status=status)


def prune_traffic(kube: Kube, cache: ClusterCache, body: dict[str, Any], outcome: ModelOutcome) -> int:
    """Delete the budget, policy or route the model held and no longer renders; the deletes made."""
    meta = body["metadata"]
    wanted = {o["kind"] for o in outcome.objects}
    deleted = 0
    for resource in TRAFFIC:
        if resource.kind in wanted:
            continue
        current = cache.child(resource.kind, meta["namespace"], object_name(meta["name"]))
        if current is None:
            continue
        owners = current["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == meta.get("uid") and o.get("controller") for o in owners):
            continue
        if kube.delete(current):
            deleted += 1
        cache.forget(current)
    return deleted


def list_traffic(kube: Kube, cache: ClusterCache, label_selector: str) -> None:
    """Refresh the cache's budgets, policies and routes (routes only where the kind is served)."""
    for resource in TRAFFIC:
        if resource is HTTP_ROUTE and not kube.serves(HTTP_ROUTE, refresh=True):
            continue
        items, version = kube.list_at(resource, label_selector=label_selector)
        cache.refresh(resource.kind, items, version)
