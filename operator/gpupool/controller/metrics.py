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
POOL_TENANT_ACCELERATORS = Gauge(
    "gpupool_pool_tenant_accelerators",
    "Accelerators of a pool per tenant: allocated (bound pods), pending, and the tenant's limit.",
    ["pool", "tenant", "state"],
)
POOL_TENANT_COST = Gauge(
    "gpupool_pool_tenant_cost_per_hour",
    "Price per hour of the accelerators a tenant's pods hold on a pool.",
    ["pool", "tenant"],
)
POOL_COST = Gauge(
    "gpupool_pool_cost_per_hour", "Price per hour of the accelerators held on a pool.", ["pool"]
)
QUEUE_DEPTH = Gauge("gpupool_workqueue_depth", "Keys queued now in the work queue.")
QUEUE_WAITING = Gauge(
    "gpupool_workqueue_waiting", "Keys waiting in the work queue for a delay or a retry's backoff."
)
QUEUE_RETRIES = Counter(
    "gpupool_workqueue_retries_total", "Passes that failed and were queued again after a backoff.", ["kind"]
)
RESYNC_MODELS = Counter(
    "gpupool_resync_models_total",
    "Models seen by a resync: queued for a pass, or left alone as unchanged since their last settled pass.",
    ["outcome"],
)
MODEL_PLACED = Gauge(
    "gpupool_model_placed_instances", "Desired instances of a model per pool.", ["namespace", "name", "pool"]
)


def observe_model(
    namespace: str, name: str, status: ModelDeploymentStatus, writes: int, seconds: float
) -> set[str]:
    """Record one pass; returns the pools the model now has a per-pool series for."""
    RECONCILES.labels("ModelDeployment").inc()
    RECONCILE_SECONDS.labels("ModelDeployment").observe(seconds)
    WRITES.labels("ModelDeployment").inc(writes)
    DESIRED.labels(namespace, name).set(status.replicas)
    READY.labels(namespace, name).set(status.ready_replicas)
    if status.plan is not None and status.plan.tensor_parallel is not None:
        TENSOR_PARALLEL.labels(namespace, name).set(status.plan.tensor_parallel)
    if status.cost_per_hour is not None:
        COST.labels(namespace, name).set(status.cost_per_hour)
    for placement in status.placements:
        MODEL_PLACED.labels(namespace, name, placement.pool).set(placement.instances)
    return {p.pool for p in status.placements}


def forget_model(namespace: str, name: str, pools: set[str]) -> None:
    """Remove a deleted model's series; `pools` are those `observe_model` last returned."""
    for gauge in (DESIRED, READY, TENSOR_PARALLEL, COST, AUTOSCALER_DESIRED):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for pool in pools:
        with contextlib.suppress(KeyError):
            MODEL_PLACED.remove(namespace, name, pool)


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
    if status.cost_per_hour is not None:
        POOL_COST.labels(name).set(status.cost_per_hour)
    held = status.accelerators.allocated if status.accelerators else 0
    for tenant in status.tenants:
        POOL_TENANT_ACCELERATORS.labels(name, tenant.name, "allocated").set(tenant.accelerators)
        POOL_TENANT_ACCELERATORS.labels(name, tenant.name, "pending").set(tenant.pending)
        if tenant.limit is not None:
            POOL_TENANT_ACCELERATORS.labels(name, tenant.name, "limit").set(tenant.limit)
        if status.cost_per_hour is not None and held:
            POOL_TENANT_COST.labels(name, tenant.name).set(
                round(status.cost_per_hour * tenant.accelerators / held, 4)
            )
        elif status.cost_per_hour is not None:
            POOL_TENANT_COST.labels(name, tenant.name).set(0)


# Counters start at zero for both kinds, so rate() and alerts on them work before the first event.
for _kind in ("ModelDeployment", "InferencePool"):
    RECONCILES.labels(_kind)
    RECONCILE_ERRORS.labels(_kind)
    WRITES.labels(_kind)
for _kind in ("ModelDeployment", "InferencePool", "Resync", "Autoscale"):
    QUEUE_RETRIES.labels(_kind)
for _direction in ("Up", "Down", "Hold"):
    SCALING_DECISIONS.labels(_direction)
