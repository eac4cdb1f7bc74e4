"""Pool accounting: what an InferencePool holds, computed from Node and Pod objects.

Pure: nodes and pods in (as the API returns them), status out. Status is reconstructed from the
world on every pass, never from an earlier status, as the API conventions ask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpupool.api.conditions import ConditionStatus, ConditionType, Reason, set_condition
from gpupool.api.v1alpha1 import (
    InferencePool,
    InferencePoolStatus,
    PoolAccelerators,
    TierCapacity,
)
from gpupool.catalog.accelerators import get_accelerator
from gpupool.render.labels import POOL_LABEL, TIER_LABEL

# Pods in these phases no longer hold their resources.
_FINISHED = {"Succeeded", "Failed"}


def node_matches(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def parse_quantity_int(value: Any) -> int:
    """Extended resources are whole numbers ("8"); anything else counts as zero."""
    try:
        return int(str(value))
    except ValueError:
        return 0


def pod_request(pod: Mapping[str, Any], resource: str) -> int:
    """What a pod requests of a resource: the larger of its containers' sum and any init container."""
    spec = pod.get("spec", {})

    def requested(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or resources.get("limits") or {}
        return parse_quantity_int(requests.get(resource, 0))

    regular = sum(requested(c) for c in spec.get("containers", []))
    init = max((requested(c) for c in spec.get("initContainers", []) or []), default=0)
    return max(regular, init)


def pool_status(
    pool: InferencePool,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    now: str,
) -> InferencePoolStatus:
    resource = get_accelerator(pool.spec.accelerator).resource_name
    pool_name = pool.metadata.get("name", "")
    members = {
        n["metadata"]["name"]: n
        for n in nodes
        if node_matches(n, pool.spec.node_selector) and not (n.get("spec") or {}).get("unschedulable")
    }
    total = sum(
        parse_quantity_int((n.get("status") or {}).get("allocatable", {}).get(resource, 0))
        for n in members.values()
    )
    allocated = 0
    by_tier: dict[str, int] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name not in members or (pod.get("status") or {}).get("phase") in _FINISHED:
            continue
        count = pod_request(pod, resource)
        allocated += count
        labels = pod.get("metadata", {}).get("labels") or {}
        if labels.get(POOL_LABEL) == pool_name and TIER_LABEL in labels:
            by_tier[labels[TIER_LABEL]] = by_tier.get(labels[TIER_LABEL], 0) + count
    previous = pool.status.conditions if pool.status else []
    generation = pool.metadata.get("generation")
    if members:
        condition = (
            ConditionStatus.TRUE,
            Reason.NODES_FOUND,
            f"{len(members)} node(s), {total} accelerator(s)",
        )
    else:
        condition = (
            ConditionStatus.FALSE,
            Reason.NO_NODES,
            f"no schedulable node carries the labels {dict(pool.spec.node_selector)}; label the "
            "accelerator nodes or fix spec.nodeSelector",
        )
    conditions = set_condition(previous, ConditionType.READY, *condition, generation, now)
    return InferencePoolStatus(
        observed_generation=generation,
        nodes=len(members),
        accelerators=PoolAccelerators(total=total, allocated=allocated, free=max(total - allocated, 0)),
        tiers=[
            TierCapacity(
                name=tier.name,
                reserved=total * tier.reserved_percent // 100,
                allocated=by_tier.get(tier.name, 0),
            )
            for tier in pool.spec.tiers
        ],
        conditions=conditions,
    )
