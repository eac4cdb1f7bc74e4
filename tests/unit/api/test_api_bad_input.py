"""The bad-input table of the end-to-end suite, against the pydantic models and the pure core.

What the CRD refuses, the operator's own models refuse too (an object that reaches the operator
another way gets a condition, not a crash); what the CRD admits but cannot be served gets the
condition the table names from `decide`, never an exception.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))

from bad_manifests import (
    ANSWERED,
    ASCEND_POOL,
    CASES,
    CPU_POOL,
    INVALID_POOL,
    NVIDIA_POOL,
    QUOTA_POOL,
    REFUSED,
    Case,
)

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.names import LABEL_VALUE, QUALIFIED_NAME, label_key_rule, qualified_name_problem
from gpupool.api.tenancy import PoolPreference
from gpupool.api.v1alpha1 import InferencePool, InferencePoolSpec, ModelDeployment, ModelDeploymentSpec
from gpupool.services.modeldeployment import PoolContext, UnparsedPool, decide
from gpupool.sizing.instances import plan_instances

ROOT = Path(__file__).resolve().parents[3]
NOW = "2026-01-01T00:00:00Z"


def test_the_table_holds_at_least_120_cases_of_both_kinds() -> None:
    assert len(CASES) >= 120
    assert len(ANSWERED) >= 15
    assert {c.kind for c in REFUSED} == {c.kind for c in ANSWERED} == {"ModelDeployment", "InferencePool"}
    assert all((c.refused is None) != (c.condition is None) for c in CASES)


def _parse(case: Case) -> Any:
    kind = ModelDeploymentSpec if case.namespaced else InferencePoolSpec
    return kind.model_validate(case.spec)


# The API server refuses these on grounds the spec models do not see: the pool's metadata.name,
# and a boolean written as a word (pydantic's lax mode reads "yes" as true).
SCHEMA_ONLY = {"bad-pool-" + "n" * 240, "m-autoscaling-enabled-a-word"}


@pytest.mark.parametrize("case", [c for c in REFUSED if c.name not in SCHEMA_ONLY], ids=lambda c: c.name)
def test_what_the_crd_refuses_the_models_refuse(case: Case) -> None:
    with pytest.raises(ValidationError):
        _parse(case)


def _pool(name: str) -> InferencePool:
    pools = {c.name: c for c in CASES if c.kind == "InferencePool"}
    if name in pools:
        spec = pools[name].spec
    else:
        import yaml

        spec = yaml.safe_load((ROOT / "manifests" / "samples" / f"pool-{name}.yaml").read_text())["spec"]
    return InferencePool(metadata={"name": name, "uid": "pool-uid", "generation": 1}, spec=spec)


def _context(name: str) -> PoolContext | UnparsedPool | None:
    if name == INVALID_POOL:
        return UnparsedPool(name, "tenants: namespace shared is listed by tenants team-a and team-b")
    if name in (NVIDIA_POOL, ASCEND_POOL):
        return PoolContext(_pool(name))
    return None


# Answered only once the pool is counted (its nodes and quotas): the end-to-end suite checks them.
NEEDS_NODES = {QUOTA_POOL, CPU_POOL}


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in ANSWERED
        if c.namespaced
        and not {c.spec.get("pool"), *(p["name"] for p in c.spec.get("pools", []))} & NEEDS_NODES
    ],
    ids=lambda c: c.name,
)
def test_what_the_crd_admits_but_cannot_serve_gets_its_condition(case: Case) -> None:
    assert case.condition is not None
    md = ModelDeployment.model_validate(
        {"metadata": {"name": case.name, "namespace": "ns", "uid": "u", "generation": 1}, "spec": case.spec}
    )
    outcome = decide(md, {p: _context(p) for p in md.spec.pool_names()}, {}, NOW)
    type_, reason, text = case.condition
    found = find_condition(outcome.status.conditions, ConditionType(type_))
    assert found is not None, outcome.status.conditions
    assert (found.status, found.reason) == ("False", reason), found
    assert text in found.message
    assert not outcome.apply and not outcome.objects
    # One Warning per reason, the first time.
    warnings = [(e.reason, e.message) for e in outcome.events if e.type == "Warning"]
    assert [r for r, _ in warnings] == [reason]
    # Every condition describes this generation, Placed included.
    assert {c.observed_generation for c in outcome.status.conditions} == {1}


def test_a_spec_that_cannot_be_served_keeps_where_the_old_instances_run() -> None:
    good = ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {"model": {"name": "llama-3.1-8b"}, "pools": [{"name": NVIDIA_POOL}]},
        }
    )
    served = decide(good, {NVIDIA_POOL: _context(NVIDIA_POOL)}, {}, NOW)
    assert served.apply and served.status.placements[0].workload
    broken = good.model_copy(
        update={
            "metadata": {**good.metadata, "generation": 2},
            # Unservable, and on another pool: nothing of the new spec runs anywhere yet.
            "spec": good.spec.model_copy(
                update={"max_model_len": 1_000_000, "pools": [PoolPreference(name=ASCEND_POOL)]}
            ),
            "status": served.status,
        }
    )
    failed = decide(broken, {ASCEND_POOL: _context(ASCEND_POOL)}, {ASCEND_POOL: None}, NOW)
    placed = find_condition(failed.status.conditions, ConditionType.PLACED)
    # One allowed pool decides as spec.pool does: the pool's own reason.
    assert placed is not None and (placed.reason, placed.observed_generation) == ("ContextTooLong", 2)
    assert "spec.maxModelLen" in placed.message
    # The fixed spec's pass prunes what the status still names.
    assert failed.status.placements == served.status.placements


def test_an_overflowing_instance_count_is_an_error_not_a_crash() -> None:
    with pytest.raises(OverflowError, match="instances"):
        plan_instances(1e6, 1e-300, 0.2)
    with pytest.raises(OverflowError):
        plan_instances(float("inf"), 1.0, 0.2)
    assert plan_instances(1e6, 1.0, 0.2) == 1_200_000


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("gpu-type", True),
        ("nvidia.com/gpu.product", True),
        ("node.kubernetes.io/npu.chip.name", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("example.com/" + "a" * 63, True),
        ("a" * 253 + "/x", True),
        ("a" * 254 + "/x", False),
        ("Example.com/x", False),
        ("gpu type", False),
        ("-gpu", False),
        ("gpu-", False),
        ("example.com/", False),
        ("/gpu", False),
        ("a/b/c", False),
        ("", False),
    ],
)
def test_label_keys_are_checked_as_kubernetes_checks_them(key: str, valid: bool) -> None:
    assert (qualified_name_problem(key) is None) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        *[("", True), ("H100", True), ("NVIDIA-H100-80GB-HBM3", True), ("a_b.c", True), ("v" * 63, True)],
        *[("v" * 64, False), ("-a", False), ("a-", False), ("a b", False), ("a/b", False)],
    ],
)
def test_label_values_are_checked_as_kubernetes_checks_them(value: str, valid: bool) -> None:
    assert (re.fullmatch(LABEL_VALUE.strip("^$"), value) is not None and len(value) <= 63) is valid


def test_the_label_key_rule_is_a_cel_string_with_escaped_backslashes() -> None:
    rule = label_key_rule("nodeSelector")["rule"]
    assert QUALIFIED_NAME.replace("\\", "\\\\") in rule
    assert "\\." not in rule.replace("\\\\.", "")
