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
