"""kopf handlers: thin. Each one names what woke it and hands over to the reconciler.

Only `on.event` and `on.startup` are used. kopf's create/update handlers keep their progress in
annotations on the user's object and its daemons add finalizers; gpupool needs neither (owner
references take care of deletion, and a periodic resync gives level-triggered behaviour), so the
user's objects are never written except for their status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from typing import Any

import kopf

from gpupool.controller import autoscaler, metrics
from gpupool.controller.kube import MODEL_DEPLOYMENT, Kube, load_client
from gpupool.controller.reconciler import (
    forget_model,
    forget_pool,
    forget_workload,
    known_pools,
    model_for_label,
    note_preemption,
    reconcile_model,
    reconcile_pools,
    remember_pool,
    remember_workload,
    resync_all,
)
from gpupool.placement.accounting import PREEMPTION_REASON
from gpupool.render.labels import MANAGED_BY, MANAGED_BY_LABEL, POOL_LABEL, SELECTOR_LABEL

log = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("GPUPOOL_RESYNC_SECONDS", "60"))
WORKERS = int(os.environ.get("GPUPOOL_WORKERS", "8"))
QUEUED_OBJECTS = int(os.environ.get("GPUPOOL_QUEUED_OBJECTS", "64"))
POOL_ACCOUNTING_SECONDS = float(os.environ.get("GPUPOOL_POOL_ACCOUNTING_SECONDS", "2"))
STATUS_REFRESH_SECONDS = float(os.environ.get("GPUPOOL_STATUS_REFRESH_SECONDS", "0.5"))
STATUS_WORKERS = int(os.environ.get("GPUPOOL_STATUS_WORKERS", "3"))


class Marks:
    """Keys that handler threads mark and one loop takes all at once, none lost in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[Any] = set()

    def add(self, key: Any) -> None:
        with self._lock:
            self._keys.add(key)

    def update(self, keys: Any) -> None:
        with self._lock:
            self._keys.update(keys)

    def take(self) -> set[Any]:
        with self._lock:
            keys, self._keys = self._keys, set()
        return keys


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    tune(settings)
    memo.kube = Kube(load_client(os.environ.get("KUBECONFIG")))


def tune(settings: kopf.OperatorSettings) -> None:
    # Events are posted deliberately by the reconciler, only when something changed.
    settings.posting.enabled = False
    settings.execution.max_workers = WORKERS
    # kopf starts a task per object with events and keeps it a while after its last event. A
    # thousand models applied at once would otherwise hold a thousand parsed events in memory
    # while the handler threads work through them; past this many the watch waits instead.
    settings.queueing.worker_limit = QUEUED_OBJECTS
    settings.queueing.idle_timeout = 0.5
    settings.watching.server_timeout = 300
    # Only gpupool's Deployments and pods reach the operator: the API server filters the watches
    # (the handlers' own label filters are applied by kopf after the events arrive).
    managed = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    settings.watching.label_selectors["apps", "deployments"] = managed
    settings.watching.label_selectors["pods"] = managed
    settings.networking.request_timeout = 60


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **_: Any) -> None:
    """Level-triggered safety net: recompute everything from the world at a fixed interval."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                await asyncio.to_thread(resync_all, memo.kube)
            except Exception:
                log.exception("resync failed")

    memo.resync_task = asyncio.get_running_loop().create_task(loop())


@kopf.on.startup()
async def start_pool_accounting(memo: kopf.Memo, **_: Any) -> None:
    """Recount a pool shortly after its workloads change, at most once per interval.

    Counting walks every node and pod, so workload events only mark the pool; this loop does the
    work, which keeps the cost flat however many models change at once.
    """
    memo.dirty_pools = Marks()

    async def loop() -> None:
        while True:
            await asyncio.sleep(POOL_ACCOUNTING_SECONDS)
            pools = memo.dirty_pools.take()
            if not pools:
                continue
            models = await asyncio.to_thread(
                _guarded, "InferencePool", reconcile_pools, memo.kube, sorted(pools)
            )
            # Models whose tier, quota or room on these pools changed: waiting for room, or
            # holding borrowed accelerators their lender now wants back.
            for namespace, model in models or []:
                await asyncio.to_thread(
                    _guarded, "ModelDeployment", reconcile_model, memo.kube, namespace, model
                )

    memo.pool_task = asyncio.get_running_loop().create_task(loop())


@kopf.on.startup()
async def start_status_refresh(memo: kopf.Memo, **_: Any) -> None:
    """Bring models' status up to date with their Deployments' readiness, behind the user's changes.

    A Deployment's status changes several times while its pods start, for every model at once
    after a bulk apply. Handling each change in kopf's workers made a user's new or changed model
    wait behind that backlog; here the changes only mark their model, and this loop reconciles
    each marked model once per round with a few threads of its own, the Deployments alone.
    """
    memo.stale_models = Marks()

    refresh_one = functools.partial(reconcile_model, workloads_only=True)

    async def refresh(batch: list[tuple[str, str]]) -> None:
        for namespace, name in batch:
            await asyncio.to_thread(_guarded, "ModelDeployment", refresh_one, memo.kube, namespace, name)

    async def loop() -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH_SECONDS)
            models = sorted(memo.stale_models.take())
            if models:
                await asyncio.gather(*(refresh(models[i::STATUS_WORKERS]) for i in range(STATUS_WORKERS)))

    memo.refresh_task = asyncio.get_running_loop().create_task(loop())


@kopf.on.startup()
async def start_autoscaler(memo: kopf.Memo, **_: Any) -> None:
    """Evaluate each pool's autoscaled models every evaluation interval (spec.autoscaling).

    The ModelDeployment watch keeps the list of autoscaled models; a pool is due when the smallest
    evaluation interval of its models has passed since its last evaluation.
    """

    async def loop() -> None:
        while True:
            await asyncio.sleep(autoscaler.TICK_SECONDS)
            try:
                due = autoscaler.due_pools(asyncio.get_running_loop().time())
                for pool, models in due.items():
                    await asyncio.to_thread(autoscaler.evaluate_pool, memo.kube, pool, models)
            except Exception:
                log.exception("autoscaler pass failed")

    memo.autoscaler_task = asyncio.get_running_loop().create_task(loop())


@kopf.on.cleanup()
async def stop_loops(memo: kopf.Memo, **_: Any) -> None:
    for name in ("resync_task", "pool_task", "refresh_task", "autoscaler_task"):
        task = getattr(memo, name, None)
        if task is not None:
            task.cancel()


@kopf.on.event("gpupool.io", "v1alpha1", "modeldeployments")
def model_changed(type: str, namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if namespace is None:
        return
    autoscaler.track(type, namespace, name, body)
    if type == "DELETED":
        metrics.forget_model(namespace, name)
        # Its demand leaves its pools' allocations: the others take its share at the next recount.
        pools = forget_model(namespace, name)
        if pools and hasattr(memo, "dirty_pools"):
            memo.dirty_pools.update(pools)
        return
    # With a status subresource only spec changes move the generation. A modification whose
    # generation the status already describes is our own status write coming back: nothing to do
    # (the periodic resync still covers drift of the children).
    observed = (body.get("status") or {}).get("observedGeneration")
    if type == "MODIFIED" and observed == body.metadata.get("generation"):
        return
    _guarded("ModelDeployment", reconcile_model, memo.kube, namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY_LABEL: "gpupool"})
def workload_changed(
    type: str, event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    pool = body.metadata.get("labels", {}).get(POOL_LABEL)
    if pool and hasattr(memo, "dirty_pools"):
        memo.dirty_pools.add(pool)
    if type == "DELETED":
        forget_workload(dict(event["object"]))
    elif not remember_workload(dict(event["object"])) or type == "ADDED":
        # Nothing the model's status reads changed, or we just applied it in the reconcile that
        # already wrote the model's status.
        return
    if namespace is None or not hasattr(memo, "stale_models"):
        return
    for owner in body.metadata.get("ownerReferences", []) or []:
        if owner.get("kind") == "ModelDeployment" and owner.get("apiVersion", "").startswith("gpupool.io/"):
            memo.stale_models.add((namespace, owner["name"]))


@kopf.on.event("gpupool.io", "v1alpha1", "inferencepools")
def pool_changed(type: str, event: kopf.RawEvent, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if type == "DELETED":
        forget_pool(name)
        return
    # The raw event carries the object as plain JSON data, which the cache keeps as it is.
    remember_pool(dict(event["object"]))
    changed = _guarded("InferencePool", reconcile_pools, memo.kube, [name]) or []
    # Models depend on the pool's spec, not on its status: re-plan them all when the spec changed
    # (or at start-up), not each time the pool's own status write comes back as an event; then
    # only the ones whose limits the new count changed.
    status = body.get("status") or {}
    if type in (None, "ADDED") or status.get("observedGeneration") != body.metadata.get("generation"):
        changed = sorted(set(changed) | set(_models_of_pool(memo.kube, name)))
    for namespace, model in changed:
        _guarded("ModelDeployment", reconcile_model, memo.kube, namespace, model)


def _models_of_pool(kube: Any, pool: str) -> list[tuple[str, str]]:
    models = []
    for m in kube.list(MODEL_DEPLOYMENT):
        spec = m.get("spec") or {}
        if spec.get("pool") == pool or any(p.get("name") == pool for p in spec.get("pools") or []):
            models.append((m["metadata"]["namespace"], m["metadata"]["name"]))
    return models


@kopf.on.event("", "v1", "nodes")
def node_changed(type: str, body: kopf.Body, name: str, memo: Any, **_: Any) -> None:
    """A node joined, left, was cordoned, became (un)ready or changed labels or capacity: recount
    the pools soon. Heartbeats and other status churn change none of these and are dropped."""
    if not hasattr(memo, "dirty_pools"):
        return
    status = body.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    seen = (
        tuple(sorted((body.metadata.get("labels") or {}).items())),
        bool((body.get("spec") or {}).get("unschedulable")),
        ready,
        tuple(sorted((status.get("allocatable") or {}).items())),
    )
    nodes = memo.setdefault("nodes", {})
    if type == "DELETED":
        nodes.pop(name, None)
    elif nodes.get(name) == seen:
        return
    else:
        nodes[name] = seen
    if type is None:
        return  # the initial listing: the start-up pass counts every pool anyway
    memo.dirty_pools.update(known_pools())


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY_LABEL: "gpupool"})
def pod_changed(type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Engine pods: recount their pool soon, and tell a model when the scheduler preempts one."""
    labels = body.metadata.get("labels", {})
    pool = labels.get(POOL_LABEL)
    # Only what the accounting reads: where the pod is bound, whether it still holds anything.
    # Readiness flips, probes and annotation patches change none of it.
    seen = (
        (body.get("spec") or {}).get("nodeName"),
        (body.get("status") or {}).get("phase"),
        bool(body.metadata.get("deletionTimestamp")),
    )
    pods = memo.setdefault("pods", {})
    key = (namespace, name)
    if type == "DELETED":
        pods.pop(key, None)
    if pool and hasattr(memo, "dirty_pools") and (type == "DELETED" or pods.get(key) != seen):
        memo.dirty_pools.add(pool)
    if type != "DELETED":
        pods[key] = seen
    model = labels.get(SELECTOR_LABEL)
    if namespace is None or not model or type == "DELETED":
        return
    for condition in (body.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "DisruptionTarget"
            and condition.get("status") == "True"
            and condition.get("reason") == PREEMPTION_REASON
        ):
            node = (body.get("spec") or {}).get("nodeName") or "its node"
            message = f"{condition.get('message') or 'preempted'} (pod {name} on {node})"
            owner = model_for_label(namespace, model)
            if note_preemption(namespace, owner, name, message):
                _guarded("ModelDeployment", reconcile_model, memo.kube, namespace, owner)


def _guarded(kind: str, fn: Any, *args: Any) -> Any:
    """Log and count a failed pass instead of letting kopf retry a handler that has no state."""
    try:
        return fn(*args)
    except Exception:
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        log.exception("reconcile of %s %s failed; the next event or resync retries it", kind, args[1:])
        return None
