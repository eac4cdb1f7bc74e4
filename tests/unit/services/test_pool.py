"""Pool accounting from Node and Pod objects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gpupool.api.v1alpha1 import InferencePool
from gpupool.placement import pod_accelerators
from gpupool.services.pool import pool_status

NOW = "2026-01-01T00:00:00Z"


def node(name: str, gpus: int, vendor: str = "nvidia", unschedulable: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"gpu-type": vendor}},
        "spec": {"unschedulable": unschedulable},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "96"}},
    }


def pod(node_name: str | None, gpus: int, tier: str | None = None, phase: str = "Running") -> dict[str, Any]:
    labels = {"gpupool.io/pool": "h100", "gpupool.io/tier": tier} if tier else {}
    return {
        "metadata": {"name": "p", "labels": labels},
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


POOL = InferencePool.model_validate(
    {
        "metadata": {"name": "h100", "generation": 2},
        "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", "nodeSelector": {"gpu-type": "nvidia"}},
    }
)


def test_capacity_counts_only_matching_schedulable_nodes_and_live_pods() -> None:
    nodes = [node("a", 8), node("b", 8), node("c", 8, vendor="ascend"), node("d", 8, unschedulable=True)]
    pods = [
        pod("a", 4, tier="P0"),
        pod("a", 2, tier="P2"),
        pod("b", 1),  # not gpupool's, still uses the pool's accelerators
        pod("b", 8, tier="P0", phase="Succeeded"),  # finished: holds nothing
        pod("c", 8, tier="P0"),  # another pool's node
        pod(None, 4, tier="P1"),  # pending, not on a node yet
    ]
    status = pool_status(POOL, nodes, pods, NOW)
    assert status.nodes == 2
    assert status.accelerators is not None
    assert (status.accelerators.total, status.accelerators.allocated, status.accelerators.free) == (16, 7, 9)
    tiers = {t.name: (t.reserved, t.allocated) for t in status.tiers}
    # Reserved shares 40/30/30 of 16 accelerators, rounded down.
    assert tiers == {"P0": (6, 4), "P1": (4, 0), "P2": (4, 2)}
    assert status.conditions[0].reason == "NodesFound"


def test_a_pool_without_nodes_says_which_labels_it_looks_for() -> None:
    status = pool_status(POOL, [node("c", 8, vendor="ascend")], [], NOW)
    assert status.nodes == 0
    ready = status.conditions[0]
    assert (ready.status, ready.reason) == ("False", "NoNodesMatch")
    assert "gpu-type" in ready.message


def test_init_containers_count_when_they_ask_for_more() -> None:
    body = pod("a", 1)
    body["spec"]["initContainers"] = [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]
    assert pod_accelerators(body, "nvidia.com/gpu") == 2


def test_status_reports_nodes_fragmentation_tenants_and_cost() -> None:
    pool = InferencePool.model_validate(
        {
            "metadata": {"name": "h100", "generation": 1},
            "spec": {
                "vendor": "nvidia",
                "accelerator": "H100-80GB",
                "nodeSelector": {"gpu-type": "nvidia"},
                "pricePerAcceleratorHour": 2.0,
                "tenants": [{"name": "team-a", "namespaces": ["team-a"], "maxAccelerators": 4}],
            },
        }
    )
    owned = pod("a", 3, tier="P1")
    owned["metadata"]["namespace"] = "team-a"
    status = pool_status(pool, [node("a", 8), node("b", 8), node("d", 8, unschedulable=True)], [owned], NOW)
    assert [(n.name, n.requested, n.free) for n in status.node_accelerators] == [("a", 3, 5), ("b", 0, 8)]
    assert [(n.name, n.reason) for n in status.excluded_nodes] == [("d", "cordoned")]
    fits = {f.tensor_parallel: (f.instances, f.stranded_accelerators) for f in status.fragmentation}
    assert fits == {1: (13, 0), 2: (6, 1), 4: (3, 1), 8: (1, 5)}
    [tenant] = status.tenants
    assert (tenant.name, tenant.accelerators, tenant.limit, tenant.cost_per_hour) == ("team-a", 3, 4, 6.0)
    assert status.cost_per_hour == 6.0
    # Two tenants listing one namespace is refused when the pool is parsed (the operator then
    # reports the pool's Ready=False/InvalidSpec with this message).
    twice = pool.spec.model_dump(by_alias=True)
    twice["tenants"].append({"name": "team-b", "namespaces": ["team-a"], "maxAccelerators": 1})
    with pytest.raises(ValidationError, match="namespace team-a is listed by tenants team-a and team-b"):
        InferencePool.model_validate({"metadata": {"name": "h100"}, "spec": twice})


def cce_node(name: str, dies: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"gpu-type": "ascend"}},
        "spec": {},
        "status": {"allocatable": {"huawei.com/ascend-1980": str(dies), "cpu": "192"}},
    }


def cce_pod(node_name: str, dies: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "labels": {"gpupool.io/pool": "a3", "gpupool.io/tier": "P0"}},
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"requests": {"huawei.com/ascend-1980": str(dies)}}}],
        },
        "status": {"phase": "Running"},
    }


def a3_pool(resource: str | None) -> InferencePool:
    extra = {"acceleratorResource": resource} if resource else {}
    return InferencePool.model_validate(
        {
            "metadata": {"name": "a3"},
            "spec": {
                "vendor": "ascend",
                "accelerator": "Ascend910C",
                "acceleratorsPerNode": 16,
                "nodeSelector": {"gpu-type": "ascend"},
                **extra,
            },
        }
    )


def test_a_pool_counts_the_resource_its_nodes_advertise() -> None:
    status = pool_status(a3_pool("huawei.com/ascend-1980"), [cce_node("a3-0", 16)], [cce_pod("a3-0", 4)], NOW)
    assert status.accelerators is not None
    assert (status.accelerators.total, status.accelerators.allocated) == (16, 4)
    assert status.conditions[0].reason == "NodesFound"


def test_a_pool_looking_for_another_resource_says_which_field_names_it() -> None:
    pool = a3_pool(None)
    assert pool.spec.resource_name() == "huawei.com/Ascend910"
    ready = pool_status(pool, [cce_node("a3-0", 16)], [cce_pod("a3-0", 4)], NOW).conditions[0]
    assert (ready.status, ready.reason) == ("False", "NoAcceleratorResource")
    assert "huawei.com/Ascend910" in ready.message and "spec.acceleratorResource" in ready.message


@pytest.mark.parametrize(
    "resource",
    [
        "ascend-1980",
        "kubernetes.io/gpu",
        "Huawei.com/x",
        "huawei.com/-x",
        f"{'a' * 245}/x",
        f"a.io/{'b' * 64}",
    ],
)
def test_an_accelerator_resource_must_be_an_extended_resource_name(resource: str) -> None:
    with pytest.raises(ValidationError, match="acceleratorResource"):
        a3_pool(resource)
