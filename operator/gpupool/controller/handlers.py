"""kopf handlers: thin. Each one names what woke it and hands over to the reconciler.

Only `on.event` and `on.startup` are used. kopf's create/update handlers keep their progress in
annotations on the user's object and its daemons add finalizers; gpupool needs neither (owner
references take care of deletion, and a periodic resync gives level-triggered behaviour), so the
user's objects are never written except for their status.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

from gpupool.controller import metrics
from gpupool.controller.kube import Kube, load_client
from gpupool.controller.reconciler import reconcile_model, reconcile_pool, resync_all
from gpupool.render.labels import MANAGED_BY_LABEL

log = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("GPUPOOL_RESYNC_SECONDS", "60"))
WORKERS = int(os.environ.get("GPUPOOL_WORKERS", "8"))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Events are posted deliberately by the reconciler, only when something changed.
    settings.posting.enabled = False
    settings.execution.max_workers = WORKERS
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    memo.kube = Kube(load_client(os.environ.get("KUBECONFIG")))


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


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = getattr(memo, "resync_task", None)
    if task is not None:
        task.cancel()


@kopf.on.event("gpupool.io", "v1alpha1", "modeldeployments")
def model_changed(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    if namespace is None:
        return
    if type == "DELETED":
        metrics.forget_model(namespace, name)
        return
    _guarded("ModelDeployment", reconcile_model, memo.kube, namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY_LABEL: "gpupool"})
def workload_changed(body: kopf.Body, namespace: str | None, memo: Any, **_: Any) -> None:
    for owner in body.metadata.get("ownerReferences", []) or []:
        if owner.get("kind") == "ModelDeployment" and owner.get("apiVersion", "").startswith("gpupool.io/"):
            _guarded("ModelDeployment", reconcile_model, memo.kube, namespace, owner["name"])


@kopf.on.event("gpupool.io", "v1alpha1", "inferencepools")
def pool_changed(type: str, name: str, memo: Any, **_: Any) -> None:
    if type == "DELETED":
        return
    models = _guarded("InferencePool", reconcile_pool, memo.kube, name) or []
    for namespace, model in models:
        _guarded("ModelDeployment", reconcile_model, memo.kube, namespace, model)


def _guarded(kind: str, fn: Any, *args: Any) -> Any:
    """Log and count a failed pass instead of letting kopf retry a handler that has no state."""
    try:
        return fn(*args)
    except Exception:
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        log.exception("reconcile of %s %s failed; the next event or resync retries it", kind, args[1:])
        return None
