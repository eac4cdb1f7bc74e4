"""The operator's own Prometheus metrics, served on /metrics by `gpupool run`."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from gpupool.api.v1alpha1 import InferencePoolStatus, ModelDeploymentStatus

RECONCILES = Counter("gpupool_reconcile_total", "Reconcile passes.", ["kind"])
RECONCILE_ERRORS = Counter("gpupool_reconcile_errors_total", "Reconcile passes that raised.", ["kind"])
RECONCILE_SECONDS = Histogram(
    "gpupool_reconcile_duration_seconds",
    "Time of one reconcile pass.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITES = Counter("gpupool_api_writes_total", "Writes to the API server (applies and status).", ["kind"])
DESIRED = Gauge("gpupool_model_desired_replicas", "Desired instances.", ["namespace", "name"])
READY = Gauge("gpupool_model_ready_replicas", "Ready instances.", ["namespace", "name"])
TENSOR_PARALLEL = Gauge("gpupool_model_tensor_parallel", "Tensor-parallel degree.", ["namespace", "name"])
COST = Gauge(
    "gpupool_model_cost_per_hour",
    "Estimated cost per hour of the desired instances.",
    ["namespace", "name"],
)
POOL_ACCELERATORS = Gauge("gpupool_pool_accelerators", "Accelerators of a pool by state.", ["pool", "state"])
SCALING_DECISIONS = Counter(
    "gpupool_scaling_decisions_total", "Autoscaler decisions by direction (Up, Down, Hold).", ["direction"]
)
AUTOSCALER_DESIRED = Gauge(
    "gpupool_model_autoscaler_desired_replicas",
    "Instances the autoscaler's last decision asks for.",
    ["namespace", "name"],
)
POOL_TIER_ALLOCATED = Gauge(
    "gpupool_pool_tier_allocated", "Accelerators allocated per tier.", ["pool", "tier"]
)


def observe_model(
    namespace: str, name: str, status: ModelDeploymentStatus, writes: int, seconds: float
) -> None:
    RECONCILES.labels("ModelDeployment").inc()
    RECONCILE_SECONDS.labels("ModelDeployment").observe(seconds)
    WRITES.labels("ModelDeployment").inc(writes)
    DESIRED.labels(namespace, name).set(status.replicas)
    READY.labels(namespace, name).set(status.ready_replicas)
    if status.plan is not None:
        if status.plan.tensor_parallel is not None:
            TENSOR_PARALLEL.labels(namespace, name).set(status.plan.tensor_parallel)
        if status.plan.cost_per_hour is not None and status.plan.instances:
            # The plan's cost is for the planned instances; report it for the desired ones.
            per_instance = status.plan.cost_per_hour / status.plan.instances
            COST.labels(namespace, name).set(per_instance * status.replicas)


def forget_model(namespace: str, name: str) -> None:
    for gauge in (DESIRED, READY, TENSOR_PARALLEL, COST, AUTOSCALER_DESIRED):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


def forget_autoscaler(namespace: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        AUTOSCALER_DESIRED.remove(namespace, name)


def observe_pool(name: str, status: InferencePoolStatus) -> None:
    RECONCILES.labels("InferencePool").inc()
    if status.accelerators is not None:
        POOL_ACCELERATORS.labels(name, "total").set(status.accelerators.total)
        POOL_ACCELERATORS.labels(name, "allocated").set(status.accelerators.allocated)
        POOL_ACCELERATORS.labels(name, "free").set(status.accelerators.free)
    for tier in status.tiers:
        POOL_TIER_ALLOCATED.labels(name, tier.name).set(tier.allocated)


# Counters start at zero for both kinds, so rate() and alerts on them work before the first event.
for _kind in ("ModelDeployment", "InferencePool"):
    RECONCILES.labels(_kind)
    RECONCILE_ERRORS.labels(_kind)
    WRITES.labels(_kind)
for _direction in ("Up", "Down", "Hold"):
    SCALING_DECISIONS.labels(_direction)
