"""route_model and prune_traffic: what the controller asks the API server about routes and
budgets, and what it deletes, on a recording stand-in for `Kube`."""

from __future__ import annotations

from typing import Any, cast

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.controller.kube import GATEWAY, Kube, Resource
from gpupool.controller.state import ClusterCache
from gpupool.controller.traffic import prune_traffic, route_model
from gpupool.services.modeldeployment import PoolContext, decide

NOW = "2026-01-01T00:00:00Z"


class Recording:
    def __init__(self, served: bool, gateways: set[tuple[str, str]]) -> None:
        self.served = served
        self.gateways = gateways
        self.gets: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []

    def serves(self, resource: Resource, refresh: bool = False) -> bool:
        return self.served

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((resource.kind, namespace, name))
        assert resource is GATEWAY
        return {"metadata": {"name": name}} if (namespace, name) in self.gateways else None

    def delete(self, obj: dict[str, Any]) -> bool:
        self.deleted.append(obj["kind"])
        return True


def outcome(**spec: Any) -> Any:
    pool = InferencePool.model_validate(
        {"metadata": {"name": "h100", "uid": "p"}, "spec": {"vendor": "nvidia", "accelerator": "H100-80GB"}}
    )
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": 1},
            "spec": {"model": {"name": "llama-3.1-8b"}, "pool": "h100", **spec},
        }
    )
    return decide(md, {"h100": PoolContext(pool)}, {}, NOW)


ROUTED = {"routing": {"parentRefs": [{"name": "public", "namespace": "gw"}]}}


def reason(result: Any) -> str | None:
    found = find_condition(result.status.conditions, ConditionType.ROUTED)
    return None if found is None else found.reason


def test_without_the_gateway_api_the_route_is_dropped_and_no_gateway_is_read() -> None:
    kube = Recording(served=False, gateways=set())
    result = route_model(cast(Kube, kube), outcome(**ROUTED))
    assert "HTTPRoute" not in [o["kind"] for o in result.objects]
    assert reason(result) == "GatewayAPIMissing" and kube.gets == []


def test_a_missing_gateway_keeps_the_route_and_says_so() -> None:
    kube = Recording(served=True, gateways=set())
    result = route_model(cast(Kube, kube), outcome(**ROUTED))
    assert "HTTPRoute" in [o["kind"] for o in result.objects]
    assert reason(result) == "GatewayNotFound" and kube.gets == [("Gateway", "gw", "public")]
    found = route_model(cast(Kube, Recording(served=True, gateways={("gw", "public")})), outcome(**ROUTED))
    assert reason(found) == "Routed"


def test_no_routing_reads_nothing() -> None:
    kube = Recording(served=True, gateways=set())
    result = route_model(cast(Kube, kube), outcome())
    assert reason(result) is None and kube.gets == []


def held(kind: str, uid: str, resource_version: str = "5") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": "chat",
            "namespace": "team-a",
            "resourceVersion": resource_version,
            "ownerReferences": [{"uid": uid, "controller": True}],
        },
    }


def test_prune_deletes_only_what_the_model_controls_and_no_longer_renders() -> None:
    cache = ClusterCache()
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "HTTPRoute"):
        cache.remember(held(kind, "md-uid"))
    kube = Recording(served=True, gateways=set())
    body = {"metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid"}}
    # Policy off, no route: the budget stays, the other two go.
    deleted = prune_traffic(cast(Kube, kube), cache, body, outcome(access={"networkPolicy": False}))
    assert deleted == 2 and sorted(kube.deleted) == ["HTTPRoute", "NetworkPolicy"]
    assert cache.child("NetworkPolicy", "team-a", "chat") is None
    # Another owner's object of the same name is left alone.
    cache.remember(held("NetworkPolicy", "someone-else", "9"))
    assert prune_traffic(cast(Kube, kube), cache, body, outcome(access={"networkPolicy": False})) == 0
