"""Kubernetes and Prometheus IO of a model's rollout; `gpupool.services.canary` decides.

- `rollout_model`: after the decision and before the apply, read the model's canary Deployment
  and, while a canary step runs, what Prometheus measured of both versions since the step began,
  then turn the outcome into where the rollout stands. A pool that names no Prometheus rolls a new
  version in place; one that cannot be reached holds the canary at its step (it never moves on
  what was not measured).
- `prune_versions`: delete the two versions' Services once no canary step routes to them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.controller.kube import Kube
from gpupool.controller.prometheus import PrometheusError, connect, read_step, secret_reader
from gpupool.controller.traffic import delete_controlled
from gpupool.render.labels import label_value
from gpupool.services.canary import (
    CANARY_SUFFIX,
    STABLE_SUFFIX,
    Held,
    analysed,
    canary_name,
    run_canary,
    service_name,
)
from gpupool.services.modeldeployment import ModelOutcome
from gpupool.services.rollout import StepMeasurement

if TYPE_CHECKING:
    from gpupool.controller.state import ClusterCache

log = logging.getLogger(__name__)

# Reads a child from the cache, else the API server: (kind, namespace, name) -> object or None.
ReadChild = Callable[[str, str, str], dict[str, Any] | None]


def rollout_model(
    kube: Kube,
    read_child: ReadChild,
    md: ModelDeployment,
    outcome: ModelOutcome,
    stable: dict[str, Any] | None,
    pool: InferencePool | None,
    operator_namespace: str,
) -> ModelOutcome:
    """The outcome for where the model's rollout stands (gpupool.services.canary)."""
    namespace, name = str(md.metadata["namespace"]), str(md.metadata["name"])
    canary = read_child("Deployment", namespace, canary_name(name)) if stable is not None else None
    held = Held(stable, canary)
    now = time.time()
    target = analysed(md, outcome, held, now)
    if target is None:
        return run_canary(md, outcome, held, None, now)
    if pool is None or pool.spec.prometheus is None:
        pool_name = pool.metadata.get("name") if pool is not None else "the model's pool"
        why = f"pool {pool_name} names no spec.prometheus (nothing to analyse a canary with)"
        return run_canary(md, outcome, held, None, now, no_analysis=why)
    model = label_value(name)
    try:
        conn = connect(
            pool.spec.prometheus, operator_namespace, secret_reader(kube.read_secret, operator_namespace)
        )
        revisions = (target.canary_revision, target.stable_revision)
        readings = read_step(conn, namespace, model, revisions, target.since, now)
        new, old = readings[target.canary_revision], readings[target.stable_revision]
    except PrometheusError as err:
        log.warning(
            "canary of %s/%s holds: %s",
            namespace,
            name,
            err,
            extra={"obj_kind": "ModelDeployment", "obj_namespace": namespace, "obj_name": name},
        )
        return run_canary(md, outcome, held, None, now, unmeasured=str(err))
    measured = StepMeasurement(
        canary_requests=None if new.requests is None else round(new.requests),
        canary_errors=None if new.errors is None else round(new.errors),
        canary_ttft_p99_seconds=new.ttft_p99_seconds,
        stable_ttft_p99_seconds=old.ttft_p99_seconds,
    )
    return run_canary(md, outcome, held, measured, now)


def prune_versions(kube: Kube, cache: ClusterCache, body: dict[str, Any], outcome: ModelOutcome) -> int:
    """Delete the versions' Services the model held and no longer renders; the deletes made."""
    meta = body["metadata"]
    wanted = {o["metadata"]["name"] for o in outcome.objects if o["kind"] == "Service"}
    deleted = 0
    for suffix in (STABLE_SUFFIX, CANARY_SUFFIX):
        name = service_name(meta["name"], suffix)
        if name not in wanted:
            deleted += delete_controlled(kube, cache, body, cache.child("Service", meta["namespace"], name))
    return deleted
