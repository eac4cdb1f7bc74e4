"""Pool status: what an InferencePool holds and who holds it, from Node, Pod and Namespace objects.

Pure: the objects as the API returns them in, status out. Status is rebuilt from the world on every
pass, never from an earlier status, as the API conventions ask. The counting rules live in
`gpupool.placement.accounting` (docs/placement.md); this module turns the state into status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpupool.api.conditions import ConditionStatus, ConditionType, Reason, set_condition
from gpupool.api.v1alpha1 import (
    ExcludedNode,
    InferencePool,
    InferencePoolStatus,
    PoolAccelerators,
    Scheduler,
    TierCapacity,
)
from gpupool.placement import Allocation, PoolState, TierAccount, TierShare, account_pool


def pool_state(
    pool: InferencePool,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> PoolState:
    """The pool's accounting, tenants included."""
    return account_pool(pool, nodes, pods, tenants=pool.spec.tenants, namespace_labels=namespace_labels)


def status_of(
    pool: InferencePool, state: PoolState, now: str, allocation: Allocation | None = None
) -> InferencePoolStatus:
    """The pool's status from its state: capacity per node, tier and tenant, and fragmentation;
    with the pool's allocation, what it grants each tier, lends and takes back."""
    previous = pool.status.conditions if pool.status else []
    generation = pool.metadata.get("generation")
    if state.nodes and state.total == 0:
        resource = pool.spec.resource_name()
        condition = (
            ConditionStatus.FALSE,
            Reason.NO_ACCELERATORS,
            f"{len(state.nodes)} node(s) match spec.nodeSelector {dict(pool.spec.node_selector)} but "
            f"none advertises {resource}, the device resource of {pool.spec.accelerator}: point "
            "spec.nodeSelector at the accelerator nodes, run the device plugin on these nodes, or set "
            "spec.acceleratorResource to the resource their device plugin advertises",
        )
    elif state.nodes:
        condition = (
            ConditionStatus.TRUE,
            Reason.NODES_FOUND,
            f"{len(state.nodes)} node(s), {state.total} accelerator(s)",
        )
    else:
        excluded = (
            f"; {len(state.excluded_nodes)} matching node(s) take no new pods "
            f"({', '.join(f'{n} {why}' for n, why in state.excluded_nodes[:5])})"
            if state.excluded_nodes
            else ""
        )
        condition = (
            ConditionStatus.FALSE,
            Reason.NO_NODES,
            f"no schedulable node carries the labels {dict(pool.spec.node_selector)}{excluded}; label the "
            "accelerator nodes or fix spec.nodeSelector",
        )
    conditions = set_condition(previous, ConditionType.READY, *condition, generation, now)
    price = pool.spec.price_per_accelerator_hour
    held = state.allocated
    return InferencePoolStatus(
        observed_generation=generation,
        nodes=len(state.nodes),
        accelerators=PoolAccelerators(
            total=state.total,
            allocated=held,
            free=state.free,
            pending=state.pending,
            unmanaged=state.unmanaged,
        ),
        tiers=[
            _tier_capacity(t, allocation.share(t.name) if allocation else None) for t in state.tier_accounts()
        ],
        node_accelerators=state.node_status(),
        excluded_nodes=[ExcludedNode(name=n, reason=why) for n, why in state.excluded_nodes],
        fragmentation=list(state.fragmentation()),
        tenants=[
            t if price is None else t.model_copy(update={"cost_per_hour": round(price * t.accelerators, 4)})
            for t in state.tenant_status()
        ],
        cost_per_hour=None if price is None else round(price * held, 4),
        conditions=conditions,
    )


def _tier_capacity(account: TierAccount, share: TierShare | None) -> TierCapacity:
    capacity = TierCapacity(
        name=account.name,
        reserved=account.reserved,
        allocated=account.allocated,
        pending=account.pending,
        borrowed=max(0, account.allocated - account.reserved),
        preempted=account.preempted,
    )
    if share is None:
        return capacity
    return capacity.model_copy(
        update={
            "granted": share.allocated,
            "lent": share.lent,
            "reclaiming": [f"{tier} {count}" for tier, count in share.reclaimed],
        }
    )


def pool_status(
    pool: InferencePool,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    now: str,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> InferencePoolStatus:
    return status_of(pool, pool_state(pool, nodes, pods, namespace_labels), now)


def with_queues(
    status: InferencePoolStatus,
    pool: InferencePool,
    *,
    served: bool,
    applied: list[str],
    inactive: list[str],
    now: str,
) -> InferencePoolStatus:
    """The pool's status with its scheduler and, for spec.scheduler kueue, the QueuesReady
    condition: whether Kueue serves its kinds (`served`), the objects applied (kind/name) and
    the ClusterQueues Kueue has not activated (with Kueue's message)."""
    scheduler = pool.spec.scheduler
    if scheduler is not Scheduler.KUEUE:
        kept = [c for c in status.conditions if c.type != ConditionType.QUEUES_READY.value]
        return status.model_copy(update={"scheduler": scheduler, "queues": [], "conditions": kept})
    if not served:
        condition = (
            ConditionStatus.FALSE,
            Reason.KUEUE_MISSING,
            "spec.scheduler is kueue but the cluster has no Kueue CRDs (kueue.x-k8s.io/v1beta2 "
            "ClusterQueue, LocalQueue, ResourceFlavor, Cohort): install Kueue (sigs.k8s.io/kueue "
            "v0.17 or later, with the pod, deployment and leaderworkerset integrations) or set "
            "spec.scheduler to default; nothing of Kueue's is created and the pool's models are "
            "not applied until then",
        )
    elif inactive:
        condition = (
            ConditionStatus.FALSE,
            Reason.QUEUES_INACTIVE,
            f"Kueue has not activated {len(inactive)} ClusterQueue(s): {'; '.join(inactive)}",
        )
    else:
        condition = (
            ConditionStatus.TRUE,
            Reason.QUEUES_ACTIVE,
            f"Kueue admits the pool's instances: {', '.join(applied)}",
        )
    generation = pool.metadata.get("generation")
    conditions = set_condition(status.conditions, ConditionType.QUEUES_READY, *condition, generation, now)
    return status.model_copy(
        update={"scheduler": scheduler, "queues": applied if served else [], "conditions": conditions}
    )
