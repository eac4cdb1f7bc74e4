"""Which instance goes first on a scale-down: the one with the fewest requests in flight.

The autoscaler lowers a Deployment's replicas; the ReplicaSet controller then picks the pods to
delete. After pods that are unscheduled, pending or not Ready, it deletes those with the lowest
`controller.kubernetes.io/pod-deletion-cost` first (kubernetes pkg/controller/controller_utils.go,
`ActivePodsWithRanks.Less`, rule 4; feature gate PodDeletionCost, beta and on by default since
1.22), and only then the most recently Ready. Setting each pod's cost to its in-flight requests
just before lowering the count makes the least busy instance the one that goes, so the fewest
generations have to drain (or are cut off by the grace period).

Pure: the operator reads the in-flight sample from Prometheus and the pods from the API server,
and writes only what `cost_changes` returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# The API server accepts an int32 (k8s.io/kubernetes pkg/apis/core/helper: GetDeletionCostFromPodAnnotations).
_INT32_MAX = 2**31 - 1


def deletion_cost(in_flight: float | None) -> int:
    """The cost of a pod with `in_flight` requests running or queued: that count, as an integer.

    A pod with no usable sample (none, NaN, negative) costs 0, what the ReplicaSet controller
    assumes for a pod without the annotation: nothing is known to be running there.
    """
    if in_flight is None or not math.isfinite(in_flight) or in_flight <= 0:
        return 0
    return min(_INT32_MAX, round(in_flight))


def cost_changes(pods: Mapping[str, str | None], in_flight: Mapping[str, float]) -> dict[str, str]:
    """The annotation value to write on each pod whose cost must change.

    `pods`: the model's pods by name, each with its current annotation value (None: absent);
    `in_flight`: requests in flight by pod name, from one Prometheus sample. A pod whose cost is
    already right, including 0 without the annotation, gets no write.
    """
    changes: dict[str, str] = {}
    for pod, value in sorted(pods.items()):
        cost = deletion_cost(in_flight.get(pod))
        if value == str(cost) or (value is None and cost == 0):
            continue
        changes[pod] = str(cost)
    return changes
