"""Which clients, gateways and scrapers a model admits, which route it gets, and its Routed condition."""

from __future__ import annotations

from typing import Any

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentStatus
from gpupool.render.lws import WORKER_INDEX_LABEL
from gpupool.services.modeldeployment import PoolContext, decide
from gpupool.services.traffic import (
    extension_pool_of,
    route_of,
    routed_status,
    traffic_objects,
    without_inference_extension,
    without_route,
)

NOW = "2026-01-01T00:00:00Z"


def pool(name: str = "h100", **spec: Any) -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": name, "uid": f"{name}-uid"},
            "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", **spec},
        }
    )


def model(**spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {"model": {"name": "llama-3.1-8b"}, "pool": "h100", **spec}
    return ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": 2}, "spec": body}
    )


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def sources(policy: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [rule["from"] for rule in policy["spec"]["ingress"]]


def test_defaults_admit_the_own_namespace_prometheus_and_the_models_pods_and_route_nothing() -> None:
    objects = by_kind(traffic_objects(model(), [pool()]))
    assert set(objects) == {"PodDisruptionBudget", "NetworkPolicy"}
    clients, prometheus, own = sources(objects["NetworkPolicy"])
    assert clients == [{"podSelector": {}}]
    assert prometheus == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    assert own == [{"podSelector": {"matchLabels": {"gpupool.io/model-deployment": "chat"}}}]


def test_a_gateway_gets_a_route_and_its_proxies_are_admitted() -> None:
    routing = {"parentRefs": [{"name": "public", "namespace": "gateways"}, {"name": "internal"}]}
    objects = by_kind(traffic_objects(model(routing=routing), [pool()]))
    assert [p["name"] for p in objects["HTTPRoute"]["spec"]["parentRefs"]] == ["public", "internal"]
    _, gateway, _, _ = sources(objects["NetworkPolicy"])
    label = "gateway.networking.k8s.io/gateway-name"
    assert gateway == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateways"}},
            "podSelector": {"matchLabels": {label: "public"}},
        },
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}},
            "podSelector": {"matchLabels": {label: "internal"}},
        },
    ]


def test_the_pool_gives_what_the_model_leaves_unset() -> None:
    the_pool = pool(
        access={"clients": [{"namespace": "web"}], "prometheus": [{"namespace": "monitoring"}]},
        routing={"parentRefs": [{"name": "pool-gw", "namespace": "gateways"}]},
    )
    objects = by_kind(traffic_objects(model(access={"prometheus": [{"namespace": "obs"}]}), [the_pool]))
    assert objects["HTTPRoute"]["spec"]["parentRefs"][0]["name"] == "pool-gw"
    clients, _, prometheus, _ = sources(objects["NetworkPolicy"])
    assert clients == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}}}]
    assert prometheus == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}}]


def test_the_models_routing_replaces_the_pools() -> None:
    the_pool = pool(routing={"parentRefs": [{"name": "pool-gw"}]})
    objects = by_kind(traffic_objects(model(routing={"parentRefs": [{"name": "mine"}]}), [the_pool]))
    assert [p["name"] for p in objects["HTTPRoute"]["spec"]["parentRefs"]] == ["mine"]
    # An empty list of Gateways turns the pool's route off.
    assert "HTTPRoute" not in by_kind(traffic_objects(model(routing={"parentRefs": []}), [the_pool]))


def test_network_policy_can_be_turned_off_by_the_model_or_its_pool() -> None:
    assert "NetworkPolicy" not in by_kind(traffic_objects(model(access={"networkPolicy": False}), [pool()]))
    off = pool(access={"networkPolicy": False})
    assert "NetworkPolicy" not in by_kind(traffic_objects(model(), [off]))
    # The model's own access wins over the pool's switch.
    assert "NetworkPolicy" in by_kind(traffic_objects(model(access={"networkPolicy": True}), [off]))


def test_no_clients_leaves_only_gateway_prometheus_and_own_pods() -> None:
    objects = by_kind(traffic_objects(model(access={"clients": []}), [pool()]))
    assert len(sources(objects["NetworkPolicy"])) == 2


def test_decide_renders_them_once_for_a_model_of_several_pools() -> None:
    pools = {"h100": PoolContext(pool("h100")), "a100": PoolContext(pool("a100", accelerator="A100-80GB"))}
    md = model(pool=None, pools=[{"name": "h100"}, {"name": "a100"}], replicas=2)
    outcome = decide(md, pools, {}, NOW)
    kinds = [o["kind"] for o in outcome.objects]
    assert kinds.count("PodDisruptionBudget") == 1 and kinds.count("NetworkPolicy") == 1


def status_with(route: dict[str, Any] | None, *, served: bool, missing: list[tuple[str, str]]) -> Any:
    status = ModelDeploymentStatus(observed_generation=2)
    return routed_status(status, route, served=served, missing=missing, now=NOW)


def routed(status: ModelDeploymentStatus) -> Any:
    return find_condition(status.conditions, ConditionType.ROUTED)


def test_routed_condition_says_what_was_found() -> None:
    objects = traffic_objects(model(routing={"parentRefs": [{"name": "g", "namespace": "gw"}]}), [pool()])
    route = route_of(objects)
    assert route is not None and route_of(without_route(objects)) is None
    ok = routed(status_with(route, served=True, missing=[]))
    assert (ok.status, ok.reason, ok.observed_generation) == ("True", "Routed", 2)
    gone = routed(status_with(route, served=True, missing=[("gw", "g")]))
    assert (gone.status, gone.reason) == ("False", "GatewayNotFound")
    assert "gw/g" in gone.message and "spec.routing.parentRefs" in gone.message
    absent = routed(status_with(route, served=False, missing=[]))
    assert (absent.status, absent.reason) == ("False", "GatewayAPIMissing")


def test_no_route_no_condition_and_an_old_one_goes() -> None:
    assert routed(status_with(None, served=True, missing=[])) is None
    before = status_with(
        route_of(traffic_objects(model(routing={"parentRefs": [{"name": "g"}]}), [pool()])),
        served=True,
        missing=[],
    )
    after = routed_status(before, None, served=True, missing=(), now=NOW)
    assert routed(after) is None
    # Unchanged input, unchanged status: a resync writes nothing.
    assert routed_status(after, None, served=True, missing=(), now=NOW) is after


def test_a_preemptible_tier_gets_no_budget() -> None:
    # P2 of the default tiers is preemptible: its pods give way first, and a budget on them would
    # turn the scheduler's preemption onto a higher tier's pods. The API server fills in
    # spec.disruption's default, so even a stored model that seems to ask gets none.
    assert "PodDisruptionBudget" not in by_kind(traffic_objects(model(tier="P2"), [pool()]))
    asked = model(tier="P2", disruption={"maxUnavailable": 2})
    assert "PodDisruptionBudget" not in by_kind(traffic_objects(asked, [pool()]))
    assert "PodDisruptionBudget" in by_kind(traffic_objects(model(tier="P1"), [pool()]))


EXTENDED = {"parentRefs": [{"name": "g", "namespace": "gw"}], "inferencePool": {}}


def test_the_inference_extension_adds_its_pool_and_objective_and_the_route_sends_there() -> None:
    objects = by_kind(traffic_objects(model(routing=EXTENDED), [pool()]))
    assert set(objects) == {
        "PodDisruptionBudget",
        "NetworkPolicy",
        "InferencePool",
        "InferenceObjective",
        "HTTPRoute",
    }
    extension = objects["InferencePool"]
    assert extension["apiVersion"] == "inference.networking.k8s.io/v1"
    assert extension["spec"]["selector"] == {"matchLabels": {"gpupool.io/model-deployment": "chat"}}
    [backend] = objects["HTTPRoute"]["spec"]["rules"][0]["backendRefs"]
    assert (backend["kind"], backend["name"]) == ("InferencePool", "chat")
    # The pool's routing brings it to models that have none.
    from_pool = by_kind(traffic_objects(model(), [pool(routing=EXTENDED)]))
    assert "InferenceObjective" in from_pool


def test_objective_priority_ranks_the_tier_in_its_pool_or_is_as_given() -> None:
    def priority(md: ModelDeployment, *pools: InferencePool) -> int:
        objective = by_kind(traffic_objects(md, list(pools)))["InferenceObjective"]
        return int(objective["spec"]["priority"])

    assert [priority(model(routing=EXTENDED, tier=t), pool()) for t in ("P0", "P1", "P2")] == [2, 1, 0]
    tiers = [
        {"name": "gold", "priority": 500},
        {"name": "bronze", "priority": 10},
        {"name": "silver", "priority": 100},
    ]
    assert priority(model(routing=EXTENDED, tier="silver"), pool(tiers=tiers)) == 1
    given = {**EXTENDED, "inferencePool": {"priority": -5}}
    assert priority(model(routing=given, tier="P0"), pool()) == -5


def test_the_extension_pool_selects_what_the_service_selects() -> None:
    outcome = decide(model(routing=EXTENDED), {"h100": PoolContext(pool())}, {}, NOW)
    objects = by_kind(outcome.objects)
    assert (
        objects["InferencePool"]["spec"]["selector"]["matchLabels"] == objects["Service"]["spec"]["selector"]
    )


def test_over_several_nodes_the_extension_pool_selects_the_leaders_only() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "big", "namespace": "team-a", "uid": "u", "generation": 1},
            "spec": {"model": {"name": "llama-3.1-405b"}, "pool": "h100", "routing": EXTENDED},
        }
    )
    outcome = decide(md, {"h100": PoolContext(pool())}, {}, NOW)
    kinds = [o["kind"] for o in outcome.objects]
    assert "LeaderWorkerSet" in kinds
    selector = by_kind(outcome.objects)["InferencePool"]["spec"]["selector"]["matchLabels"]
    assert selector == {"gpupool.io/model-deployment": "big", WORKER_INDEX_LABEL: "0"}


def test_without_the_extensions_kinds_the_route_goes_back_to_the_service() -> None:
    routing = {**EXTENDED, "pathPrefix": "/chat"}
    objects = traffic_objects(model(routing=routing), [pool()])
    kept = without_inference_extension(objects)
    assert [o["kind"] for o in kept] == ["PodDisruptionBudget", "NetworkPolicy", "HTTPRoute"]
    plain = route_of(
        traffic_objects(model(routing={k: v for k, v in routing.items() if k != "inferencePool"}), [pool()])
    )
    assert route_of(kept) == plain
    # The objects themselves are left as they were.
    assert route_of(objects) != plain


def test_routed_condition_names_the_extension_or_its_absence() -> None:
    objects = traffic_objects(model(routing=EXTENDED), [pool()])
    route, extension = route_of(objects), extension_pool_of(objects)
    status = ModelDeploymentStatus(observed_generation=2)

    def verdict(**kwargs: Any) -> Any:
        return routed(
            routed_status(status, route, served=True, missing=[], now=NOW, extension_pool=extension, **kwargs)
        )

    ok = verdict()
    assert (ok.status, ok.reason) == ("True", "Routed")
    assert "InferencePool chat" in ok.message and "chat-epp port 9002" in ok.message
    absent = verdict(extension_served=False)
    assert (absent.status, absent.reason) == ("False", "InferenceExtensionMissing")
    assert "spec.routing.inferencePool" in absent.message and "Service" in absent.message
    no_picker = verdict(picker_found=False)
    assert (no_picker.status, no_picker.reason) == ("False", "EndpointPickerNotFound")
    assert (
        "chat-epp does not exist" in no_picker.message and "fails the model's requests" in no_picker.message
    )
    # A missing kind says so first: the picker is not looked for then.
    assert verdict(extension_served=False, picker_found=False).reason == "InferenceExtensionMissing"


def test_the_endpoint_picker_is_admitted_with_the_gateways_proxies() -> None:
    _, gateway, _, _ = sources(by_kind(traffic_objects(model(routing=EXTENDED), [pool()]))["NetworkPolicy"])
    assert gateway[-1] == {"podSelector": {"matchLabels": {"inferencepool": "chat-epp"}}}
    named = {**EXTENDED, "inferencePool": {"endpointPicker": {"name": "shared-epp"}}}
    _, gateway, _, _ = sources(by_kind(traffic_objects(model(routing=named), [pool()]))["NetworkPolicy"])
    assert gateway[-1] == {"podSelector": {"matchLabels": {"inferencepool": "shared-epp"}}}
    # access.gateway, when given, is taken as it is.
    given = model(routing=EXTENDED, access={"gateway": [{"namespace": "edge"}]})
    _, gateway, _, _ = sources(by_kind(traffic_objects(given, [pool()]))["NetworkPolicy"])
    assert gateway == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}]
