"""Kueue's objects for a pool whose instances Kueue admits (InferencePool.spec.scheduler kueue).

Kueue (kueue.x-k8s.io/v1beta2, sigs.k8s.io/kueue) admits a workload whole or not at all: a
LeaderWorkerSet group is one Workload with a pod set for the leader and one for the workers, and
its pods stay gated (not schedulable) until the Workload fits its ClusterQueue's quota. The
mapping of a pool onto Kueue:

- one ResourceFlavor `gpupool-<pool>` for the pool's nodes: the pool's node selector as its node
  labels and the pool's tolerations (Kueue adds both to a pod when it admits it; the pods gpupool
  renders carry them already);
- one Cohort `gpupool-<pool>` holding the accelerators no tier reserves (the pool's unreserved
  rest), which every tier's ClusterQueue may borrow;
- one ClusterQueue per tier, `gpupool-<pool>-<tier>` (the name of the tier's PriorityClass), in
  that cohort: nominalQuota is the tier's reserve of the accelerator resource, floor(total x
  reservedPercent / 100), the reserve gpupool's own accounting uses (gpupool.placement.tiers);
  borrowingLimit is the tier's borrowingLimitPercent of the pool (unset: the tier may borrow all
  that is idle); lendingLimit 0 keeps a tier's reserve to itself (lendable false), unset lends
  all of it. A preemptible tier lends everything and borrows what is idle, and never preempts:
  its preemption policies are Never. Other tiers preempt lower-priority workloads of their own
  queue (withinClusterQueue LowerPriority) and, with reclaim (the default), take their reserve
  back from any queue of the cohort that borrowed it (reclaimWithinCohort Any);
- one LocalQueue per model and pool, named after the model's workload on the pool and owned by
  the ModelDeployment, pointing at its tier's ClusterQueue: the garbage collector removes it with
  the model, no two models share one, and the model's Workloads are exactly those of its queue.

Priority stays the pod's: Kueue takes a Workload's priority from the PriorityClass of its pod
template when no WorkloadPriorityClass is named (Kueue's "Workload priority" docs), and the tier's
PriorityClass is still what the default scheduler preempts by on the nodes. A WorkloadPriorityClass
per tier would only duplicate the value.

Kueue admits only requests a ClusterQueue covers, so CPU and memory (and the pool's RDMA device
resource) are covered too, with a quota no pool reaches: the accelerators are what the tiers
share; the scheduler still checks the nodes' CPU and memory.

Pure: the pool and its accelerator total in, wire-form dicts out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gpupool.api.v1alpha1 import InferencePool, Scheduler, Tier
from gpupool.render import labels as lbl

Obj = dict[str, Any]

GROUP: Final = "kueue.x-k8s.io"
KUEUE_API_VERSION: Final = f"{GROUP}/v1beta2"
# The label naming the LocalQueue of a workload (Deployment, LeaderWorkerSet).
QUEUE_NAME_LABEL: Final = "kueue.x-k8s.io/queue-name"
KUEUE_COMPONENT: Final = "kueue"
# Far above any pool's CPU and memory: only the accelerator is shared by quota (module docs).
UNBOUNDED_CPU: Final = "1000000"
UNBOUNDED_MEMORY: Final = "1000000Gi"
UNBOUNDED_DEVICES: Final = "1000000"


def uses_kueue(pool: InferencePool) -> bool:
    return pool.spec.scheduler is Scheduler.KUEUE


def flavor_name(pool_name: str) -> str:
    return f"gpupool-{pool_name}"


def cohort_name(pool_name: str) -> str:
    return f"gpupool-{pool_name}"


def cluster_queue_name(pool_name: str, tier: str | Tier) -> str:
    """The tier's ClusterQueue, named as its PriorityClass: gpupool-<pool>-<tier in lower case>."""
    return lbl.priority_class_name(pool_name, tier)


def covered_resources(pool: InferencePool) -> list[str]:
    """What the pool's pods request, all of which a ClusterQueue must cover for Kueue to admit."""
    resources = [pool.spec.resource_name(), "cpu", "memory"]
    rdma = pool.spec.inter_node.rdma_resource
    if rdma is not None:
        resources.append(rdma)
    return resources


def tier_reserve(total: int, tier: Tier) -> int:
    """The tier's reserve in accelerators, as gpupool's accounting computes it."""
    return total * tier.reserved_percent // 100


def _labels(pool_name: str, tier: str | None = None) -> dict[str, str]:
    labels = {
        lbl.COMPONENT_LABEL: KUEUE_COMPONENT,
        lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY,
        lbl.PART_OF_LABEL: lbl.MANAGED_BY,
        lbl.POOL_LABEL: lbl.label_value(pool_name),
    }
    if tier is not None:
        labels[lbl.TIER_LABEL] = lbl.label_value(tier)
    return dict(sorted(labels.items()))


def _metadata(name: str, pool: InferencePool, owners: list[Obj], tier: str | None = None) -> Obj:
    pool_name: str = pool.metadata["name"]
    return {
        "name": name,
        "labels": _labels(pool_name, tier),
        **({"ownerReferences": owners} if owners else {}),
    }


def _quota(name: str, nominal: int | str, borrowing: int | None = None, lending: int | None = None) -> Obj:
    quota: Obj = {"name": name, "nominalQuota": str(nominal)}
    if borrowing is not None:
        quota["borrowingLimit"] = str(borrowing)
    if lending is not None:
        quota["lendingLimit"] = str(lending)
    return quota


def _others(pool: InferencePool, amount: str | None = None) -> list[Obj]:
    """The quotas of the non-accelerator resources: unbounded, or `amount` of each."""
    unbounded = {"cpu": UNBOUNDED_CPU, "memory": UNBOUNDED_MEMORY}
    return [
        _quota(r, amount if amount is not None else unbounded.get(r, UNBOUNDED_DEVICES))
        for r in covered_resources(pool)[1:]
    ]


def resource_flavor(pool: InferencePool, owners: list[Obj]) -> Obj:
    pool_name: str = pool.metadata["name"]
    spec: Obj = {}
    if pool.spec.node_selector:
        spec["nodeLabels"] = dict(sorted(pool.spec.node_selector.items()))
    if pool.spec.tolerations:
        spec["tolerations"] = [t.to_wire() for t in pool.spec.tolerations]
    return {
        "apiVersion": KUEUE_API_VERSION,
        "kind": "ResourceFlavor",
        "metadata": _metadata(flavor_name(pool_name), pool, owners),
        "spec": spec,
    }


def cohort(pool: InferencePool, total: int, owners: list[Obj]) -> Obj:
    """The cohort of the pool's tiers, holding the accelerators no tier reserves."""
    pool_name: str = pool.metadata["name"]
    unreserved = total - sum(tier_reserve(total, t) for t in pool.spec.tiers)
    return {
        "apiVersion": KUEUE_API_VERSION,
        "kind": "Cohort",
        "metadata": _metadata(cohort_name(pool_name), pool, owners),
        "spec": {
            "resourceGroups": [
                {
                    "coveredResources": covered_resources(pool),
                    "flavors": [
                        {
                            "name": flavor_name(pool_name),
                            "resources": [
                                _quota(pool.spec.resource_name(), max(0, unreserved)),
                                *_others(pool, "0"),
                            ],
                        }
                    ],
                }
            ]
        },
    }


def preemption(tier: Tier) -> Obj:
    """Kueue's preemption policies for the tier (module docs)."""
    if tier.preemptible:
        return {"withinClusterQueue": "Never", "reclaimWithinCohort": "Never"}
    return {
        "withinClusterQueue": "LowerPriority",
        "reclaimWithinCohort": "Any" if tier.reclaim else "Never",
    }


def cluster_queue(pool: InferencePool, tier: Tier, total: int, owners: list[Obj]) -> Obj:
    pool_name: str = pool.metadata["name"]
    reserve = tier_reserve(total, tier)
    borrowing = None if tier.borrowing_limit_percent is None else total * tier.borrowing_limit_percent // 100
    lending = None if tier.lendable or tier.preemptible else 0
    return {
        "apiVersion": KUEUE_API_VERSION,
        "kind": "ClusterQueue",
        "metadata": _metadata(cluster_queue_name(pool_name, tier), pool, owners, tier.name),
        "spec": {
            "cohortName": cohort_name(pool_name),
            # Any namespace: a model's LocalQueue is what ties it to the queue.
            "namespaceSelector": {},
            # A group that does not fit does not hold back smaller ones behind it.
            "queueingStrategy": "BestEffortFIFO",
            "preemption": preemption(tier),
            "resourceGroups": [
                {
                    "coveredResources": covered_resources(pool),
                    "flavors": [
                        {
                            "name": flavor_name(pool_name),
                            "resources": [
                                _quota(pool.spec.resource_name(), reserve, borrowing, lending),
                                *_others(pool),
                            ],
                        }
                    ],
                }
            ],
        },
    }


def pool_queues(pool: InferencePool, total: int, owners: list[Obj]) -> list[Obj]:
    """The ResourceFlavor, Cohort and one ClusterQueue per tier of a kueue pool with `total`
    schedulable accelerators, each with `owners` (the pool's reference); nothing for a pool of
    another scheduler."""
    if not uses_kueue(pool):
        return []
    return [
        resource_flavor(pool, owners),
        cohort(pool, total, owners),
        *(cluster_queue(pool, tier, total, owners) for tier in pool.spec.tiers),
    ]


def object_ref(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def local_queue(pool: InferencePool, tier: Tier, name: str, namespace: str, owners: list[Obj]) -> Obj:
    """The LocalQueue `name` of one model on a kueue pool, with `owners` (the model's reference),
    pointing at its tier's ClusterQueue."""
    pool_name: str = pool.metadata["name"]
    return {
        "apiVersion": KUEUE_API_VERSION,
        "kind": "LocalQueue",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": _labels(pool_name, tier.name),
            **({"ownerReferences": owners} if owners else {}),
        },
        "spec": {"clusterQueue": cluster_queue_name(pool_name, tier)},
    }


# --------------------------------------------------------------------------------------------------
# What Kueue reports back


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def inactive_queues(queues: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ClusterQueues Kueue has not activated, each with Kueue's message."""
    inactive = []
    for queue in queues:
        active = _condition(queue, "Active")
        if active is None or active.get("status") != "True":
            why = (active or {}).get("message") or "Kueue has not reported on it yet"
            inactive.append(f"{queue['metadata']['name']}: {why}")
    return inactive


@dataclass(frozen=True)
class Admission:
    """The Workloads of one model's LocalQueue: how many, and those Kueue has not admitted."""

    workloads: int
    waiting: tuple[str, ...]  # "<workload>: <Kueue's message>"

    @property
    def admitted(self) -> int:
        return self.workloads - len(self.waiting)

    def message(self, queue: str) -> str:
        shown = "; ".join(self.waiting[:3]) + ("; ..." if len(self.waiting) > 3 else "")
        return (
            f"{len(self.waiting)} of {self.workloads} instance(s) wait for Kueue to admit them "
            f"from LocalQueue {queue} (none of their pods is scheduled until then): {shown}"
        )


def admission(workloads: Iterable[Mapping[str, Any]]) -> Admission:
    """Which of a queue's Workloads Kueue has admitted; finished ones do not count."""
    count = 0
    waiting = []
    for workload in sorted(workloads, key=lambda w: str(w["metadata"]["name"])):
        finished = _condition(workload, "Finished")
        if finished is not None and finished.get("status") == "True":
            continue
        count += 1
        admitted = _condition(workload, "Admitted")
        if admitted is not None and admitted.get("status") == "True":
            continue
        reserved = _condition(workload, "QuotaReserved")
        evicted = _condition(workload, "Evicted")
        if evicted is not None and evicted.get("status") == "True" and evicted.get("message"):
            why = str(evicted["message"])
        else:
            why = str((reserved or {}).get("message") or "not yet considered by Kueue")
        waiting.append(f"{workload['metadata']['name']}: {why}")
    return Admission(workloads=count, waiting=tuple(waiting))
