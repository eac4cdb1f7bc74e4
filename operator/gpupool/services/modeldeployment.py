"""Decide what a ModelDeployment should become: plan, objects, status and events.

Pure: `decide` takes the ModelDeployment, its pools (with their accounting, when counted), what the
cluster reports about its workloads and the autoscaler's decision, and returns the desired
objects, the status to write and the events worth posting. A model of one pool (spec.pool) and a
model of several (spec.pools) go through the same steps. The controller and `gpupool render` do
the IO. The same inputs always give the same outputs (the clock is a parameter), so a
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
from gpupool.api.weights import AccessMode, WeightsCache
from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import UnknownModelError, get_model
from gpupool.catalog.types import Accelerator, Architecture, KVCacheDtype, Precision, Vendor
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
    render_model_deployment,
    selector_labels,
    workload_name,
)
from gpupool.render.kueue import Admission
from gpupool.services.autoscaling import Scaling, autoscaled, standing_replicas
from gpupool.services.traffic import traffic_objects
from gpupool.services.weights import CacheDecision, CacheObservation, decide_cache, stale_objects
from gpupool.sizing import Plan, SizingRequest, plan_deployment, weight_bytes


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
    # Workloads not rendered yet (their weights are still downloading): what runs under these
    # names keeps running, untouched, and is not pruned.
    withheld: frozenset[str] = frozenset()
    # Objects to delete: the claims and Jobs of weights caches the model no longer uses.
    stale: tuple[dict[str, Any], ...] = ()
    # Seconds after which the model needs another pass (a download retry that is due), or None.
    requeue_after: float | None = None


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


def sizing_request(md: ModelDeployment, pool: InferencePool, nodes: int | None = None) -> SizingRequest:
    """What the model asks of the pool; `nodes` (the pool's nodes, when counted) bounds how many
    nodes one multi-node instance may span."""
    spec = md.spec
    return SizingRequest(
        weight_load_bytes_per_second=weight_load_rate(md, pool),
        inter_node_bytes_per_second=pool.spec.inter_node.bytes_per_second,
        max_nodes_per_instance=nodes or None,
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


def weight_load_rate(md: ModelDeployment, pool: InferencePool) -> int:
    """Bytes per second an instance reads its weights at, from where they come (docs/weights.md):
    a ReadWriteMany cache or a weights.pvc claim at the network file system's rate, a
    ReadWriteOnce cache at the local disk's; without either, the instance downloads the weights
    into its emptyDir and then reads them from local disk, one after the other."""
    rates = pool.spec.weight_loading
    nvme = rates.local_nvme_mbps * 10**6
    network = rates.network_file_system_mbps * 10**6
    source = md.spec.weights
    cache = source.cached() if source is not None else None
    if cache is not None:
        return nvme if cache.access_mode is AccessMode.READ_WRITE_ONCE else network
    if source is not None and source.pvc is not None:
        return network
    download = rates.download_mbps * 10**6
    return max(1, (download * nvme) // (download + nvme))


def checkpoint_bytes(architecture: Architecture, precision: Precision) -> int:
    """Bytes of the checkpoint the cache holds: the served precision's weights, except that fp8
    without a quantised checkpoint is quantised by vLLM at load time from 16-bit weights."""
    stored = Precision.BF16 if precision is Precision.FP8 and architecture.quantization is None else precision
    return weight_bytes(architecture, stored)


def plan_model(
    md: ModelDeployment, pool: InferencePool, nodes: int | None = None
) -> tuple[ResolvedModel, Plan]:
    """Size the model for the pool's accelerator; SpecError when it can never be served there
    (`nodes`: the pool's nodes, when counted, for a multi-node instance's group)."""
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
            resolved.architecture, accelerator, sizing_request(md, pool, nodes), model_name=resolved.label
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


def desired_replicas(md: ModelDeployment, plan: Plan, scaled: int | None = None) -> int:
    """spec.replicas when set (kubectl scale, an HPA or KEDA own it); else the autoscaler's count
    (`scaled`) when it owns the count; else the plan. Both within spec.scaling's bounds."""
    if md.spec.replicas is not None:
        return md.spec.replicas
    count = plan.instances if scaled is None else scaled
    count = max(count, md.spec.scaling.min_replicas)
    if md.spec.scaling.max_replicas is not None:
        count = min(count, md.spec.scaling.max_replicas)
    return count


def _scaled_count(md: ModelDeployment, scaling: Scaling | None) -> int | None:
    """The autoscaler's count: the decision of this pass, or the one it made last."""
    if scaling is not None and autoscaled(md):
        return scaling.replicas
    return standing_replicas(md)


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
        # A group over several nodes is one instance of all its accelerators.
        tensor_parallel=plan.accelerators_per_instance,
        instances=asked,
        nodes_per_instance=plan.nodes_per_instance,
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


# Status, reason and message of a condition.
Verdict = tuple[ConditionStatus, Reason, str]


def _placed_condition(
    previous: ModelDeploymentStatus,
    verdict: Verdict | None,
    lost: tuple[tuple[Claim, str], ...],
    asked: int,
    replicas: int,
    ready: int,
    preemption: str | None,
    now: str,
) -> Verdict | None:
    """The Placed condition: `verdict` (what the split says of the room the pools have), unless
    instances were preempted or lost with their nodes.

    A preemption reported by the pod watch (`preemption`) holds the condition at Preempted until
    every asked instance is back and ready; then the condition returns to what the split says.
    """
    before = find_condition(previous.conditions, ConditionType.PLACED)
    if preemption is not None:
        return (ConditionStatus.FALSE, Reason.PREEMPTED, preemption)
    if lost:
        return (ConditionStatus.FALSE, Reason.INSTANCES_LOST, lost_message(lost))
    if before is not None and before.reason == Reason.PREEMPTED:
        # The workload's status trails the pods by a moment: hold the condition a little while
        # even when the counts already look whole, so a stale "all ready" does not end it.
        settling = _seconds_between(before.last_transition_time, now) < PREEMPTION_SETTLE_SECONDS
        if replicas < asked or ready < replicas or settling:
            return (ConditionStatus.FALSE, Reason.PREEMPTED, before.message)
    return verdict


def _capacity_verdict(placement: Placement, replicas: int) -> Verdict | None:
    """What one pool's caps say of the model's instances there (None: the pool is not counted)."""
    caps = placement.caps
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


# --------------------------------------------------------------------------------------------------
# The pipeline: resolve -> plan per pool -> place -> split -> render -> status -> events


def pool_preferences(md: ModelDeployment) -> list[PoolPreference]:
    """The pools the model may use, spec.pool read as a one-element spec.pools.

    Only here, never in the stored spec (the spec is the user's); the single-pool Deployment keeps
    the model's own name (`render.workload_name`), so existing workloads are not renamed.
    """
    if md.spec.pool is not None:
        return [PoolPreference(name=md.spec.pool)]
    return list(md.spec.pools)


@dataclass(frozen=True)
class PlannedPool:
    """A pool the model may use and its plan there."""

    preference: PoolPreference
    context: PoolContext
    model: ResolvedModel
    plan: Plan

    @property
    def name(self) -> str:
        return self.preference.name


@dataclass(frozen=True)
class Share:
    """The instances one pool runs after the split, and the limits that stopped it."""

    pool: PlannedPool
    instances: int
    limits: tuple[PlacementLimit, ...] = ()


@dataclass(frozen=True)
class Split:
    """How the model's instances go over its pools."""

    shares: tuple[Share, ...]  # in rank order, pools with zero instances included
    asked: int  # instances asked for before the caps
    placements: dict[str, Placement]  # each pool's placement, for its ask and its allocation
    verdict: Verdict | None  # the Placed condition before preemption and lost instances
    first: Plan  # the plan of the first choice, for status.plan and the Planned condition


def decide(
    md: ModelDeployment,
    contexts: Mapping[str, PoolContext | UnparsedPool | None],
    observed: Mapping[str, WorkloadObservation | None],
    now: str,
    *,
    scaling: Scaling | None = None,
    preemption: str | None = None,
    weights: CacheObservation | None = None,
) -> ModelOutcome:
    """The plans, objects, status and events for a ModelDeployment, by pool name.

    `contexts` holds each allowed pool (None: it does not exist), with its accounting once the
    operator counted it (without, as on the command line, nothing is shared or capped);
    `observed` holds the Deployment seen on each pool. One pool takes what the model asks, cut to
    what its tier, tenant and capacity allow; several pools split the demand
    (`place_across_pools`, docs/placement.md), each pool's share running as its own Deployment.
    `scaling` is the autoscaler's decision of this pass (between its evaluations the count stays
    what it decided last); `preemption` is what the pod watch saw of instances the scheduler
    evicted for a higher tier. `weights` is what the cluster holds of the model's weights caches
    (spec.weights.cache; None, as on the command line: a preview, the weights taken as cached).
    """
    previous = md.status or ModelDeploymentStatus()
    generation = md.metadata.get("generation")
    conditions, autoscaling = _autoscaler_status(md, previous, scaling, generation)
    workload = total_observed(observed)
    try:
        pools, skipped = _plan_pools(md, contexts)
        count = _scaled_count(md, scaling)
        if len(pool_preferences(md)) == 1:
            split = _split_one(md, pools[0], count)
        else:
            split = _split_several(md, pools, skipped, count)
        cache = _cache(md, split, weights, now)
        objects, shares, verdict = _render(md, split, cache)
        serving = next((o["spec"]["selector"] for o in objects if o["kind"] == "Service"), None)
        objects += traffic_objects(md, [p.context.pool for p in pools], serving)
    except SpecError as err:
        return _failed(md, previous, conditions, err, generation, workload, now, autoscaling)
    withheld: frozenset[str] = frozenset()
    if cache is not None:
        if not cache.ready:
            withheld = frozenset(o["metadata"]["name"] for o in objects if o["kind"] in WORKLOAD_KINDS)
            objects = [o for o in objects if o["kind"] not in WORKLOAD_KINDS]
        objects = [*cache.objects, *objects]
        conditions = set_condition(conditions, ConditionType.WEIGHTS_READY, *cache.condition, generation, now)
    else:
        conditions = [c for c in conditions if c.type != ConditionType.WEIGHTS_READY.value]

    name = str(md.metadata.get("name", ""))
    placements: list[PoolPlacement] = []
    limits: list[PlacementLimit] = []
    cost: float | None = 0.0
    ready_total = replicas_total = 0
    settled = True
    for share in shares:
        plan = share.pool.plan
        seen = observed.get(share.pool.name)
        ready = min((seen or WorkloadObservation()).ready_replicas, share.instances)
        settled = settled and _settled(seen, share.instances)
        ready_total += ready
        replicas_total += share.instances
        price = share.pool.context.pool.spec.price_per_accelerator_hour
        share_cost = None if price is None else price * share.instances * plan.accelerators_per_instance
        cost = None if cost is None or share_cost is None else cost + share_cost
        placements.append(
            PoolPlacement(
                pool=share.pool.name,
                workload=workload_name(name, share.pool.name if md.spec.pools else None),
                ready=ready,
                accelerator=plan.accelerator,
                tensor_parallel=plan.tensor_parallel,
                instances=share.instances,
                qps=round(share.instances * (plan.qps_per_instance or 0.0), 3),
                cost_per_hour=None if share_cost is None else round(share_cost, 4),
            )
        )
        limits.extend(share.limits)

    # Instances that went with their nodes, on any pool the model may use.
    lost = tuple(claim for placement in split.placements.values() for claim in placement.lost)
    placed = _placed_condition(
        previous, verdict, lost, split.asked, replicas_total, ready_total, preemption, now
    )
    if placed is not None:
        conditions = set_condition(conditions, ConditionType.PLACED, *placed, generation, now)
    conditions = set_condition(
        conditions,
        ConditionType.PLANNED,
        ConditionStatus.TRUE,
        Reason.PLANNED,
        split.first.reason,
        generation,
        now,
    )
    conditions = _running(conditions, replicas_total, ready_total, settled, workload, generation, now)
    conditions = _capped_to_zero(conditions, split.asked, replicas_total, placed, generation, now)
    if cache is not None and not cache.ready:
        conditions = _waiting_for_weights(conditions, cache, replicas_total, ready_total, generation, now)
    status = ModelDeploymentStatus(
        observed_generation=generation,
        model=pools[0].model.label,
        plan=split.first,
        replicas=replicas_total,
        ready_replicas=ready_total,
        selector=_selector(md),
        conditions=conditions,
        autoscaling=autoscaling,
        placements=placements,
        limits=limits,
        asked_replicas=split.asked,
        cost_per_hour=None if cost is None else round(cost, 4),
        weights=cache.status if cache is not None else None,
    )
    outcome = _applied(objects, previous, status, split.placements)
    if cache is not None:
        return replace(outcome, withheld=withheld, stale=cache.stale, requeue_after=cache.retry_after)
    if weights is not None:
        # The cache was turned off: its claims and Jobs go (a claim in use by a running pod stays
        # until that pod is gone: the API server's PVC protection).
        namespace = str(md.metadata.get("namespace", ""))
        return replace(outcome, stale=stale_objects(namespace, weights, None))
    return outcome


# The kinds a model's instances run as on a pool.
WORKLOAD_KINDS = frozenset({"Deployment", "LeaderWorkerSet"})


def _cache(
    md: ModelDeployment, split: Split, observation: CacheObservation | None, now: str
) -> CacheDecision | None:
    """The weights cache's decision (None without spec.weights.cache); SpecError for a
    ReadWriteOnce cache that more than one pod would mount."""
    source = md.spec.weights
    cache: WeightsCache | None = source.cached() if source is not None else None
    if cache is None:
        return None
    instances = sum(share.instances for share in split.shares)
    groups = max((share.pool.plan.nodes_per_instance for share in split.shares), default=1)
    if cache.access_mode is AccessMode.READ_WRITE_ONCE and (instances > 1 or groups > 1):
        pods = f"{instances} instances" if instances > 1 else f"an instance over {groups} nodes"
        raise SpecError(
            Reason.CACHE_NOT_SHAREABLE,
            f"spec.weights.cache.accessMode is ReadWriteOnce, which one node mounts, but {pods} would "
            "mount the cache: set accessMode ReadWriteMany with a StorageClass that can share the "
            "volume (NFS, CephFS, a cloud file system), or serve one instance",
        )
    first = split.shares[0].pool
    stored = checkpoint_bytes(first.model.architecture, md.spec.precision)
    return decide_cache(md, first.context.pool, cache, stored, observation, now)


def _waiting_for_weights(
    conditions: list[Condition],
    cache: CacheDecision,
    replicas: int,
    ready: int,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """Ready and Progressing while the instances wait for their weights to be cached."""
    _, _, why = cache.condition
    message = f"{replicas} instance(s) start once the weights are cached: {why}"
    if ready == 0 and replicas > 0:
        conditions = set_condition(
            conditions,
            ConditionType.READY,
            ConditionStatus.FALSE,
            Reason.WAITING_FOR_WEIGHTS,
            message,
            generation,
            now,
        )
    return set_condition(
        conditions,
        ConditionType.PROGRESSING,
        ConditionStatus.TRUE,
        Reason.WAITING_FOR_WEIGHTS,
        message,
        generation,
        now,
    )


def _autoscaler_status(
    md: ModelDeployment,
    previous: ModelDeploymentStatus,
    scaling: Scaling | None,
    generation: int | None,
) -> tuple[list[Condition], AutoscalingStatus | None]:
    """The conditions to start from and status.autoscaling: the autoscaler's decision of this pass
    with its MetricsAvailable condition, or what it recorded last."""
    conditions = list(previous.conditions)
    if not autoscaled(md):
        # The autoscaler stands aside: what it said last no longer describes anything.
        return [c for c in conditions if c.type != ConditionType.METRICS_AVAILABLE.value], None
    if scaling is None:
        return conditions, previous.autoscaling
    conditions = set_condition(
        conditions, ConditionType.METRICS_AVAILABLE, *scaling.metrics, generation, scaling.time
    )
    return conditions, scaling.autoscaling


def _missing_pool(md: ModelDeployment, name: str) -> SpecError:
    if md.spec.pools:
        return SpecError(Reason.POOL_NOT_FOUND, f"InferencePool {name} does not exist")
    return SpecError(
        Reason.POOL_NOT_FOUND,
        f"InferencePool {name!r} does not exist; create it or set spec.pool to an existing pool "
        "(kubectl get inferencepools.gpupool.io)",
    )


def _plan_pools(
    md: ModelDeployment, contexts: Mapping[str, PoolContext | UnparsedPool | None]
) -> tuple[list[PlannedPool], list[tuple[str, str]]]:
    """Each allowed pool with the model's plan for it, and the pools that cannot serve it with why.

    A model of one pool cannot be served when that pool cannot, for that pool's reason; a model of
    several, when none of them can (PoolSkipped, with each pool's reason).
    """
    preferences = pool_preferences(md)
    if len(preferences) > 1:
        # Of several pools a missing one is only skipped, while an unknown model runs nowhere.
        resolve_model(md)
    pools: list[PlannedPool] = []
    errors: list[tuple[str, SpecError]] = []
    for preference in preferences:
        context = contexts.get(preference.name)
        try:
            if context is None:
                raise _missing_pool(md, preference.name)
            if isinstance(context, UnparsedPool):
                raise pool_invalid_error(context)
            nodes = len(context.state.nodes) if context.state is not None else None
            resolved, plan = plan_model(md, context.pool, nodes)
        except SpecError as err:
            errors.append((preference.name, err))
            continue
        pools.append(PlannedPool(preference, context, resolved, plan))
    if pools:
        return pools, [(pool, err.message) for pool, err in errors]
    if len(errors) == 1:
        raise errors[0][1]
    reasons = "; ".join(f"{pool}: {err.message}" for pool, err in errors)
    raise SpecError(Reason.POOL_SKIPPED, f"none of the allowed pools can serve the model: {reasons}")


def _split_one(md: ModelDeployment, pool: PlannedPool, scaled: int | None) -> Split:
    """One pool: it takes the instances the model asks for, cut to what its allocation gives."""
    asked = desired_replicas(md, pool.plan, scaled)
    placement = place_on_pool(md, pool.context, pool.plan, asked)
    caps = placement.caps
    limits = tuple(c.status() for c in caps.binding(with_capacity=True)) if caps is not None else ()
    return Split(
        shares=(Share(pool, placement.replicas, limits),),
        asked=asked,
        placements={pool.name: placement},
        verdict=_capacity_verdict(placement, placement.replicas),
        first=pool.plan,
    )


def _split_several(
    md: ModelDeployment, pools: list[PlannedPool], skipped: list[tuple[str, str]], scaled: int | None
) -> Split:
    """Several pools: `place_across_pools` fills them in rank order with the demand, each up to
    the room its allocation gives, and overflows the rest."""
    # Demand first needs each pool's QPS per instance, which does not depend on the demand.
    demand, best = _demand_qps(md, [_pool_option(md, p, 0.0)[0] for p in pools], scaled)
    options = {p.name: _pool_option(md, p, demand) for p in pools}
    split = place_across_pools(
        [option for option, _ in options.values()],
        demand,
        latency_slo_ms=md.spec.traffic.latency_slo_ms,
        min_instances=md.spec.scaling.min_replicas,
    )
    for pool_name, why in skipped:
        split = _skip(split, pool_name, why)
    by_name = {p.name: p for p in pools}
    shares = []
    for share in split.shares:
        option, placement = options[share.pool]
        caps = placement.caps
        limits: tuple[PlacementLimit, ...] = ()
        if caps is not None and share.instances >= option.room:
            # The pool gave all the room it has: say which limits stopped it.
            limits = tuple(c.status() for c in caps.binding(with_capacity=True))
        shares.append(Share(by_name[share.pool], share.instances, limits))
    needed = math.ceil(round(demand / best, 9)) if best > 0 else 0
    status = (
        ConditionStatus.FALSE
        if split.reason == PlacementReason.INSUFFICIENT_CAPACITY
        else ConditionStatus.TRUE
    )
    return Split(
        shares=tuple(shares),
        asked=max(needed, md.spec.scaling.min_replicas),
        placements={name: placement for name, (_, placement) in options.items()},
        verdict=(status, Reason(split.reason.value), split.message),
        first=by_name[split.ranked[0]].plan if split.ranked else pools[0].plan,
    )


def _render(
    md: ModelDeployment, split: Split, cache: CacheDecision | None = None
) -> tuple[list[dict[str, Any]], list[Share], Verdict | None]:
    """Each share's objects (the Service once, last), the shares rendered and the Placed verdict.

    A pool whose accelerators the engine cannot run on is skipped; when no pool is left, the model
    cannot be served (with one pool, for that pool's reason).
    """
    several = bool(md.spec.pools)
    objects: list[dict[str, Any]] = []
    service: dict[str, Any] | None = None
    shares: list[Share] = []
    verdict = split.verdict
    failures: list[UnsupportedEngineError] = []
    for share in split.shares:
        try:
            rendered = render_model_deployment(
                md,
                share.pool.context.pool,
                share.pool.plan,
                share.instances,
                per_pool=several,
                cache_claim=cache.claim if cache is not None else None,
            )
        except ValueError as err:  # a spec the objects cannot be rendered from (not the engine's)
            if not isinstance(err, UnsupportedEngineError):
                raise SpecError(Reason.INVALID_SPEC, f"the objects cannot be rendered: {err}") from err
            failures.append(err)
            if verdict is not None:
                verdict = (*verdict[:2], f"{verdict[2]}; skipped {share.pool.name} ({err})")
            continue
        objects.extend(o for o in rendered if o["kind"] != "Service")
        service = service or next(o for o in rendered if o["kind"] == "Service")
        shares.append(share)
    if service is None:
        if len(failures) == 1 and len(pool_preferences(md)) == 1:
            raise SpecError(Reason.UNSUPPORTED_ENGINE, str(failures[0]))
        raise SpecError(Reason.POOL_SKIPPED, verdict[2] if verdict is not None else "no pool can serve it")
    return [*objects, service], shares, verdict


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
    if err.reason == Reason.CACHE_NOT_SHAREABLE:
        conditions = set_condition(
            conditions,
            ConditionType.WEIGHTS_READY,
            ConditionStatus.FALSE,
            err.reason,
            err.message,
            generation,
            now,
        )
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
    before = find_condition(previous.conditions, ConditionType.WEIGHTS_READY)
    after = find_condition(current.conditions, ConditionType.WEIGHTS_READY)
    moved = (
        before is None or (before.reason, before.message) != (after.reason, after.message) if after else False
    )
    if after is not None and moved:
        if after.reason == Reason.DOWNLOAD_FAILED and (before is None or before.reason != after.reason):
            events.append(EventRecord("Warning", after.reason, after.message))
        elif after.reason == Reason.WEIGHTS_CACHED:
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


def _pool_option(md: ModelDeployment, pool: PlannedPool, demand_qps: float) -> tuple[PoolOption, Placement]:
    """The option one pool offers the split, with its placement for the whole demand."""
    context = pool.context
    plan = pool.plan
    accelerator = get_accelerator(context.pool.spec.accelerator)
    namespace = str(md.metadata.get("namespace", ""))
    key = workload_key(namespace, str(md.metadata.get("name", "")))
    running = running_instances(context.state, key) if context.state is not None else 0
    qps = plan.qps_per_instance or 0.0
    # Ask for as much as the whole demand would need here (and the hysteresis margin the way back
    # keeps), so the caps say what the pool can take.
    asked = running + (math.ceil(demand_qps / qps) if qps > 0 else 0) + DEFAULT_HYSTERESIS_INSTANCES
    placement = place_on_pool(md, context, plan, asked)
    caps = placement.caps
    option = PoolOption(
        pool=pool.name,
        plan=plan,
        room=caps.runnable if caps is not None else asked,
        running=running,
        price_per_accelerator_hour=context.pool.spec.price_per_accelerator_hour,
        priority=pool.preference.priority,
        max_instances=pool.preference.max_instances,
        latency_ms=latency_floor_ms(plan, accelerator),
    )
    return option, placement


def _demand_qps(md: ModelDeployment, options: list[PoolOption], scaled: int | None) -> tuple[float, float]:
    """Requests per second to place, with the QPS per instance of the first-ranked pool: the
    traffic spec with headroom, or spec.replicas (else the autoscaler's count) instances of that
    pool; spec.scaling.maxReplicas of that pool at most."""
    usable = sorted(
        (o for o in options if why_unusable(o, md.spec.traffic.latency_slo_ms) is None), key=rank_key
    )
    best = usable[0].qps_per_instance if usable else 0.0
    traffic = md.spec.traffic
    demand = traffic.peak_qps * (1 + traffic.headroom_percent / 100)
    count = md.spec.replicas if md.spec.replicas is not None else scaled
    if count is not None:
        demand = count * best
    if md.spec.scaling.max_replicas is not None and best > 0:
        demand = min(demand, md.spec.scaling.max_replicas * best)
    return demand, best


def _skip(split: CrossPoolPlacement, pool: str, why: str) -> CrossPoolPlacement:
    return replace(
        split,
        shares=tuple(s for s in split.shares if s.pool != pool),
        skipped=(*split.skipped, (pool, why)),
        message=f"{split.message}; skipped {pool} ({why})",
    )


def total_observed(workloads: Mapping[str, WorkloadObservation | None]) -> WorkloadObservation | None:
    """The model's workloads on all its pools seen as one (None: none exists)."""
    seen = [w for w in workloads.values() if w is not None]
    if not seen:
        return None
    return WorkloadObservation(
        replicas=sum(w.replicas for w in seen),
        ready_replicas=sum(w.ready_replicas for w in seen),
        updated_replicas=sum(w.updated_replicas for w in seen),
        observed_generation_current=all(w.observed_generation_current for w in seen),
    )


def awaiting_admission(
    status: ModelDeploymentStatus,
    admissions: Mapping[str, Admission],
    now: str,
    previous: list[Condition] | None = None,
) -> ModelDeploymentStatus:
    """The status with Placed=False (AwaitingAdmission, Kueue's own messages) while Kueue holds
    instances of the model's LocalQueues un-admitted; unchanged when it holds none. The
    transition time is kept from `previous` (the status before this pass) while the model
    keeps waiting, so a pass that finds nothing new writes nothing."""
    waiting = {queue: a for queue, a in sorted(admissions.items()) if a.waiting}
    if not waiting:
        return status
    message = "; ".join(a.message(queue) for queue, a in waiting.items())
    before = find_condition(previous or [], ConditionType.PLACED)
    (placed,) = set_condition(
        [before] if before is not None else [],
        ConditionType.PLACED,
        ConditionStatus.FALSE,
        Reason.AWAITING_ADMISSION,
        message,
        status.observed_generation,
        now,
    )
    others = [c for c in status.conditions if c.type != ConditionType.PLACED.value]
    return status.model_copy(update={"conditions": sorted([*others, placed], key=lambda c: c.type)})
