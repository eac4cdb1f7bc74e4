"""Kueue's objects in the cluster: a kueue pool's queues, a model's admission, Kueue's absence.

The objects are rendered by gpupool.render.kueue; this module applies, reads and prunes them.
Kueue's kinds are optional: `Kube.serves` says whether the API server has them (read again at
each pass of a kueue pool, so an install or removal of Kueue shows at the next pass), and
nothing of Kueue's is created where they are missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gpupool.api.v1alpha1 import InferencePool
from gpupool.controller.kube import CLUSTER_QUEUE, COHORT, KUEUE_WORKLOAD, LOCAL_QUEUE, RESOURCE_FLAVOR, Kube
from gpupool.render import kueue
from gpupool.render import labels as lbl

# Pool-owned Kueue kinds, pruned when the pool stops naming kueue.
POOL_KINDS = (CLUSTER_QUEUE, COHORT, RESOURCE_FLAVOR)


@dataclass(frozen=True)
class PoolQueues:
    """What a kueue pool's pass found: whether Kueue is installed, what it applied (kind/name),
    and the ClusterQueues Kueue has not activated."""

    served: bool
    applied: list[str] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)


def kueue_served(kube: Kube, refresh: bool = False) -> bool:
    return all(kube.serves(r, refresh=refresh) for r in (CLUSTER_QUEUE, LOCAL_QUEUE, RESOURCE_FLAVOR, COHORT))


def _pool_selector(pool_name: str) -> str:
    return (
        f"{lbl.MANAGED_BY_LABEL}={lbl.MANAGED_BY},{lbl.COMPONENT_LABEL}={kueue.KUEUE_COMPONENT},"
        f"{lbl.POOL_LABEL}={lbl.label_value(pool_name)}"
    )


def reconcile_pool_queues(
    kube: Kube, pool: InferencePool, desired: list[dict[str, Any]]
) -> PoolQueues | None:
    """Apply a kueue pool's `desired` objects that differ, delete those it no longer asks for (a
    tier removed, or the pool back on the default scheduler), and read back whether Kueue
    activated its ClusterQueues. None for a pool of another scheduler that had none."""
    name: str = pool.metadata["name"]
    previous = pool.status.queues if pool.status else []
    if not kueue.uses_kueue(pool) and not previous:
        return None
    if not kueue_served(kube, refresh=True):
        return PoolQueues(served=False)
    wanted = {kueue.object_ref(o) for o in desired}
    queues: list[dict[str, Any]] = []
    for obj in desired:
        kube.apply_if_changed(obj)
    for resource in POOL_KINDS:
        for current in kube.list(resource, label_selector=_pool_selector(name)):
            if kueue.object_ref(current) not in wanted:
                kube.delete(current)
            elif resource is CLUSTER_QUEUE:
                queues.append(current)
    return PoolQueues(
        served=True,
        applied=[kueue.object_ref(o) for o in desired],
        inactive=kueue.inactive_queues(queues),
    )


def missing_kueue(kube: Kube, objects: Iterable[dict[str, Any]]) -> str | None:
    """What to tell a model whose objects need Kueue (a LocalQueue among them) on a cluster
    without Kueue's CRDs, else None; nothing of the model is applied then."""
    queues = [o for o in objects if o["kind"] == LOCAL_QUEUE.kind]
    if not queues or kueue_served(kube):
        return None
    pools = sorted({o["metadata"]["labels"][lbl.POOL_LABEL] for o in queues})
    return (
        f"pool {', '.join(pools)} has spec.scheduler kueue but the cluster has no Kueue CRDs "
        f"({LOCAL_QUEUE.api_version} LocalQueue): install Kueue or set the pool's spec.scheduler "
        "to default; nothing is applied until then"
    )


def admissions(kube: Kube, namespace: str, queues: Iterable[str]) -> dict[str, kueue.Admission]:
    """For each of a model's LocalQueues, what Kueue admitted of its Workloads."""
    names = set(queues)
    if not names or not kube.serves(KUEUE_WORKLOAD):
        return {}
    by_queue: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for workload in kube.list(KUEUE_WORKLOAD, namespace):
        queue = (workload.get("spec") or {}).get("queueName")
        if queue in by_queue:
            by_queue[queue].append(workload)
    return {name: kueue.admission(items) for name, items in by_queue.items()}


def prune_local_queues(kube: Kube, namespace: str, uid: str | None, names: set[str], wanted: set[str]) -> int:
    """Delete the LocalQueues among `names` the model controls and no longer uses (it left a
    kueue pool, or the pool went back to the default scheduler); the number deleted."""
    if not kube.serves(LOCAL_QUEUE):
        return 0
    return kube.delete_controlled(LOCAL_QUEUE, namespace, uid, names - wanted)
