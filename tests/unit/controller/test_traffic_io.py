"""route_model, prune_traffic and list_traffic: what the controller asks the API server about
routes, budgets and Inference Extension objects, and what it deletes, on a recording stand-in for
`Kube`."""

from __future__ import annotations

from typing import Any, cast

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.controller.kube import GATEWAY, HTTP_ROUTE, SERVICE, Kube, Resource
from gpupool.controller.state import ClusterCache
from gpupool.controller.traffic import list_traffic, prune_traffic, route_model
from gpupool.services.modeldeployment import PoolContext, decide

NOW = "2026-01-01T00:00:00Z"


class Recording:
    def __init__(
        self,
        served: bool,
        gateways: set[tuple[str, str]],
        extension: bool = True,
        services: frozenset[tuple[str, str]] = frozenset({("team-a", "chat-epp")}),
    ) -> None:
        self.served = served
        self.extension = extension
        self.gateways = gateways
        self.services = services
        self.gets: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []
        self.refreshed: list[str] = []
        self.listed: list[str] = []

    def serves(self, resource: Resource, refresh: bool = False) -> bool:
        if refresh:
            self.refreshed.append(resource.api_version)
        if resource.api_version.startswith("inference.networking."):
            return self.extension
        return self.served

    def list_at(self, resource: Resource, label_selector: str) -> tuple[list[dict[str, Any]], int]:
        self.listed.append(resource.api_version)
        return [], 1

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((resource.kind, namespace, name))
        assert resource in (GATEWAY, SERVICE)
        held = self.gateways if resource is GATEWAY else self.services
        return {"metadata": {"name": name}} if (namespace, name) in held else None

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


EXTENDED = {"routing": {"parentRefs": [{"name": "public", "namespace": "gw"}], "inferencePool": {}}}


def test_without_the_inference_extension_its_objects_are_dropped_and_the_route_sends_to_the_service() -> None:
    kube = Recording(served=True, gateways={("gw", "public")}, extension=False)
    result = route_model(cast(Kube, kube), outcome(**EXTENDED))
    kinds = [o["kind"] for o in result.objects]
    assert "InferencePool" not in kinds and "InferenceObjective" not in kinds
    route = next(o for o in result.objects if o["kind"] == "HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service"
    assert reason(result) == "InferenceExtensionMissing"
    # Without the kinds, the picker's Service is not looked for.
    assert ("Service", "team-a", "chat-epp") not in kube.gets
    kube = Recording(served=True, gateways={("gw", "public")})
    served = route_model(cast(Kube, kube), outcome(**EXTENDED))
    assert {"InferencePool", "InferenceObjective", "HTTPRoute"} <= {o["kind"] for o in served.objects}
    assert reason(served) == "Routed" and ("Service", "team-a", "chat-epp") in kube.gets


def test_a_missing_endpoint_picker_keeps_everything_and_says_so() -> None:
    kube = Recording(served=True, gateways={("gw", "public")}, services=frozenset())
    result = route_model(cast(Kube, kube), outcome(**EXTENDED))
    assert {"InferencePool", "InferenceObjective", "HTTPRoute"} <= {o["kind"] for o in result.objects}
    assert reason(result) == "EndpointPickerNotFound"


def test_without_the_gateway_api_the_extensions_objects_are_still_applied() -> None:
    result = route_model(cast(Kube, Recording(served=False, gateways=set())), outcome(**EXTENDED))
    kinds = [o["kind"] for o in result.objects]
    assert "HTTPRoute" not in kinds and "InferencePool" in kinds and reason(result) == "GatewayAPIMissing"


def test_prune_tells_the_extensions_pool_from_gpupools_and_deletes_what_is_turned_off() -> None:
    cache = ClusterCache()
    for kind, api_version in (
        ("InferencePool", "inference.networking.k8s.io/v1"),
        ("InferenceObjective", "inference.networking.x-k8s.io/v1alpha2"),
    ):
        cache.remember({**held(kind, "md-uid"), "apiVersion": api_version})
    kube = Recording(served=True, gateways=set())
    body = {"metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid"}}
    assert prune_traffic(cast(Kube, kube), cache, body, outcome(**EXTENDED)) == 0
    # Routed to the Service again: both go.
    deleted = prune_traffic(
        cast(Kube, kube), cache, body, outcome(routing={"parentRefs": [{"name": "public"}]})
    )
    assert deleted == 2 and sorted(kube.deleted) == ["InferenceObjective", "InferencePool"]


def test_the_resync_reads_discovery_again_and_lists_only_served_kinds() -> None:
    kube = Recording(served=True, gateways=set(), extension=False)
    list_traffic(cast(Kube, kube), ClusterCache(), "app.kubernetes.io/managed-by=gpupool")
    assert {"inference.networking.k8s.io/v1", "inference.networking.x-k8s.io/v1alpha2"} <= set(kube.refreshed)
    assert HTTP_ROUTE.api_version in kube.listed
    assert not any(v.startswith("inference.networking.") for v in kube.listed)
