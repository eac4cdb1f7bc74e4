"""spec.disruption, spec.access and spec.routing: what the types admit and refuse."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gpupool.api.crd import model_deployment_crd
from gpupool.api.traffic import AccessPeer, DisruptionSpec, RoutingSpec


@pytest.mark.parametrize("value", [0, 1, 10_000, "0%", "5%", "100%"])
def test_max_unavailable_takes_a_count_or_a_percentage(value: int | str) -> None:
    assert DisruptionSpec.model_validate({"maxUnavailable": value}).max_unavailable == value


@pytest.mark.parametrize("value", [-1, 10_001, "101%", "5", "x%", "1.5%", True])
def test_max_unavailable_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValidationError, match="maxUnavailable"):
        DisruptionSpec.model_validate({"maxUnavailable": value})


def test_the_schema_marks_it_int_or_string_and_checks_it_with_cel() -> None:
    spec = model_deployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    disruption = spec["properties"]["disruption"]
    assert disruption["properties"]["maxUnavailable"]["x-kubernetes-int-or-string"] is True
    assert disruption["properties"]["maxUnavailable"]["default"] == 1
    [rule] = disruption["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".maxUnavailable"


def test_a_peer_names_one_namespace_or_selects_some_not_both() -> None:
    with pytest.raises(ValidationError, match="not both"):
        AccessPeer.model_validate({"namespace": "a", "namespaceSelector": {"team": "a"}})
    with pytest.raises(ValidationError):
        AccessPeer.model_validate({"podSelector": {"bad key!": "x"}})


@pytest.mark.parametrize("prefix", ["/", "/chat", "/v1/models-a", "/a.b/c_d"])
def test_path_prefix_accepts_absolute_paths(prefix: str) -> None:
    assert RoutingSpec.model_validate({"pathPrefix": prefix}).path_prefix == prefix


@pytest.mark.parametrize("prefix", ["chat", "/chat/", "//", "/a?b", "/a#b", "/a b"])
def test_path_prefix_refuses_others(prefix: str) -> None:
    with pytest.raises(ValidationError):
        RoutingSpec.model_validate({"pathPrefix": prefix})


@pytest.mark.parametrize("host", ["chat.example.com", "*.models.example.com", "localhost"])
def test_hostnames(host: str) -> None:
    assert RoutingSpec.model_validate({"hostnames": [host]}).hostnames == [host]


@pytest.mark.parametrize("host", ["Chat.example.com", "*", "a..b", "-a.com", "a.*.com"])
def test_bad_hostnames(host: str) -> None:
    with pytest.raises(ValidationError):
        RoutingSpec.model_validate({"hostnames": [host]})


def test_inference_pool_defaults_follow_the_inference_extension() -> None:
    spec = RoutingSpec.model_validate({"parentRefs": [{"name": "g"}], "inferencePool": {}})
    assert spec.inference_pool is not None
    picker = spec.inference_pool.endpoint_picker
    assert (picker.name, picker.port, picker.failure_mode.value) == (None, 9002, "FailClose")
    assert spec.inference_pool.priority is None


@pytest.mark.parametrize(
    "inference_pool",
    [
        {"endpointPicker": {"failureMode": "Open"}},
        {"endpointPicker": {"port": 0}},
        {"endpointPicker": {"name": "Picker"}},
        {"endpointPicker": {"namespace": "other"}},
        {"priority": 10_000_000},
    ],
)
def test_inference_pool_refuses_what_the_inference_extension_would(inference_pool: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RoutingSpec.model_validate({"parentRefs": [{"name": "g"}], "inferencePool": inference_pool})


def test_inference_pool_needs_a_route_in_the_types_and_the_schema() -> None:
    with pytest.raises(ValidationError, match=r"needs routing\.parentRefs"):
        RoutingSpec.model_validate({"inferencePool": {}})
    spec = model_deployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    [rule] = spec["properties"]["routing"]["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".inferencePool" and "size(self.parentRefs) > 0" in rule["rule"]
    picker = spec["properties"]["routing"]["properties"]["inferencePool"]["properties"]["endpointPicker"]
    assert picker["properties"]["failureMode"]["enum"] == ["FailOpen", "FailClose"]
