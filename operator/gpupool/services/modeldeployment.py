"""Decide what a ModelDeployment should become: plan, objects, status and events.

Pure: it takes the ModelDeployment, its pool (or None) and what the cluster reports about the
workload, and returns the desired objects, the status to write and the events worth posting. The
controller does the IO. The same inputs always give the same outputs (the clock is a parameter), so a
resync that finds nothing new produces exactly the status that is already there, and nothing is
written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gpupool.api.conditions import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
    set_condition,
)
from gpupool.api.tenancy import PlacementLimit, PoolPlacement, PoolPreference
from gpupool.api.v1alpha1 import (
    AutoscalingStatus,
    InferencePool,
    ModelDeployment,
    ModelDeploymentStatus,
)
from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import UnknownModelError, get_model
from gpupool.catalog.types import Accelerator, Architecture, KVCacheDtype, Vendor
from gpupool.placement import (
    Allocation,
    Claim,
    CrossPoolPlacement,
    InstanceCaps,
    InstanceRequest,
    PlacementReason,
    PoolOption,
    PoolState,
    allocated_caps,
    demand_of,
    latency_floor_ms,
    place_across_pools,
    reallocate,
    running_instances,
    tenant_of,
    workload_key,
)
from gpupool.placement.pools import DEFAULT_HYSTERESIS_INSTANCES, rank_key, why_unusable
from gpupool.render import (
    UnsupportedEngineError,
    object_name,
    render_model_deployment,
    selector_labels,
    workload_name,
)
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
    # What the model asked of each pool and what the limits allowed, by pool name: the operator
    # re-evaluates the model when a pool's accounting would answer differently.
    asks: dict[str, InstanceCaps] = field(default_factory=dict)
    # Each pool's allocation with this model's demand in it: the other models read theirs from it.
    allocations: dict[str, Allocation] = field(default_factory=dict)


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


@dataclass(frozen=True)
class UnparsedPool:
    """An InferencePool that exists but whose spec the operator cannot read (`message`: why)."""

    name: str
    message: str


def pool_invalid_error(pool: UnparsedPool) -> SpecError:
    return SpecError(
        Reason.POOL_INVALID,
        f"InferencePool {pool.name!r} exists but its spec is invalid ({pool.message}); fix the pool "
        "(kubectl describe inferencepool.gpupool.io " + pool.name + ") or set spec.pool to another pool",
    )


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
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
        max_num_batched_tokens=spec.engine.max_num_batched_tokens,
        max_num_seqs=spec.engine.max_num_seqs,
        tensor_parallel=spec.engine.tensor_parallel,
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
    context = resolved.architecture.max_position_embeddings
    if md.spec.max_model_len > context:
        raise SpecError(
            Reason.CONTEXT_TOO_LONG,
            f"spec.maxModelLen {md.spec.max_model_len:,} exceeds the {context:,}-token context of "
            f"{resolved.label} (max_position_embeddings): set spec.maxModelLen to {context} or less",
        )
    try:
        plan = plan_deployment(
            resolved.architecture, accelerator, sizing_request(md, pool), model_name=resolved.label
        )
    except (OverflowError, ZeroDivisionError) as err:
        raise SpecError(
            Reason.OUT_OF_RANGE,
            f"the spec's figures are too large to size ({err}): lower spec.traffic.peakQps, "
            "spec.maxModelLen or the model.architecture sizes",
        ) from err
    except ValueError as err:
        raise SpecError(_sizing_reason(md, accelerator), str(err)) from err
    if not plan.fits:
        raise SpecError(Reason.DOES_NOT_FIT, plan.reason)
    return resolved, plan


def _sizing_reason(md: ModelDeployment, accelerator: Accelerator) -> Reason:
    """The reason of a request the sizing refused: the precision or KV-cache type when the
    accelerator cannot hold it, else a spec the sizing cannot work with."""
    fp8_cache = md.spec.kv_cache_dtype is KVCacheDtype.FP8 and accelerator.vendor is Vendor.ASCEND
    if md.spec.precision not in accelerator.supported_precisions or fp8_cache:
        return Reason.UNSUPPORTED_PRECISION
    return Reason.INVALID_SPEC


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


# How long a Preempted condition holds at least, whatever the workload's status says.
PREEMPTION_SETTLE_SECONDS = 10.0


def _seconds_between(earlier: str, later: str) -> float:
    try:
        start = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
        end = datetime.fromisoformat(later.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return (end - start).total_seconds()


@dataclass(frozen=True)
class PoolContext:
    """A pool as the model's reconcile sees it: the object and, once counted, its state."""

    pool: InferencePool
    state: PoolState | None = None
    # Labels of the model's namespace, for tenants chosen by a namespaceSelector (None: unknown).
    namespace_labels: dict[str, str] | None = None
    # The pool's allocation over every model's demand at the last recount (None: not yet made).
    allocation: Allocation | None = None


@dataclass(frozen=True)
class Placement:
    """Where the instances go on one pool, and the limits that cut them."""

    replicas: int
    caps: InstanceCaps | None
    empty: bool = False  # the pool has no schedulable node
    allocation: Allocation | None = None  # the pool's allocation, this model's demand included
    lost: tuple[tuple[Claim, str], ...] = ()  # instances on nodes that left the pool, with why


def place_on_pool(md: ModelDeployment, context: PoolContext, plan: Plan, asked: int) -> Placement:
    """The count the pool's allocation gives the model (capacity is only reported).

    Every model of a pool reads its count from one allocation over all their demands
    (`gpupool.placement.allocation`), so the counts agree with one another and a recount that
    moves nothing changes none of them.
    """
    if context.state is None:
        return Placement(asked, None)  # not counted (the command line): nothing to share
    state = context.state
    namespace = str(md.metadata.get("namespace", ""))
    request = InstanceRequest(
        workload=workload_key(namespace, str(md.metadata.get("name", ""))),
        namespace=namespace,
        tier=md.spec.tier,
        tensor_parallel=plan.tensor_parallel,
        instances=asked,
    )
    tenant = tenant_of(state, namespace, context.namespace_labels)
    demand = demand_of(state, request, tenant.name if tenant else None)
    allocation = reallocate(state, context.allocation, demand)
    caps = allocated_caps(state, allocation, request, context.namespace_labels)
    # No schedulable node: tiers' shares of nothing would say zero, and pods that never exist never
    # make a cluster autoscaler add a node. The instances wait Pending, bounded, and Placed says why.
    return Placement(
        min(asked, caps.allowed),
        caps,
        empty=state.total == 0,
        allocation=allocation,
        lost=state.lost_by(request.workload),
    )


def lost_message(lost: tuple[tuple[Claim, str], ...]) -> str:
    """Which instances went with their nodes, for the Placed condition and its event."""
    shown = ", ".join(f"{claim.name} on {claim.node} ({why})" for claim, why in lost[:3])
    more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
    return (
        f"{len(lost)} instance(s) lost with their node: {shown}{more}; the instances on other nodes "
        "keep running, and the lost ones come back on another node when there is room"
    )


def _placed_condition(
    previous: ModelDeploymentStatus,
    placement: Placement,
    asked: int,
    replicas: int,
    ready: int,
    preemption: str | None,
    now: str,
) -> tuple[ConditionStatus, Reason, str] | None:
    """The Placed condition: True when every asked instance has room, else why not, with numbers.

    A preemption reported by the pod watch (`preemption`) holds the condition at Preempted until
    every asked instance is back and ready; then the condition returns to what the caps say.
    """
    caps = placement.caps
    before = find_condition(previous.conditions, ConditionType.PLACED)
    if preemption is not None:
        return (ConditionStatus.FALSE, Reason.PREEMPTED, preemption)
    if placement.lost:
        return (ConditionStatus.FALSE, Reason.INSTANCES_LOST, lost_message(placement.lost))
    if before is not None and before.reason == Reason.PREEMPTED:
        # The workload's status trails the pods by a moment: hold the condition a little while
        # even when the counts already look whole, so a stale "all ready" does not end it.
        settling = _seconds_between(before.last_transition_time, now) < PREEMPTION_SETTLE_SECONDS
        if replicas < asked or ready < replicas or settling:
            return (ConditionStatus.FALSE, Reason.PREEMPTED, before.message)
    if caps is None:
        return None
    if placement.empty:
        message = (
            f"pool {caps.tier.pool} has no schedulable node with accelerators: the "
            f"{replicas} instance(s) wait Pending until nodes join the pool (label them with the "
            "pool's nodeSelector, or let a cluster autoscaler add them)"
        )
        return (ConditionStatus.FALSE, Reason.INSUFFICIENT_CAPACITY, message)
    binding = caps.binding(with_capacity=True)
    if not binding:
        return (ConditionStatus.TRUE, Reason.PLACED, caps.message(with_capacity=True))
    reason = Reason(caps.reason(with_capacity=True).value)
    message = caps.message(with_capacity=True)
    if reason is Reason.INSUFFICIENT_CAPACITY:
        message += "; the others wait Pending until room frees up or a node is added"
    return (ConditionStatus.FALSE, reason, message)


def _selector(md: ModelDeployment) -> str:
    """The scale subresource's selector: the pods' identity label, as the renderer writes it."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(md.metadata["name"]).items()))


def decide(
    md: ModelDeployment,
    pool: InferencePool | PoolContext | UnparsedPool | None,
    workload: WorkloadObservation | None,
    now: str,
    *,
    preemption: str | None = None,
) -> ModelOutcome:
    """The plan, objects, status and events for a ModelDeployment of one pool (spec.pool).

    With the pool's state (a `PoolContext`), the count is cut to what the tier and the tenant
    allow and the Placed condition says why; `preemption` is what the pod watch saw of instances
    the scheduler evicted for a higher tier.
    """
    unparsed = pool if isinstance(pool, UnparsedPool) else None
    if isinstance(pool, UnparsedPool):
        pool = None
    context = pool if isinstance(pool, PoolContext) else (PoolContext(pool) if pool is not None else None)
    pool = context.pool if context is not None else None
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
        if unparsed is not None:
            raise pool_invalid_error(unparsed)
        if pool is None:
            raise SpecError(
                Reason.POOL_NOT_FOUND,
                f"InferencePool {md.spec.pool!r} does not exist; create it or set spec.pool to an "
                "existing pool (kubectl get inferencepools.gpupool.io)",
            )
        resolved, plan = plan_model(md, pool)
        asked = desired_replicas(md, plan)
        assert context is not None
        placement = place_on_pool(md, context, plan, asked)
        replicas = placement.replicas
        objects = _render(md, pool, plan, replicas)
    except SpecError as err:
        return _failed(md, previous, conditions, err, generation, workload, now, autoscaling)

    observed = workload or WorkloadObservation()
    ready = min(observed.ready_replicas, replicas)
    placed = _placed_condition(previous, placement, asked, replicas, ready, preemption, now)
    if placed is not None:
        conditions = set_condition(conditions, ConditionType.PLACED, *placed, generation, now)
    caps = placement.caps
    limits = [c.status() for c in caps.binding(with_capacity=True)] if caps is not None else []
    price = pool.spec.price_per_accelerator_hour
    cost = None if price is None else round(price * replicas * plan.tensor_parallel, 4)
    placements = [
        PoolPlacement(
            pool=str(pool.metadata.get("name", "")),
            workload=object_name(str(md.metadata.get("name", ""))),
            ready=ready,
            accelerator=plan.accelerator,
            tensor_parallel=plan.tensor_parallel,
            instances=replicas,
            qps=round(replicas * (plan.qps_per_instance or 0.0), 3),
            cost_per_hour=cost,
        )
    ]
    conditions = set_condition(
        conditions,
        ConditionType.PLANNED,
        ConditionStatus.TRUE,
        Reason.PLANNED,
        plan.reason,
        generation,
        now,
    )
    settled = _settled(workload, replicas)
    conditions = _running(conditions, replicas, ready, settled, workload, generation, now)
    conditions = _capped_to_zero(conditions, asked, replicas, placed, generation, now)

    status = ModelDeploymentStatus(
        observed_generation=generation,
        model=resolved.label,
        plan=plan,
        replicas=replicas,
        ready_replicas=ready,
        selector=_selector(md),
        conditions=conditions,
        autoscaling=autoscaling,
        placements=placements,
        limits=limits,
        asked_replicas=asked,
        cost_per_hour=cost,
    )
    return _applied(objects, previous, status, {placements[0].pool: placement})


def _render(
    md: ModelDeployment, pool: InferencePool, plan: Plan, replicas: int, *, per_pool: bool = False
) -> list[dict[str, Any]]:
    """The model's objects on `pool`; SpecError when they cannot be rendered from this spec."""
    try:
        return render_model_deployment(md, pool, plan, replicas, per_pool=per_pool)
    except UnsupportedEngineError as err:
        raise SpecError(Reason.UNSUPPORTED_ENGINE, str(err)) from err
    except ValueError as err:
        raise SpecError(Reason.INVALID_SPEC, f"the objects cannot be rendered: {err}") from err


def _applied(
    objects: list[dict[str, Any]],
    previous: ModelDeploymentStatus,
    status: ModelDeploymentStatus,
    placements: Mapping[str, Placement],
) -> ModelOutcome:
    """The outcome of a model whose objects are applied, with what it asked of each pool and each
    pool's allocation."""
    return ModelOutcome(
        objects=objects,
        status=status,
        events=_events(previous, status),
        apply=True,
        asks={pool: p.caps for pool, p in placements.items() if p.caps is not None},
        allocations={pool: p.allocation for pool, p in placements.items() if p.allocation is not None},
    )


def _settled(workload: WorkloadObservation | None, replicas: int) -> bool:
    """The workload exists, runs the current template, and has exactly `replicas` ready."""
    return (
        workload is not None
        and workload.observed_generation_current
        and workload.updated_replicas >= replicas
        and workload.ready_replicas >= replicas
        and workload.replicas == replicas
    )


def _running(
    conditions: list[Condition],
    replicas: int,
    ready: int,
    settled: bool,
    workload: WorkloadObservation | None,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """A model whose workloads were rendered: not degraded, Ready and Progressing from the counts."""
    conditions = set_condition(
        conditions, ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.RECONCILED, "", generation, now
    )
    ready_state, progressing = _readiness(replicas, ready, settled, workload)
    conditions = set_condition(conditions, ConditionType.READY, *ready_state, generation, now)
    return set_condition(conditions, ConditionType.PROGRESSING, *progressing, generation, now)


def _capped_to_zero(
    conditions: list[Condition],
    asked: int,
    replicas: int,
    placed: tuple[ConditionStatus, Reason, str] | None,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """Zero instances because a limit leaves none is not ready: Ready=False with the limit's reason
    (scaled to zero is for a model that asks for none)."""
    if replicas > 0 or asked == 0 or placed is None or placed[0] != ConditionStatus.FALSE:
        return conditions
    _, reason, message = placed
    return set_condition(
        conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        reason,
        f"0 instances: {message}",
        generation,
        now,
    )


def _readiness(
    replicas: int, ready: int, settled: bool, workload: WorkloadObservation | None
) -> tuple[tuple[ConditionStatus, Reason, str], tuple[ConditionStatus, Reason, str]]:
    """The Ready and Progressing conditions from the desired and observed instance counts."""
    observed = workload or WorkloadObservation()
    if replicas == 0:
        ready_state = (ConditionStatus.TRUE, Reason.SCALED_TO_ZERO, "scaled to zero instances")
    elif settled:
        ready_state = (ConditionStatus.TRUE, Reason.AVAILABLE, f"{ready}/{replicas} instances ready")
    elif ready > 0:
        ready_state = (ConditionStatus.TRUE, Reason.INSTANCES_STARTING, f"{ready}/{replicas} instances ready")
    else:
        ready_state = (ConditionStatus.FALSE, Reason.INSTANCES_STARTING, f"0/{replicas} instances ready")
    if settled or replicas == 0:
        progressing = (ConditionStatus.FALSE, Reason.RECONCILED, "workload matches the spec")
    else:
        progressing = (
            ConditionStatus.TRUE,
            Reason.ROLLING_OUT,
            f"{observed.updated_replicas} of {replicas} instances updated, {observed.ready_replicas} ready",
        )
    return ready_state, progressing


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
    # Every condition describes this generation, Placed included: nothing of it is placed.
    conditions = set_condition(
        conditions,
        ConditionType.PLACED,
        ConditionStatus.FALSE,
        err.reason,
        "nothing of this generation is placed: " + err.message,
        generation,
        now,
    )
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
        # What runs keeps running: remember where, so that the pass that applies a fixed spec
        # also removes the Deployments it no longer needs, whichever pools they are on.
        placements=previous.placements,
    )
    # Placed and Degraded turn False and True with the same reason: one Warning says it, the
    # Degraded one (the last), whose message is the error itself.
    events = list({(e.type, e.reason): e for e in _events(previous, status)}.values())
    return ModelOutcome(objects=[], status=status, events=events, apply=False)


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
    before = find_condition(previous.conditions, ConditionType.PLACED)
    after = find_condition(current.conditions, ConditionType.PLACED)
    if after is not None and (
        before is None or (before.status, before.reason) != (after.status, after.reason)
    ):
        if after.status == ConditionStatus.FALSE:
            events.append(EventRecord("Warning", after.reason, after.message))
        elif before is not None and before.reason == Reason.PREEMPTED:
            events.append(
                EventRecord(
                    "Normal", Reason.RESTORED.value, "every preempted instance is back: " + after.message
                )
            )
        elif after.reason == Reason.OVERFLOWED or before is not None:
            events.append(EventRecord("Normal", after.reason, after.message))
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


# --------------------------------------------------------------------------------------------------
# Several pools (spec.pools)


def _pool_option(
    md: ModelDeployment,
    preference: PoolPreference,
    context: PoolContext | UnparsedPool | None,
    demand_qps: float,
) -> tuple[PoolOption | None, str | None, Placement | None]:
    """The option one allowed pool offers, or why it cannot serve the model."""
    if context is None:
        return None, f"InferencePool {preference.name} does not exist", None
    if isinstance(context, UnparsedPool):
        return None, pool_invalid_error(context).message, None
    pool = context.pool
    try:
        _, plan = plan_model(md, pool)
    except SpecError as err:
        return None, err.message, None
    accelerator = get_accelerator(pool.spec.accelerator)
    namespace = str(md.metadata.get("namespace", ""))
    key = workload_key(namespace, str(md.metadata.get("name", "")))
    running = running_instances(context.state, key) if context.state is not None else 0
    qps = plan.qps_per_instance or 0.0
    # Ask for as much as the whole demand would need here (and the hysteresis margin the way back
    # keeps), so the caps say what the pool can take.
    asked = running + (math.ceil(demand_qps / qps) if qps > 0 else 0) + DEFAULT_HYSTERESIS_INSTANCES
    placement = place_on_pool(md, context, plan, asked)
    caps = placement.caps
    room = caps.runnable if caps is not None else asked
    option = PoolOption(
        pool=preference.name,
        plan=plan,
        room=room,
        running=running,
        price_per_accelerator_hour=pool.spec.price_per_accelerator_hour,
        priority=preference.priority,
        max_instances=preference.max_instances,
        latency_ms=latency_floor_ms(plan, accelerator),
    )
    return option, None, placement


def _demand_qps(md: ModelDeployment, options: list[PoolOption]) -> float:
    """Requests per second to place: the traffic spec with headroom, or spec.replicas instances of
    the first-ranked pool; spec.scaling.maxReplicas of that pool at most."""
    usable = sorted(
        (o for o in options if why_unusable(o, md.spec.traffic.latency_slo_ms) is None), key=rank_key
    )
    best = usable[0].qps_per_instance if usable else 0.0
    traffic = md.spec.traffic
    demand = traffic.peak_qps * (1 + traffic.headroom_percent / 100)
    if md.spec.replicas is not None:
        demand = md.spec.replicas * best
    if md.spec.scaling.max_replicas is not None and best > 0:
        demand = min(demand, md.spec.scaling.max_replicas * best)
    return demand


def decide_pools(
    md: ModelDeployment,
    contexts: Mapping[str, PoolContext | UnparsedPool | None],
    workloads: Mapping[str, WorkloadObservation | None],
    now: str,
) -> ModelOutcome:
    """The objects, status and events for a ModelDeployment that may use several pools.

    Each allowed pool gets its own plan; `place_across_pools` splits the demand over them
    (docs/placement.md), and each pool's share runs as its own Deployment. `workloads` holds the
    observed Deployment per pool name. Status reports the total and each pool's share.
    """
    previous = md.status or ModelDeploymentStatus()
    generation = md.metadata.get("generation")
    conditions = [c for c in previous.conditions if c.type != ConditionType.METRICS_AVAILABLE.value]
    md = md.model_copy(update={"status": previous.model_copy(update={"autoscaling": None})})
    name = str(md.metadata.get("name", ""))
    try:
        resolved = resolve_model(md)
    except SpecError as err:
        return _failed(md, previous, conditions, err, generation, _total(workloads), now)

    # Demand first needs each pool's QPS per instance, which does not depend on the demand.
    probes = [_pool_option(md, p, contexts.get(p.name), 0.0) for p in md.spec.pools]
    demand = _demand_qps(md, [o for o, _, _ in probes if o is not None])
    options: list[PoolOption] = []
    placements: dict[str, Placement] = {}
    skipped: list[tuple[str, str]] = []
    for preference in md.spec.pools:
        option, why, placement = _pool_option(md, preference, contexts.get(preference.name), demand)
        if option is None or placement is None:
            skipped.append((preference.name, why or "unusable"))
            continue
        options.append(option)
        placements[option.pool] = placement
    if not options:
        reasons = "; ".join(f"{pool}: {why}" for pool, why in skipped)
        none = SpecError(Reason.POOL_SKIPPED, f"none of the allowed pools can serve the model: {reasons}")
        return _failed(md, previous, conditions, none, generation, _total(workloads), now)
    split = place_across_pools(
        options,
        demand,
        latency_slo_ms=md.spec.traffic.latency_slo_ms,
        min_instances=md.spec.scaling.min_replicas,
    )
    for pool_name, why in skipped:
        split = _skip(split, pool_name, why)
    by_pool = {o.pool: o for o in options}
    objects: list[dict[str, Any]] = []
    service: dict[str, Any] | None = None
    shares: list[PoolPlacement] = []
    limits: list[PlacementLimit] = []
    cost: float | None = 0.0
    ready_total = replicas_total = 0
    settled = True
    for share in split.shares:
        option = by_pool[share.pool]
        context = contexts[share.pool]
        assert isinstance(context, PoolContext)  # a pool without a context offers no option
        try:
            rendered = _render(md, context.pool, option.plan, share.instances, per_pool=True)
        except SpecError as err:
            split = _skip(split, share.pool, err.message)
            continue
        objects.extend(o for o in rendered if o["kind"] != "Service")
        service = service or next(o for o in rendered if o["kind"] == "Service")
        observed = workloads.get(share.pool) or WorkloadObservation()
        ready = min(observed.ready_replicas, share.instances)
        settled = settled and _settled(workloads.get(share.pool), share.instances)
        ready_total += ready
        replicas_total += share.instances
        shares.append(
            share.status().model_copy(update={"workload": workload_name(name, share.pool), "ready": ready})
        )
        if cost is not None:
            cost = None if share.cost_per_hour is None else cost + share.cost_per_hour
        caps = placements[share.pool].caps
        if caps is not None and share.instances >= option.room:
            # The pool gave all the room it has: say which limits stopped it.
            limits.extend(c.status() for c in caps.binding(with_capacity=True))
    if service is None:
        nothing = SpecError(Reason.POOL_SKIPPED, split.message)
        return _failed(md, previous, conditions, nothing, generation, _total(workloads), now)
    objects.append(service)

    first = by_pool[split.ranked[0]].plan
    placed_status = (
        ConditionStatus.FALSE
        if split.reason == PlacementReason.INSUFFICIENT_CAPACITY
        else ConditionStatus.TRUE
    )
    conditions = set_condition(
        conditions,
        ConditionType.PLACED,
        placed_status,
        Reason(split.reason.value),
        split.message,
        generation,
        now,
    )
    conditions = set_condition(
        conditions, ConditionType.PLANNED, ConditionStatus.TRUE, Reason.PLANNED, first.reason, generation, now
    )
    conditions = _running(
        conditions, replicas_total, ready_total, settled, _total(workloads), generation, now
    )
    conditions = _capped_to_zero(
        conditions,
        1 if demand > 0 else 0,
        replicas_total,
        (placed_status, Reason(split.reason.value), split.message),
        generation,
        now,
    )
    status = ModelDeploymentStatus(
        observed_generation=generation,
        model=resolved.label,
        plan=first,
        replicas=replicas_total,
        ready_replicas=ready_total,
        selector=_selector(md),
        conditions=conditions,
        placements=shares,
        limits=limits,
        asked_replicas=None,
        cost_per_hour=None if cost is None else round(cost, 4),
    )
    return _applied(objects, previous, status, placements)


def _skip(split: CrossPoolPlacement, pool: str, why: str) -> CrossPoolPlacement:
    return replace(
        split,
        shares=tuple(s for s in split.shares if s.pool != pool),
        skipped=(*split.skipped, (pool, why)),
        message=f"{split.message}; skipped {pool} ({why})",
    )


def _total(workloads: Mapping[str, WorkloadObservation | None]) -> WorkloadObservation | None:
    seen = [w for w in workloads.values() if w is not None]
    if not seen:
        return None
    return WorkloadObservation(
        replicas=sum(w.replicas for w in seen),
        ready_replicas=sum(w.ready_replicas for w in seen),
        updated_replicas=sum(w.updated_replicas for w in seen),
        observed_generation_current=all(w.observed_generation_current for w in seen),
    )
