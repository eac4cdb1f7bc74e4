"""The Gateway API Inference Extension objects of a model, and where its route sends."""

from __future__ import annotations

from typing import Any

from gpupool.api.traffic import InferenceExtensionSpec, RoutingSpec
from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.render.httproute import render_http_route, route_backend
from gpupool.render.inference_extension import (
    endpoint_picker_name,
    render_inference_extension_pool,
    render_inference_objective,
)

IDENTITY = {"gpupool.io/model-deployment": "chat"}


def model(name: str = "chat") -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": "team-a", "uid": "md-uid"},
            "spec": {"model": {"name": "llama-3.1-8b"}, "pool": "h100"},
        }
    )


def routing(**inference_pool: Any) -> RoutingSpec:
    return RoutingSpec.model_validate({"parentRefs": [{"name": "g"}], "inferencePool": inference_pool})


def test_pool_selects_the_serving_pods_on_the_engine_port_and_names_the_default_picker() -> None:
    spec = InferenceExtensionSpec()
    pool = render_inference_extension_pool(model(), spec, IDENTITY)
    assert (pool["apiVersion"], pool["kind"]) == ("inference.networking.k8s.io/v1", "InferencePool")
    assert pool["metadata"]["name"] == "chat" and pool["metadata"]["namespace"] == "team-a"
    [owner] = pool["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ModelDeployment", "md-uid", True)
    assert pool["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gpupool"
    assert pool["spec"] == {
        "selector": {"matchLabels": IDENTITY},
        "targetPorts": [{"number": 8000}],
        "endpointPickerRef": {
            "group": "",
            "kind": "Service",
            "name": "chat-epp",
            "port": {"number": 9002},
            "failureMode": "FailClose",
        },
    }


def test_the_picker_is_as_the_spec_names_it() -> None:
    spec = InferenceExtensionSpec.model_validate(
        {"endpointPicker": {"name": "shared-picker", "port": 9102, "failureMode": "FailOpen"}}
    )
    ref = render_inference_extension_pool(model(), spec, IDENTITY)["spec"]["endpointPickerRef"]
    assert (ref["name"], ref["port"], ref["failureMode"]) == ("shared-picker", {"number": 9102}, "FailOpen")


def test_a_long_model_name_gives_the_services_name_to_the_pool_and_the_picker() -> None:
    md = model("Chat_Assistant-" + "x" * 70)
    pool = render_inference_extension_pool(md, InferenceExtensionSpec(), IDENTITY)
    name = pool["metadata"]["name"]
    assert len(name) <= 63 and endpoint_picker_name(md, InferenceExtensionSpec()) == f"{name}-epp"


def test_objective_points_at_the_pool_with_the_priority() -> None:
    objective = render_inference_objective(model(), 2)
    assert (objective["apiVersion"], objective["kind"]) == (
        "inference.networking.x-k8s.io/v1alpha2",
        "InferenceObjective",
    )
    assert objective["metadata"]["name"] == "chat"
    assert objective["spec"] == {
        "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "chat"},
        "priority": 2,
    }


def test_the_route_sends_to_the_pool_and_names_the_objective_on_each_request() -> None:
    assert route_backend(model(), routing()) == {
        "group": "inference.networking.k8s.io",
        "kind": "InferencePool",
        "name": "chat",
        "weight": 1,
    }
    spec = RoutingSpec.model_validate(
        {"parentRefs": [{"name": "g"}], "pathPrefix": "/chat", "inferencePool": {}}
    )
    [rule] = render_http_route(model(), spec)["spec"]["rules"]
    assert rule["backendRefs"] == [route_backend(model(), spec)]
    rewrite, header = rule["filters"]
    assert rewrite["type"] == "URLRewrite"
    assert header == {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "x-gateway-inference-objective", "value": "chat"}]},
    }


def test_without_the_extension_the_route_sends_to_the_service() -> None:
    plain = RoutingSpec.model_validate({"parentRefs": [{"name": "g"}]})
    assert route_backend(model(), plain) == {
        "group": "",
        "kind": "Service",
        "name": "chat",
        "port": 8000,
        "weight": 1,
    }
