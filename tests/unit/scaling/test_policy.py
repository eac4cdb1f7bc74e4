"""AutoscalingPolicy: defaults with their sources, validation, and a schema a CRD can embed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gpupool.api.crd import openapi_schema
from gpupool.scaling import AutoscalingPolicy


def test_defaults_follow_the_platform_guides_and_the_hpa() -> None:
    policy = AutoscalingPolicy()
    assert not policy.enabled
    # DOMAIN §6: scale up above 80% of capacity; utilisation thresholds 75% / 30%.
    assert policy.target_utilization == 0.8
    assert (policy.accelerator_utilization_up, policy.accelerator_utilization_down) == (0.75, 0.3)
    assert policy.scale_up_period_seconds == 30
    # Tuned (docs/autoscaling.md): scale down below 60%, up to 4 instances per 30 s.
    assert (policy.scale_down_utilization, policy.scale_up_step) == (0.6, 4)
    # HPA defaults: no scale-up stabilisation, 300 s for scale-down, a 15 s sync period.
    assert (policy.scale_up_stabilization_seconds, policy.scale_down_stabilization_seconds) == (0, 300)
    assert policy.evaluation_interval_seconds == 15


def test_horizon_is_load_time_plus_one_interval_unless_given() -> None:
    assert AutoscalingPolicy().horizon_seconds(413) == 428
    assert AutoscalingPolicy(predictive_horizon_seconds=60).horizon_seconds(413) == 60


@pytest.mark.parametrize(
    "fields",
    [
        {"scaleDownUtilization": 0.8, "targetUtilization": 0.8},
        {"acceleratorUtilizationDown": 0.9},
        {"targetUtilization": 1.5},
        {"scaleUpStep": 0},
        {"unknownField": 1},
        {"sloAttainmentTarget": 0},
        {"sloAttainmentTarget": 1},
        {"sloAttainmentTarget": 1.2},
    ],
)
def test_rejects_contradictions_and_out_of_range_values(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AutoscalingPolicy.model_validate(fields)


def test_camel_case_on_the_wire_round_trips() -> None:
    policy = AutoscalingPolicy(enabled=True, scale_down_stabilization_seconds=600)
    wire = policy.to_wire()
    assert wire["scaleDownStabilizationSeconds"] == 600
    assert AutoscalingPolicy.model_validate(wire) == policy


def test_schema_is_ready_for_the_crd() -> None:
    schema = openapi_schema(AutoscalingPolicy)
    properties = schema["properties"]
    assert set(properties) == {field.alias for field in AutoscalingPolicy.model_fields.values()}
    for name, prop in properties.items():
        assert prop.get("description"), f"{name} has no description"
        assert "type" in prop, name
        # Every field has a default the API server fills in, but the optional horizon (unset: the
        # load time plus one interval).
        assert "default" in prop or name == "predictiveHorizonSeconds", name
    rules = [rule["rule"] for rule in schema["x-kubernetes-validations"]]
    assert "self.scaleDownUtilization < self.targetUtilization" in rules


def test_slo_attainment_target_is_refused_by_the_schema_outside_zero_to_one() -> None:
    # The API server refuses 0 and 1 themselves: a target of 1 would ask for the highest burst
    # ever seen at every moment, 0 for none at all.
    prop = openapi_schema(AutoscalingPolicy)["properties"]["sloAttainmentTarget"]
    assert prop["default"] == 0.99
    assert (prop["minimum"], prop["exclusiveMinimum"]) == (0, True)
    assert (prop["maximum"], prop["exclusiveMaximum"]) == (1, True)
