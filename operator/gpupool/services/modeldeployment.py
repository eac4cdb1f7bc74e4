"""Decide what a ModelDeployment should become: plan, objects, status and events.

Pure: it takes the ModelDeployment, its pool (or None) and what the cluster reports about the
workload, and returns the desired objects, the status to write and the events worth posting. The
controller does the IO. The same inputs always give the same outputs (the clock is a parameter), so a
resync that finds nothing new produces exactly the status that is already there, and nothing is
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpupool.api.conditions import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
    set_condition,
)
from gpupool.api.v1alpha1 import (
    AutoscalingStatus,
    InferencePool,
    ModelDeployment,
    ModelDeploymentStatus,
)
from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import UnknownModelError, get_model
from gpupool.catalog.types import Architecture
from gpupool.render import UnsupportedEngineError, render_model_deployment, selector_labels
from gpupool.sizing import Plan, SizingRequest, plan_deployment


@dataclass(frozen=True)
class WorkloadObservation:
    """What the cluster says about the workload gpupool rendered earlier (None: it does not exist)."""

    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    observed_generation_current: bool = True


@dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event to post on the ModelDeployment."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class ModelOutcome:
    """Everything the controller needs to converge one ModelDeployment."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    events: list[EventRecord] = field(default_factory=list)
    # False when the spec cannot be served: keep whatever runs today, touch nothing.
    apply: bool = False


@dataclass(frozen=True)
class ResolvedModel:
    label: str
    architecture: Architecture
    served_name: str


class SpecError(Exception):
    """A spec that cannot be served as it stands; `reason` is the condition reason."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve_model(md: ModelDeployment) -> ResolvedModel:
    source = md.spec.model
    if source.architecture is not None:
        served = source.served_name or md.metadata.get("name", "model")
        return ResolvedModel(label=served, architecture=source.architecture, served_name=served)
    assert source.name is not None  # the CRD's CEL rule guarantees one of the two
    try:
        entry = get_model(source.name)
    except UnknownModelError as err:
        raise SpecError(
            Reason.UNKNOWN_MODEL, f"{err}. Use a catalog name or give model.architecture."
        ) from err
    return ResolvedModel(
        label=entry.name,
        architecture=entry.architecture,
        served_name=source.served_name or entry.name,
    )


def sizing_request(md: ModelDeployment, pool: InferencePool) -> SizingRequest:
    spec = md.spec
    return SizingRequest(
        precision=spec.precision,
        kv_cache_dtype=spec.kv_cache_dtype,
        max_model_len=spec.max_model_len,
        concurrency=spec.traffic.concurrency,
        accelerators_per_node=pool.spec.accelerators_per_node,
        peak_qps=spec.traffic.peak_qps,
        qps_per_instance=spec.traffic.qps_per_instance,
        headroom=spec.traffic.headroom_percent / 100,
        price_per_accelerator_hour=pool.spec.price_per_accelerator_hour,
    )


def plan_model(md: ModelDeployment, pool: InferencePool) -> tuple[ResolvedModel, Plan]:
    """Size the model for the pool's accelerator; SpecError when it can never be served there."""
    resolved = resolve_model(md)
    if pool.spec.tier(md.spec.tier) is None:
        tiers = ", ".join(t.name for t in pool.spec.tiers)
        raise SpecError(
            Reason.UNKNOWN_TIER,
            f"pool {pool.metadata.get('name')!r} has no tier {md.spec.tier!r}; its tiers are {tiers}",
        )
    accelerator = get_accelerator(pool.spec.accelerator)
    try:
        plan = plan_deployment(
            resolved.architecture, accelerator, sizing_request(md, pool), model_name=resolved.label
        )
    except ValueError as err:
        raise SpecError(Reason.UNSUPPORTED_PRECISION, str(err)) from err
    if not plan.fits:
        raise SpecError(Reason.DOES_NOT_FIT, plan.reason)
    return resolved, plan


def autoscaled(md: ModelDeployment) -> bool:
    """The autoscaler owns the count: autoscaling is on and spec.replicas is not set."""
    policy = md.spec.autoscaling
    return policy is not None and policy.enabled and md.spec.replicas is None


def desired_replicas(md: ModelDeployment, plan: Plan) -> int:
    """spec.replicas when set (kubectl scale, an HPA or KEDA own it); else the autoscaler's last
    decision when it owns the count; else the plan. Both within spec.scaling's bounds."""
    if md.spec.replicas is not None:
        return md.spec.replicas
    count = plan.instances
    last = md.status.autoscaling.last_decision if md.status and md.status.autoscaling else None
    if autoscaled(md) and last is not None:
        count = last.to_replicas
    count = max(count, md.spec.scaling.min_replicas)
    if md.spec.scaling.max_replicas is not None:
        count = min(count, md.spec.scaling.max_replicas)
    return count


def _selector(md: ModelDeployment) -> str:
    """The scale subresource's selector: the pods' identity label, as the renderer writes it."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(md.metadata["name"]).items()))


def decide(
    md: ModelDeployment,
    pool: InferencePool | None,
    workload: WorkloadObservation | None,
    now: str,
) -> ModelOutcome:
    """The plan, objects, status and events for one ModelDeployment."""
    previous = md.status or ModelDeploymentStatus()
    generation = md.metadata.get("generation")
    conditions = list(previous.conditions)
    autoscaling = previous.autoscaling
    if not autoscaled(md):
        # The autoscaler stands aside: what it said last no longer describes anything.
        autoscaling = None
        conditions = [c for c in conditions if c.type != ConditionType.METRICS_AVAILABLE.value]
        md = md.model_copy(update={"status": previous.model_copy(update={"autoscaling": None})})
    try:
        if pool is None:
            raise SpecError(
                Reason.POOL_NOT_FOUND,
                f"InferencePool {md.spec.pool!r} does not exist; create it or set spec.pool to an "
                "existing pool (kubectl get inferencepools.gpupool.io)",
            )
        resolved, plan = plan_model(md, pool)
        replicas = desired_replicas(md, plan)
        try:
            objects = render_model_deployment(md, pool, plan, replicas)
        except UnsupportedEngineError as err:
            raise SpecError(Reason.UNSUPPORTED_ENGINE, str(err)) from err
    except SpecError as err:
        return _failed(md, previous, conditions, err, generation, workload, now, autoscaling)

    observed = workload or WorkloadObservation()
    ready = min(observed.ready_replicas, replicas)
    conditions = set_condition(
        conditions,
        ConditionType.PLANNED,
        ConditionStatus.TRUE,
        Reason.PLANNED,
        plan.reason,
        generation,
        now,
    )
    conditions = set_condition(
        conditions,
        ConditionType.DEGRADED,
        ConditionStatus.FALSE,
        Reason.RECONCILED,
        "",
        generation,
        now,
    )
    settled = (
        workload is not None
        and observed.observed_generation_current
        and observed.updated_replicas >= replicas
        and observed.ready_replicas >= replicas
        and observed.replicas == replicas
    )
    if replicas == 0:
        ready_state = (ConditionStatus.TRUE, Reason.SCALED_TO_ZERO, "scaled to zero instances")
    elif settled:
        ready_state = (
            ConditionStatus.TRUE,
            Reason.AVAILABLE,
            f"{ready}/{replicas} instances ready",
        )
    elif ready > 0:
        ready_state = (
            ConditionStatus.TRUE,
            Reason.INSTANCES_STARTING,
            f"{ready}/{replicas} instances ready",
        )
    else:
        ready_state = (
            ConditionStatus.FALSE,
            Reason.INSTANCES_STARTING,
            f"0/{replicas} instances ready",
        )
    conditions = set_condition(conditions, ConditionType.READY, *ready_state, generation, now)
    if settled or replicas == 0:
        progressing = (ConditionStatus.FALSE, Reason.RECONCILED, "workload matches the spec")
    else:
        progressing = (
            ConditionStatus.TRUE,
            Reason.ROLLING_OUT,
            f"{observed.updated_replicas} of {replicas} instances updated, {observed.ready_replicas} ready",
        )
    conditions = set_condition(conditions, ConditionType.PROGRESSING, *progressing, generation, now)

    status = ModelDeploymentStatus(
        observed_generation=generation,
        model=resolved.label,
        plan=plan,
        replicas=replicas,
        ready_replicas=ready,
        selector=_selector(md),
        conditions=conditions,
        autoscaling=autoscaling,
    )
    return ModelOutcome(objects=objects, status=status, events=_events(previous, status), apply=True)


def _failed(
    md: ModelDeployment,
    previous: ModelDeploymentStatus,
    conditions: list[Condition],
    err: SpecError,
    generation: int | None,
    workload: WorkloadObservation | None,
    now: str,
    autoscaling: AutoscalingStatus | None = None,
) -> ModelOutcome:
    """A spec that cannot be served: say why, keep what already runs, write no workload."""
    conditions = set_condition(
        conditions,
        ConditionType.PLANNED,
        ConditionStatus.FALSE,
        err.reason,
        err.message,
        generation,
        now,
    )
    conditions = set_condition(
        conditions,
        ConditionType.DEGRADED,
        ConditionStatus.TRUE,
        err.reason,
        err.message,
        generation,
        now,
    )
    running = workload.ready_replicas if workload else 0
    kept = f"; the previous workload keeps serving ({running} ready)" if running else ""
    conditions = set_condition(
        conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        err.reason,
        err.message + kept,
        generation,
        now,
    )
    conditions = set_condition(
        conditions,
        ConditionType.PROGRESSING,
        ConditionStatus.FALSE,
        err.reason,
        "fix the spec to continue",
        generation,
        now,
    )
    status = ModelDeploymentStatus(
        observed_generation=generation,
        model=md.spec.model.name or md.spec.model.served_name,
        plan=previous.plan if workload else None,
        replicas=workload.replicas if workload else 0,
        ready_replicas=running,
        selector=_selector(md),
        conditions=conditions,
        autoscaling=autoscaling,
    )
    return ModelOutcome(objects=[], status=status, events=_events(previous, status), apply=False)


def _events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[EventRecord]:
    """Events only for what changed, so a resync that changes nothing posts nothing."""
    events: list[EventRecord] = []
    plan = current.plan
    if plan is not None and (previous.plan is None or previous.plan != plan):
        events.append(
            EventRecord(
                "Normal",
                "Planned",
                f"TP={plan.tensor_parallel}, {plan.instances} instance(s) on {plan.accelerator}: "
                + plan.reason,
            )
        )
    if previous.replicas != current.replicas and plan is not None:
        message = f"desired instances {previous.replicas} -> {current.replicas}"
        last = current.autoscaling.last_decision if current.autoscaling else None
        if last is not None and (last.from_replicas, last.to_replicas) == (
            previous.replicas,
            current.replicas,
        ):
            message = f"autoscaler: {last.reason}"
        events.append(EventRecord("Normal", "Scaled", message))
    for type_ in (ConditionType.DEGRADED, ConditionType.READY):
        before = find_condition(previous.conditions, type_)
        after = find_condition(current.conditions, type_)
        if after is None or (before and (before.status, before.reason) == (after.status, after.reason)):
            continue
        if type_ == ConditionType.DEGRADED and after.status == ConditionStatus.TRUE:
            events.append(EventRecord("Warning", after.reason, after.message))
        if type_ == ConditionType.READY and after.reason == Reason.AVAILABLE:
            events.append(EventRecord("Normal", after.reason, after.message))
    return events
