"""Instances over several nodes: the LeaderWorkerSet a model runs as instead of a Deployment.

The workload of a model on a pool is one of two kinds under one name: a Deployment (an instance
per pod) or, when its plan spans nodes, a LeaderWorkerSet (an instance per group of pods). This
module reads whichever exists, deletes the kind the plan no longer asks for, and says what a
cluster without the LeaderWorkerSet CRD lacks. LeaderWorkerSets are not watched: each pass of
the model reads its set afresh, so its status (ready groups) is current when the pass runs.
"""

from __future__ import annotations

import logging
from typing import Any

from gpupool.controller.apiclient import ApiError
from gpupool.controller.kube import LEADER_WORKER_SET, Kube

log = logging.getLogger(__name__)

KIND = LEADER_WORKER_SET.kind


def read_group_set(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The model's LeaderWorkerSet called `name`, or None (none, or no CRD in the cluster)."""
    return kube.get(LEADER_WORKER_SET, namespace, name)


def missing_crd(err: ApiError, objects: list[dict[str, Any]]) -> str | None:
    """What to tell the user when applying a LeaderWorkerSet failed because the cluster has no
    such kind (the API server answers 404 for a resource it does not serve), else None."""
    if err.status != 404 or not any(o["kind"] == KIND for o in objects):
        return None
    (group_set,) = (o for o in objects if o["kind"] == KIND)
    size = group_set["spec"]["leaderWorkerTemplate"]["size"]
    return (
        f"the plan runs each instance on {size} nodes as a LeaderWorkerSet, but the cluster has no "
        f"LeaderWorkerSet CRD ({LEADER_WORKER_SET.api_version}): install the LeaderWorkerSet "
        "controller (sigs.k8s.io/lws), or use accelerators with more memory or a lower precision "
        "so that one node holds the model"
    )


def prune_group_sets(kube: Kube, namespace: str, uid: str | None, names: set[str], wanted: set[str]) -> int:
    """Delete the LeaderWorkerSets among `names` that the model controls and no longer asks for
    (its plan went back to one node, or it left the pool); the number deleted."""
    return kube.delete_controlled(LEADER_WORKER_SET, namespace, uid, names - wanted)
