"""Node and Pod objects as the API returns them, and pools, for the placement tests."""

from __future__ import annotations

from typing import Any

from gpupool.api.v1alpha1 import InferencePool

POOL = "h100"
GPU = "nvidia.com/gpu"


def make_pool(name: str = POOL, accelerator: str = "H100-80GB", **spec: Any) -> InferencePool:
    vendor = "ascend" if accelerator.startswith("Ascend") else "nvidia"
    return InferencePool.model_validate(
        {
            "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"vendor": vendor, "accelerator": accelerator, "nodeSelector": {"pool": name}, **spec},
        }
    )


def node(
    name: str,
    gpus: int = 8,
    *,
    pool: str = POOL,
    resource: str = GPU,
    cordoned: bool = False,
    ready: str | None = "True",
) -> dict[str, Any]:
    status: dict[str, Any] = {"allocatable": {resource: str(gpus), "cpu": "96"}}
    if ready is not None:
        status["conditions"] = [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": ready},
        ]
    return {
        "metadata": {"name": name, "labels": {"pool": pool}},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": status,
    }


def pod(
    name: str,
    gpus: int,
    *,
    node_name: str | None = None,
    namespace: str = "team-a",
    model: str | None = "chat",
    tier: str | None = "P1",
    pool: str | None = POOL,
    phase: str | None = None,
    resource: str = GPU,
    limits_only: bool = False,
    preempted: bool = False,
) -> dict[str, Any]:
    """A pod asking for `gpus` accelerators; gpupool's labels unless pool/model/tier are None."""
    labels: dict[str, str] = {}
    if pool is not None:
        labels["gpupool.io/pool"] = pool
    if model is not None:
        labels["gpupool.io/model-deployment"] = model
    if tier is not None:
        labels["gpupool.io/tier"] = tier
    amounts = {resource: str(gpus)}
    resources = {"limits": amounts} if limits_only else {"requests": amounts, "limits": amounts}
    status: dict[str, Any] = {"phase": phase or ("Running" if node_name else "Pending")}
    if preempted:
        status["conditions"] = [
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
        ]
    spec: dict[str, Any] = {"containers": [{"name": "engine", "resources": resources}]}
    if node_name is not None:
        spec["nodeName"] = node_name
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
        "status": status,
    }
