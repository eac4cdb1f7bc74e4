"""One idempotent reconcile per kind: read the world, ask the pure core, write only the difference.

Handlers (edge-triggered) and the periodic resync (level-triggered) both end here, so the same
function runs whatever woke it up. A lock per object keeps two triggers from interleaving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from gpupool.api.conditions import (
    ConditionStatus,
    ConditionType,
    Reason,
    now_rfc3339,
    set_condition,
)
from gpupool.api.v1alpha1 import (
    InferencePool,
    InferencePoolStatus,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from gpupool.controller import metrics
from gpupool.controller.kube import (
    CONFIGMAP,
    DEPLOYMENT,
    INFERENCE_POOL,
    MODEL_DEPLOYMENT,
    NODE,
    POD,
    SERVICE,
    Kube,
    resource_of,
    with_applied_hash,
)
from gpupool.render import object_name, render_priority_classes
from gpupool.render.labels import MANAGED_BY, MANAGED_BY_LABEL
from gpupool.services.modeldeployment import (
    ModelOutcome,
    WorkloadObservation,
    decide,
)
from gpupool.services.pool import pool_status

log = logging.getLogger(__name__)

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


@contextmanager
def _locked(key: tuple[str, str]) -> Iterator[None]:
    with _locks_guard:
        lock = _locks[key]
    with lock:
        yield


def _short(err: ValidationError) -> str:
    parts = []
    for problem in err.errors()[:5]:
        where = ".".join(str(p) for p in problem["loc"])
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def parse_status(raw: Any, kind: type[ModelDeploymentStatus] | type[InferencePoolStatus]) -> Any:
    """Our own earlier status, if it still parses; an older or hand-edited one is just dropped."""
    if not raw:
        return None
    try:
        return kind.model_validate(raw)
    except ValidationError:
        return None


def observe_workload(deployment: dict[str, Any] | None) -> WorkloadObservation | None:
    if deployment is None:
        return None
    status = deployment.get("status") or {}
    generation = deployment.get("metadata", {}).get("generation", 0)
    return WorkloadObservation(
        replicas=int(status.get("replicas", 0) or 0),
        ready_replicas=int(status.get("readyReplicas", 0) or 0),
        updated_replicas=int(status.get("updatedReplicas", 0) or 0),
        observed_generation_current=status.get("observedGeneration", 0) >= generation,
    )


def _invalid_spec_status(body: dict[str, Any], message: str) -> dict[str, Any]:
    """Status for a stored spec our models reject (the CRD schema let it through)."""
    previous = parse_status(body.get("status"), ModelDeploymentStatus) or ModelDeploymentStatus()
    generation = body["metadata"].get("generation")
    now = now_rfc3339()
    conditions = list(previous.conditions)
    for type_ in (ConditionType.READY, ConditionType.PLANNED):
        conditions = set_condition(
            conditions, type_, ConditionStatus.FALSE, Reason.INVALID_SPEC, message, generation, now
        )
    conditions = set_condition(
        conditions,
        ConditionType.DEGRADED,
        ConditionStatus.TRUE,
        Reason.INVALID_SPEC,
        message,
        generation,
        now,
    )
    status = previous.model_copy(update={"observed_generation": generation, "conditions": conditions})
    return status.to_wire()


# Children as listed at the start of a resync pass, by (kind, namespace, name).
Snapshot = dict[tuple[str, str, str], dict[str, Any]]


# A last step before the decision: the autoscaler records its decision in the model's status here.
Adjust = Callable[[ModelDeployment, WorkloadObservation | None], ModelDeployment]


def reconcile_model(
    kube: Kube,
    namespace: str,
    name: str,
    snapshot: Snapshot | None = None,
    adjust: Adjust | None = None,
) -> ModelOutcome | None:
    """Converge one ModelDeployment. Returns what was decided (None when it is gone).

    With a snapshot (the resync pass), children are compared with the listed copies instead of
    being read one by one; the ModelDeployment itself is always read fresh, so its status is
    never compared with a stale copy.
    """
    started = time.perf_counter()
    with _locked((namespace, name)):
        body = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        try:
            ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            message = f"spec is invalid: {_short(err)}"
            if kube.apply_status(MODEL_DEPLOYMENT, body, _invalid_spec_status(body, message)):
                kube.post_event(body, "Warning", Reason.INVALID_SPEC.value, message, now_rfc3339())
            return None
        md = ModelDeployment(
            metadata=body["metadata"],
            spec=ModelDeploymentSpec.model_validate(body["spec"]),
            status=parse_status(body.get("status"), ModelDeploymentStatus),
        )
        pool = _read_pool(kube, md.spec.pool)
        if snapshot is None:
            deployment = kube.get(DEPLOYMENT, namespace, object_name(name))
        else:
            deployment = snapshot.get(("Deployment", namespace, object_name(name)))
        workload = observe_workload(deployment)
        if adjust is not None:
            md = adjust(md, workload)
        outcome = decide(md, pool, workload, now_rfc3339())
        writes = 0
        if outcome.apply:
            for obj in outcome.objects:
                if deployment is None:
                    # A new workload: nothing to compare with, so skip the reads.
                    kube.apply(with_applied_hash(obj))
                    writes += 1
                else:
                    key = (obj["kind"], namespace, obj["metadata"]["name"])
                    current = snapshot.get(key) if snapshot is not None else None
                    if resource_of(obj) == DEPLOYMENT:
                        current = deployment
                    elif snapshot is not None and current is None:
                        current = kube.get(resource_of(obj), namespace, obj["metadata"]["name"])
                    writes += kube.apply_if_changed(obj, current)
        if kube.apply_status(MODEL_DEPLOYMENT, body, outcome.status.to_wire()):
            writes += 1
        now = now_rfc3339()
        for event in outcome.events:
            kube.post_event(body, event.type, event.reason, event.message, now)
        metrics.observe_model(namespace, name, outcome.status, writes, time.perf_counter() - started)
        return outcome


# The last body seen of each pool, kept current by the pool watch: every model reconcile needs its
# pool, and reading it from the API server each time is the largest share of a reconcile's reads.
_pools: dict[str, dict[str, Any]] = {}


def remember_pool(body: dict[str, Any]) -> None:
    _pools[body["metadata"]["name"]] = body


def forget_pool(name: str) -> None:
    _pools.pop(name, None)


def _read_pool(kube: Kube, name: str) -> InferencePool | None:
    body = _pools.get(name) or kube.get(INFERENCE_POOL, None, name)
    if body is None:
        return None
    try:
        return InferencePool(
            metadata=body["metadata"],
            spec=body["spec"],
            status=parse_status(body.get("status"), InferencePoolStatus),
        )
    except ValidationError as err:
        log.warning(
            "pool %s does not parse: %s",
            name,
            _short(err),
            extra={"obj_kind": "InferencePool", "obj_name": name},
        )
        return None


def reconcile_pool(kube: Kube, name: str) -> list[tuple[str, str]]:
    """Converge one pool: its PriorityClasses and its status. Returns the models that use it."""
    with _locked(("", name)):
        body = kube.get(INFERENCE_POOL, None, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return []
        pool = _read_pool(kube, name)
        if pool is None:
            return []
        for obj in render_priority_classes(pool):
            kube.apply_if_changed(obj)
        nodes = kube.list(NODE)
        pods = kube.list(POD, field_selector="status.phase!=Succeeded,status.phase!=Failed")
        status = pool_status(pool, nodes, pods, now_rfc3339())
        kube.apply_status(INFERENCE_POOL, body, status.to_wire())
        metrics.observe_pool(name, status)
    return [
        (m["metadata"]["namespace"], m["metadata"]["name"])
        for m in kube.list(MODEL_DEPLOYMENT)
        if (m.get("spec") or {}).get("pool") == name
    ]


def resync_all(kube: Kube) -> None:
    """The level-triggered pass: every pool, then every model, from what the API server holds now."""
    started = time.perf_counter()
    for pool in kube.list(INFERENCE_POOL):
        try:
            reconcile_pool(kube, pool["metadata"]["name"])
        except Exception:  # one bad object must not stop the pass for the others
            log.exception("resync of pool %s failed", pool["metadata"]["name"])
    managed = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    snapshot: Snapshot = {
        (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]): obj
        for resource in (DEPLOYMENT, SERVICE, CONFIGMAP)
        for obj in kube.list(resource, label_selector=managed)
    }
    models = [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in kube.list(MODEL_DEPLOYMENT)]
    for namespace, name in models:
        try:
            reconcile_model(kube, namespace, name, snapshot)
        except Exception:
            log.exception(
                "resync of %s/%s failed",
                namespace,
                name,
                extra={"obj_kind": "ModelDeployment", "obj_namespace": namespace, "obj_name": name},
            )
    log.info("resync of %d models took %.1fs", len(models), time.perf_counter() - started)
