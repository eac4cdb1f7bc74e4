"""One idempotent reconcile per kind: read the world, ask the pure core, write only the difference.

Every pass comes from one key of the controller's work queue (`gpupool.controller.operator`), which
gives a key to one worker at a time: whatever woke it up (an event, the periodic resync, a pool
recount, an autoscaler evaluation), the same function runs, and two passes over one object never
interleave. What the passes read and remember is a `World`: the API client, the watches' cache and
the models' memory, all held by the one `Controller`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from gpupool.api.conditions import (
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
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
from gpupool.controller import groups, metrics, queues
from gpupool.controller.apiclient import ApiError
from gpupool.controller.config import DEFAULT_OPERATOR_NAMESPACE
from gpupool.controller.kube import (
    CHILDREN,
    CONFIGMAP,
    DEPLOYMENT,
    INFERENCE_POOL,
    MODEL_DEPLOYMENT,
    NAMESPACE,
    NODE,
    POD,
    RESOURCE_QUOTA,
    SERVICE,
    Kube,
    applied_hash,
    controlled_by,
    needs_apply,
    with_applied_hash,
)
from gpupool.controller.rollout import prune_versions, rollout_model
from gpupool.controller.state import ClusterCache, ModelKey, ModelMemory, Settled
from gpupool.controller.traffic import list_traffic, prune_traffic, rediscover, route_model
from gpupool.controller.weights import delete_stale, observe_cache
from gpupool.placement import (
    Allocation,
    InstanceCaps,
    PoolState,
    accounted_node,
    accounted_pod,
    allocate,
    allocated_caps,
    demand_of,
    reallocate,
    tenant_of,
)
from gpupool.render import render_pool_queues, render_priority_classes, selector_labels, workload_name
from gpupool.render.labels import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    label_value,
)
from gpupool.render.quota import QUOTA_COMPONENT, render_resource_quotas, tenant_quota_grants
from gpupool.services.autoscaling import Scaling
from gpupool.services.modeldeployment import (
    ModelOutcome,
    PoolContext,
    UnparsedPool,
    WorkloadObservation,
    awaiting_admission,
    decide,
    total_observed,
)
from gpupool.services.pool import pool_state, status_of, with_queues
from gpupool.services.weights import CacheObservation

# Pods that hold resources: the others have finished.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"

log = logging.getLogger(__name__)


@dataclass
class World:
    """What a reconcile reads and remembers: the API client, the watches' cache, the models' memory."""

    kube: Kube
    cache: ClusterCache = field(default_factory=ClusterCache)
    memory: ModelMemory = field(default_factory=ModelMemory)
    # Where Secrets the operator reads (Prometheus credentials) are: its own namespace.
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE


def _short(err: ValidationError) -> str:
    parts = []
    for problem in err.errors()[:5]:
        where = ".".join(str(p) for p in problem["loc"])
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


# The API server's answers to an object it will not store as it is: Bad Request, Unprocessable.
REFUSED = (400, 422)


def refusal_message(err: ApiError) -> str:
    """What the API server said about a refused object, in one line."""
    try:
        message = str(json.loads(err.body or "{}").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return " ".join((message or f"{err.status} {err.reason}").split())


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
    failed = (ConditionType.READY, ConditionType.PLANNED, ConditionType.PLACED, ConditionType.PROGRESSING)
    for type_ in failed:
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


# The autoscaler's step before the decision: its decision of this pass (None: it has none), which
# `decide` takes as its `scaling` input.
Adjust = Callable[[ModelDeployment, WorkloadObservation | None], Scaling | None]


@dataclass(frozen=True)
class ModelPass:
    """What one model's reconcile decided (None when the model is gone), and the other models
    whose count its new demand moved: they are queued, not reconciled from inside this pass."""

    outcome: ModelOutcome | None
    moved: frozenset[ModelKey] = frozenset()
    pools: frozenset[str] = frozenset()  # pools to recount: a deleted model's demand left them
    requeue_after: float | None = None  # seconds until the model needs another pass (a retry)


def note_preemption(memory: ModelMemory, namespace: str, model: str, pod: str, message: str) -> bool:
    """Remember that `pod` of the model was preempted; True when it is news."""
    seen = memory.preemptions.setdefault((namespace, model), {})
    if pod in seen:
        return False
    seen[pod] = message
    return True


def model_for_label(memory: ModelMemory, namespace: str, label: str) -> str:
    """The ModelDeployment whose pods carry `label` as their identity label. The label is the name
    itself unless the name is longer than a label value may be; then it is a known model's."""
    if (namespace, label) in memory.asks:
        return label
    for known_namespace, name in list(memory.asks):
        if known_namespace == namespace and label_value(name) == label:
            return name
    return label


def _preemption_message(memory: ModelMemory, key: ModelKey) -> str | None:
    pods = memory.preemptions.get(key)
    if not pods:
        return None
    names = sorted(pods)
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"the scheduler preempted {len(names)} instance(s) ({shown}) to make room for a higher tier: "
        f"{pods[names[0]]}; they come back when room returns"
    )


def _context(world: World, name: str, namespace: str) -> PoolContext | UnparsedPool | None:
    pool = _read_pool(world, name)
    if isinstance(pool, UnparsedPool) or pool is None:
        return pool
    memory = world.memory
    with memory.lock:
        state = memory.states.get(name)
    if state is None:
        state = _account_one(world, pool)
    with memory.lock:
        held = memory.allocations.get(name)
    allocation = held[1] if held is not None and held[0] is state else None
    return PoolContext(pool, state, world.cache.namespace_labels.get(namespace), allocation)


# Pages of the recount's listings: a page of 250 whole nodes held 13 MiB at once (kwok's, whose
# status is smaller than a real node's with its images); 50 hold a fifth of it for four more GETs.
NODE_PAGE = 50
POD_PAGE = 100


def _nodes_and_pods(kube: Kube) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every node and live pod, each cut to what the accounting reads as its page arrives: a
    cluster's whole nodes (their images, addresses and daemon endpoints) and pods would otherwise
    be held at once for every recount."""
    nodes = [accounted_node(n) for n in kube.list(NODE, page_size=NODE_PAGE)]
    pods = [accounted_pod(p) for p in kube.list(POD, field_selector=LIVE_PODS, page_size=POD_PAGE)]
    return nodes, pods


def _account_one(world: World, pool: InferencePool) -> PoolState:
    """Count a pool the first time a model needs it, before the pool's own recount has."""
    nodes, pods = _nodes_and_pods(world.kube)
    if pool.spec.tenants and not world.cache.namespace_labels:
        world.cache.namespace_labels = _read_namespaces(world.kube)
    state = pool_state(pool, nodes, pods, world.cache.namespace_labels or None)
    with world.memory.lock:
        # Another pass (or the pool's recount) may have counted it meanwhile: one state per pool.
        return world.memory.states.setdefault(pool.metadata["name"], state)


def _read_namespaces(kube: Kube) -> dict[str, dict[str, str]]:
    return {ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {}) for ns in kube.list(NAMESPACE)}


def _child(world: World, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The cache's copy of a child, else (unless the cache holds every one of the kind) the API
    server's; None: it does not exist."""
    held = world.cache.child(kind, namespace, name)
    if held is not None or world.cache.complete(kind):
        return held
    return world.kube.get(CHILDREN[kind], namespace, name)


def _read_model(world: World, namespace: str, name: str) -> dict[str, Any] | None:
    """The cache's copy of the ModelDeployment, else the API server's (None: it does not exist)."""
    held = world.cache.model(namespace, name)
    if held is not None:
        return held
    body = world.kube.get(MODEL_DEPLOYMENT, namespace, name)
    if body is not None:
        _remember_model(world, body)
    return body


def _remember_model(world: World, stored: dict[str, Any]) -> None:
    """The model as the API server stored it (the answer to a status write), for the next pass."""
    meta = stored.get("metadata") or {}
    if meta.get("resourceVersion") and meta.get("namespace") and meta.get("name"):
        world.cache.remember_model(stored)


# The kinds a model's instances run as on a pool, under one name: gpupool.controller.groups.
WORKLOAD_KINDS = frozenset({"Deployment", groups.KIND})


def _workload(world: World, namespace: str, name: str) -> dict[str, Any] | None:
    """The model's workload on a pool: its Deployment, else its LeaderWorkerSet, else None."""
    deployment = _child(world, "Deployment", namespace, name)
    return deployment if deployment is not None else groups.read_group_set(world.kube, namespace, name)


def _apply(world: World, obj: dict[str, Any], current: dict[str, Any] | None, compare: bool = True) -> int:
    """Apply a child unless `current` already holds it (with `compare`); the server's answer joins
    the cache. Returns the writes made."""
    if compare and current is not None and not needs_apply(obj, current):
        return 0
    applied = world.kube.apply(with_applied_hash(obj))
    if applied:
        applied.get("metadata", {}).pop("managedFields", None)
        world.cache.remember(applied)
    return 1


def reconcile_model(
    world: World,
    namespace: str,
    name: str,
    adjust: Adjust | None = None,
    workloads_only: bool = False,
    register_only: bool = False,
    listed: dict[str, Any] | None = None,
) -> ModelPass:
    """Converge one ModelDeployment.

    The model and its children are compared with the cache's copies (read from the API server
    when none is held). A copy behind the API server's is behind by an event still on its way,
    which queues the model again; the status written joins the cache, so the next pass compares
    with it.
    `workloads_only` (a Deployment's status changed) compares and applies the Deployments alone:
    the Service and ConfigMap do not depend on a workload's status, and model events and the
    resync cover them. `register_only` decides without writing anything, from the `listed` body
    when given: the model's demand joins its pools' allocations before any model applies a count.
    """
    started = time.perf_counter()
    key = (namespace, name)
    kube, memory = world.kube, world.memory
    body = listed if register_only and listed is not None else _read_model(world, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        # Its demand leaves its pools' allocations: the others take its share at their recount.
        with memory.lock:
            pools = memory.forget_asks(key)
        memory.preemptions.pop(key, None)
        memory.rejections.pop(key, None)
        memory.settled.pop(key, None)
        return ModelPass(None, pools=pools)
    try:
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        if register_only:
            return ModelPass(None)
        message = f"spec is invalid: {_short(err)}"
        stored = kube.apply_status(MODEL_DEPLOYMENT, body, _invalid_spec_status(body, message))
        if stored is not None:
            _remember_model(world, stored)
            kube.post_event(body, "Warning", Reason.INVALID_SPEC.value, message, now_rfc3339())
        return ModelPass(None)
    md = ModelDeployment(
        metadata=body["metadata"],
        spec=spec,
        status=parse_status(body.get("status"), ModelDeploymentStatus),
    )
    contexts = {pool: _context(world, pool, namespace) for pool in spec.pool_names()}
    deployments: dict[str, dict[str, Any] | None] = {
        pool: _workload(world, namespace, workload_name(name, pool if spec.pools else None))
        for pool in spec.pool_names()
    }
    preemption = _preemption_message(memory, key)
    # The weights caches: read when the spec asks for one, or when the last status shows one
    # (the cache was turned off: its claims and Jobs are deleted).
    had_cache = md.status is not None and md.status.weights is not None
    caches = None
    if (spec.weights is not None and spec.weights.cache is not None) or had_cache:
        caches = observe_cache(kube, namespace, name, body["metadata"].get("uid"))
    outcome = _decide(md, contexts, deployments, adjust, preemption, caches)
    if register_only:
        _remember_asks(memory, key, outcome, contexts)
        return ModelPass(outcome)
    outcome = route_model(kube, outcome)
    outcome = _rollout(world, md, outcome, contexts, deployments)
    # Until this pass ends well, the resync passes the model again.
    settled = memory.settled.pop(key, None)
    writes = 0
    refused = _refusal_of(memory, key, outcome) if outcome.apply else None
    missing = queues.missing_kueue(kube, outcome.objects) if outcome.apply and refused is None else None
    if missing is not None:
        # A kueue pool on a cluster without Kueue: nothing applied, and the model says why.
        outcome = replace(outcome, status=_rejected_status(outcome, missing, Reason.KUEUE_MISSING), events=[])
    elif outcome.apply and refused is None:
        try:
            writes += _apply_outcome(world, body, md, outcome, deployments, workloads_only)
        except ApiError as err:
            # Not remembered: the pass after the CRD is installed applies the set.
            refused = groups.missing_crd(err, outcome.objects)
            if refused is None and err.status not in REFUSED:
                raise
            refused = refused or _remember_refusal(memory, key, outcome, err)
    if refused is not None:
        outcome = replace(outcome, status=_rejected_status(outcome, refused), events=[])
    else:
        memory.rejections.pop(key, None)
    if missing is None and refused is None and outcome.apply:
        admitted = queues.admissions(
            kube, namespace, (o["metadata"]["name"] for o in outcome.objects if o["kind"] == "LocalQueue")
        )
        previous = md.status.conditions if md.status else []
        outcome = replace(
            outcome, status=awaiting_admission(outcome.status, admitted, now_rfc3339(), previous)
        )
    stored = kube.apply_status(MODEL_DEPLOYMENT, body, outcome.status.to_wire())
    if stored is not None:
        _remember_model(world, stored)
        writes += 1
        why = refused or missing
        if why is not None and _newly_rejected(md, outcome):
            reason = Reason.REJECTED if refused is not None else Reason.KUEUE_MISSING
            kube.post_event(body, "Warning", reason.value, why, now_rfc3339())
    placed = find_condition(outcome.status.conditions, ConditionType.PLACED)
    if preemption is not None and placed is not None and placed.reason == Reason.PREEMPTED:
        memory.preemptions.pop(key, None)
    moved = _remember_asks(memory, key, outcome, contexts)
    if refused is None and preemption is None:
        _remember_settled(world, key, body, stored, outcome, settled, workloads_only)
    now = now_rfc3339()
    for event in outcome.events:
        kube.post_event(body, event.type, event.reason, event.message, now)
    memory.placed_pools[key] = metrics.observe_model(
        namespace, name, outcome.status, writes, time.perf_counter() - started
    )
    return ModelPass(outcome, frozenset(moved), requeue_after=outcome.requeue_after)


def _rollout(
    world: World,
    md: ModelDeployment,
    outcome: ModelOutcome,
    contexts: dict[str, PoolContext | UnparsedPool | None],
    deployments: dict[str, dict[str, Any] | None],
) -> ModelOutcome:
    """The outcome for where the model's rollout of a new version stands (a canary covers a
    model of one pool, whose workload is a Deployment)."""
    if md.spec.pools or len(deployments) != 1:
        return outcome
    [(pool, current)] = deployments.items()
    context = contexts.get(pool)
    stable = current if current is not None and current.get("kind", "Deployment") == "Deployment" else None
    return rollout_model(
        world.kube,
        lambda kind, namespace, name: _child(world, kind, namespace, name),
        md,
        outcome,
        stable,
        context.pool if isinstance(context, PoolContext) else None,
        world.operator_namespace,
    )


def _remember_settled(
    world: World,
    key: ModelKey,
    body: dict[str, Any],
    stored: dict[str, Any] | None,
    outcome: ModelOutcome,
    before: Settled | None,
    workloads_only: bool,
) -> None:
    """Remember that the pass left the model settled, with what it read (see `Settled`), when the
    resync may rely on that: every object it renders is in the cache (not a LeaderWorkerSet, which
    is read from the API server each pass), and it awaits neither a Gateway nor its weights'
    download. A pass that compared the workloads alone renews a record made by a full pass since
    which the model did not change."""
    # A LeaderWorkerSet is read from the API server each pass, and Kueue's admission of a queued
    # model is read from its Workloads: neither is in the cache.
    if not outcome.apply or any(o["kind"] in (groups.KIND, "LocalQueue") for o in outcome.objects):
        return
    if outcome.requeue_after is not None:  # another pass is due anyway (a canary's next reading)
        return
    for waited in (ConditionType.ROUTED, ConditionType.WEIGHTS_READY):
        condition = find_condition(outcome.status.conditions, waited)
        if condition is not None and condition.status != ConditionStatus.TRUE:
            return
    version = body["metadata"].get("resourceVersion", "")
    if workloads_only and (before is None or before.resource_version != version):
        return
    if stored is not None:
        version = (stored.get("metadata") or {}).get("resourceVersion", "")
    if not version:
        return
    namespace = body["metadata"]["namespace"]
    children = tuple((o["kind"], namespace, o["metadata"]["name"]) for o in outcome.objects)
    world.memory.settled[key] = Settled(version, children, world.cache.revisions(children))


def unchanged_since_settled(world: World, key: ModelKey, resource_version: str) -> bool:
    """Whether the model (at `resource_version`, as listed) and every child it rendered read as
    they did at the end of its last settled pass: a pass now would decide the same objects from
    the same inputs."""
    settled = world.memory.settled.get(key)
    return (
        settled is not None
        and settled.resource_version == resource_version
        and world.cache.revisions(settled.children) == settled.revisions
    )


def _decide(
    md: ModelDeployment,
    contexts: dict[str, PoolContext | UnparsedPool | None],
    deployments: dict[str, dict[str, Any] | None],
    adjust: Adjust | None,
    preemption: str | None,
    caches: CacheObservation | None = None,
) -> ModelOutcome:
    """The pure core's decision for the model, from what was read (the one call into services)."""
    observed = {pool: observe_workload(d) for pool, d in deployments.items()}
    scaling = adjust(md, total_observed(observed)) if adjust is not None else None
    return decide(
        md, contexts, observed, now_rfc3339(), scaling=scaling, preemption=preemption, weights=caches
    )


def _apply_outcome(
    world: World,
    body: dict[str, Any],
    md: ModelDeployment,
    outcome: ModelOutcome,
    deployments: dict[str, dict[str, Any] | None],
    workloads_only: bool,
) -> int:
    """Apply the model's objects that differ from what the cluster holds, then prune the
    Deployments it no longer needs; the number of writes."""
    namespace = body["metadata"]["namespace"]
    writes = 0
    # A new model: nothing to compare with, so skip the reads. (A model whose instances wait for
    # their weights has no workload either, but already has its other objects.)
    fresh = all(d is None for d in deployments.values()) and md.status is None
    current_by_name = {d["metadata"]["name"]: d for d in deployments.values() if d}
    for obj in outcome.objects:
        if workloads_only and obj["kind"] not in WORKLOAD_KINDS:
            continue
        obj_name = obj["metadata"]["name"]
        if fresh:
            writes += _apply(world, obj, None, compare=False)
        elif obj["kind"] in WORKLOAD_KINDS:
            # A pool the model did not use before: nothing held, so read it.
            current = current_by_name.get(obj_name) or _workload(world, namespace, obj_name)
            writes += _apply(world, obj, current)
        else:
            writes += _apply(world, obj, _child(world, obj["kind"], namespace, obj_name))
    writes += _prune_workloads(world, body, md, outcome)
    if not workloads_only:
        writes += prune_traffic(world.kube, world.cache, body, outcome)
        writes += prune_versions(world.kube, world.cache, body, outcome)
        writes += delete_stale(world.kube, outcome.stale)
    return writes


def _digests(outcome: ModelOutcome) -> frozenset[str]:
    return frozenset(applied_hash(obj) for obj in outcome.objects)


def _refusal_of(memory: ModelMemory, key: ModelKey, outcome: ModelOutcome) -> str | None:
    """The API server's answer when it already refused exactly these objects, else None. The same
    objects are not sent again on every resync; a change of the spec or of the pool renders
    different objects, which are tried."""
    held = memory.rejections.get(key)
    if held is None or held[0] != _digests(outcome):
        return None
    return held[1]


def _remember_refusal(memory: ModelMemory, key: ModelKey, outcome: ModelOutcome, err: ApiError) -> str:
    message = refusal_message(err)
    memory.rejections[key] = (_digests(outcome), message)
    log.warning(
        "the API server refused an object of %s/%s: %s",
        key[0],
        key[1],
        message,
        extra={"obj_kind": "ModelDeployment", "obj_namespace": key[0], "obj_name": key[1]},
    )
    return message


def _rejected_status(
    outcome: ModelOutcome, message: str, reason: Reason = Reason.REJECTED
) -> ModelDeploymentStatus:
    """The decided status with Ready=False and Degraded=True saying what the API server refused
    (or, with another reason, `message` as it is)."""
    status = outcome.status
    generation = status.observed_generation
    now = now_rfc3339()
    text = (
        f"the API server refused the rendered objects: {message}; fix the field it names in the "
        "ModelDeployment or its InferencePool (what ran before keeps running)"
        if reason is Reason.REJECTED
        else message
    )
    conditions = list(status.conditions)
    for type_, state in (
        (ConditionType.READY, ConditionStatus.FALSE),
        (ConditionType.DEGRADED, ConditionStatus.TRUE),
        (ConditionType.PROGRESSING, ConditionStatus.FALSE),
    ):
        conditions = set_condition(conditions, type_, state, reason, text, generation, now)
    return status.model_copy(update={"conditions": conditions})


def _newly_rejected(md: ModelDeployment, outcome: ModelOutcome) -> bool:
    """Whether the status before this pass did not already say Rejected for this generation."""
    before = find_condition(md.status.conditions if md.status else [], ConditionType.DEGRADED)
    after = find_condition(outcome.status.conditions, ConditionType.DEGRADED)
    if before is None or after is None:
        return True
    return (before.reason, before.observed_generation) != (after.reason, after.observed_generation)


def _remember_asks(
    memory: ModelMemory,
    key: ModelKey,
    outcome: ModelOutcome,
    contexts: dict[str, PoolContext | UnparsedPool | None],
) -> set[ModelKey]:
    """Keep what the model asked, and each pool's allocation with its demand in it. Returns the
    models whose count that allocation changed: the others, and the model itself when another
    pass replaced the allocation after this one read it (its count then follows at its next pass)."""
    moved: set[ModelKey] = set()
    with memory.lock:
        memory.remember_asks(key, outcome.asks)
        for pool, allocation in outcome.allocations.items():
            context = contexts.get(pool)
            caps = outcome.asks.get(pool)
            state = memory.states.get(pool)
            if not isinstance(context, PoolContext) or caps is None or state is None:
                continue
            held = memory.allocations.get(pool)
            before = held[1] if held is not None and held[0] is state else None
            if state is not context.state or before is not context.allocation:
                # Passes of other models of the pool (or its recount) replaced the allocation
                # meanwhile: this demand joins theirs instead of taking their place.
                tenant = tenant_of(state, key[0], context.namespace_labels)
                demand = demand_of(state, caps.request, tenant.name if tenant else None)
                merged = reallocate(state, before, demand)
                if merged.count(caps.request.workload) != allocation.count(caps.request.workload):
                    moved.add(key)
                allocation = merged
            memory.allocations[pool] = (state, allocation)
            if before is None or before is allocation:
                continue
            # Only a count that moved sends others a pass: no walk over every model of the pool
            # for a new model that took nobody's share (one that asks nothing, or found room).
            differ = {w for w, _ in before.counts.items() ^ allocation.counts.items()}
            if not differ - {caps.request.workload}:
                continue
            for other, asked in memory.asking(pool).items():
                if other != key and asked.allowed != allocation.count(asked.request.workload):
                    moved.add(other)
    return moved


def _prune_workloads(world: World, body: dict[str, Any], md: ModelDeployment, outcome: ModelOutcome) -> int:
    """Delete the model's Deployments that no longer serve it: a pool it left, or the single-pool
    Deployment after a switch to several pools (and back). Candidates are the workloads its last
    status named and every held Deployment carrying its identity label; only Deployments this
    ModelDeployment controls are deleted."""
    namespace = body["metadata"]["namespace"]
    uid = body["metadata"].get("uid")
    # Workloads waiting for their weights keep whatever runs under their names.
    wanted = {o["metadata"]["name"] for o in outcome.objects if o["kind"] == "Deployment"} | outcome.withheld
    names = {p.workload for p in (md.status.placements if md.status else []) if p.workload}
    # The other kind under a wanted name: a plan that moved between one node and several.
    group_sets = {o["metadata"]["name"] for o in outcome.objects if o["kind"] == groups.KIND} | set(
        outcome.withheld
    )
    planned = md.status.plan if md.status else None
    deleted = 0
    if group_sets or (planned is not None and planned.nodes_per_instance > 1):
        deleted += groups.prune_group_sets(world.kube, namespace, uid, names | wanted, group_sets)
    local_queues = {o["metadata"]["name"] for o in outcome.objects if o["kind"] == "LocalQueue"}
    if names - local_queues:
        deleted += queues.prune_local_queues(world.kube, namespace, uid, names, local_queues)
    [identity] = selector_labels(body["metadata"]["name"]).values()
    names |= world.cache.deployments_of(namespace, identity)
    for stale in sorted(names - wanted):
        current = _child(world, "Deployment", namespace, stale)
        if current is None:
            continue
        if not controlled_by(current, uid):
            continue
        if world.kube.delete(current):
            world.cache.forget(current)
            deleted += 1
    return deleted


def _read_pool(world: World, name: str) -> InferencePool | UnparsedPool | None:
    """The pool a model names: parsed, or why it does not parse (its own status says so too)."""
    body = world.cache.pools.get(name) or world.kube.get(INFERENCE_POOL, None, name)
    if body is None:
        return None
    try:
        return InferencePool(
            metadata=body["metadata"],
            spec=body.get("spec") or {},
            status=parse_status(body.get("status"), InferencePoolStatus),
        )
    except ValidationError as err:
        return UnparsedPool(name, _short(err))


def _invalid_pool_status(
    body: dict[str, Any], message: str, reason: Reason = Reason.INVALID_SPEC
) -> dict[str, Any]:
    previous = parse_status(body.get("status"), InferencePoolStatus) or InferencePoolStatus()
    generation = body["metadata"].get("generation")
    conditions = set_condition(
        previous.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        reason,
        message,
        generation,
        now_rfc3339(),
    )
    return previous.model_copy(update={"observed_generation": generation, "conditions": conditions}).to_wire()


def reconcile_pools(world: World, names: list[str]) -> list[ModelKey]:
    """Converge pools: PriorityClasses, accounting, status, tenants' ResourceQuotas.

    Nodes, pods and namespaces are listed once for all of them. Returns the models whose tier,
    quota or capacity limits on these pools now answer differently than at their last
    reconcile: they need another pass (a model waiting for room, a borrower whose lender grew).
    """
    kube, cache, memory = world.kube, world.cache, world.memory
    bodies = []
    for name in names:
        body = kube.get(INFERENCE_POOL, None, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            memory.states.pop(name, None)
            continue
        cache.remember_pool(body)
        bodies.append(body)
    if not bodies:
        return []
    nodes, pods = _nodes_and_pods(kube)
    pools_with_tenants = any((b.get("spec") or {}).get("tenants") for b in list(cache.pools.values()))
    if pools_with_tenants:
        cache.namespace_labels = _read_namespaces(kube)
    changed: set[ModelKey] = set()
    for body in bodies:
        changed |= _reconcile_one_pool(world, body, nodes, pods, pools_with_tenants)
    _reconcile_quotas(world, pools_with_tenants)
    return sorted(changed)


def _reconcile_one_pool(
    world: World,
    body: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    pools_with_tenants: bool,
) -> set[ModelKey]:
    """One pool of a batched recount. A pool that does not parse, or whose objects the API server
    refuses, gets a status saying so and never stops the recount of the others."""
    try:
        pool = InferencePool(
            metadata=body["metadata"],
            spec=body.get("spec") or {},
            status=parse_status(body.get("status"), InferencePoolStatus),
        )
    except ValidationError as err:
        _refuse_pool(world, body, Reason.INVALID_SPEC, f"spec is invalid: {_short(err)}")
        return set()
    try:
        return _count_pool(world, body, pool, nodes, pods, pools_with_tenants)
    except ApiError as err:
        if err.status not in REFUSED:
            raise
        _refuse_pool(world, body, Reason.REJECTED, refusal_message(err))
    return set()


def _refuse_pool(world: World, body: dict[str, Any], reason: Reason, message: str) -> None:
    """Ready=False with why: once in the log and as an event when the status changes."""
    name = body["metadata"]["name"]
    world.memory.states.pop(name, None)
    if world.kube.apply_status(INFERENCE_POOL, body, _invalid_pool_status(body, message, reason)):
        log.warning("pool %s: %s", name, message, extra={"obj_kind": "InferencePool", "obj_name": name})
        world.kube.post_event(body, "Warning", reason.value, message, now_rfc3339())


def _count_pool(
    world: World,
    body: dict[str, Any],
    pool: InferencePool,
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    pools_with_tenants: bool,
) -> set[ModelKey]:
    """PriorityClasses, accounting and status of one parsed pool; the models whose limits moved."""
    kube, cache, memory = world.kube, world.cache, world.memory
    name = body["metadata"]["name"]
    for obj in render_priority_classes(pool):
        kube.apply_if_changed(obj)
    state = pool_state(pool, nodes, pods, cache.namespace_labels if pools_with_tenants else None)
    found = queues.reconcile_pool_queues(kube, pool, render_pool_queues(pool, state.total))
    labels = cache.namespace_labels
    with memory.lock:
        before = memory.states.get(name)
        memory.states[name] = state
        # Every model's demand, from what each asked at its last pass, with what it holds now.
        demands = []
        for (namespace, _), caps in memory.asking(name).items():
            tenant = tenant_of(state, namespace, labels.get(namespace))
            demands.append(demand_of(state, caps.request, tenant.name if tenant else None))
        allocation = allocate(state, demands)
        memory.allocations[name] = (state, allocation)
    now = now_rfc3339()
    status = status_of(pool, state, now, allocation)
    found = found or queues.PoolQueues(served=True)
    status = with_queues(
        status, pool, served=found.served, applied=found.applied, inactive=found.inactive, now=now
    )
    kube.apply_status(INFERENCE_POOL, body, status.to_wire())
    metrics.observe_pool(name, status)
    return _limits_changed(world, name, state, allocation) | _lost_changed(memory, name, before, state)


def _limits_changed(
    world: World, pool: str, state: PoolState, allocation: Allocation | None
) -> set[ModelKey]:
    """Models whose count or caps on `pool` differ under `state` from what their last reconcile saw."""
    memory = world.memory
    with memory.lock:
        # Models whose first pass ran since the recount built `allocation` added their demands to
        # the one held now: compared with that, they are not taken for models the recount missed.
        held = memory.allocations.get(pool)
        asking = memory.asking(pool)
    if held is not None and held[0] is state:
        allocation = held[1]
    changed = set()
    for key, caps in asking.items():
        if allocation is None or caps.request.workload not in allocation.demands:
            changed.add(key)
            continue
        several = len(memory.asks.get(key, {})) > 1
        again = allocated_caps(state, allocation, caps.request, world.cache.namespace_labels.get(key[0]))
        if _verdict(again, several) != _verdict(caps, several):
            changed.add(key)
    return changed


def _lost_changed(
    memory: ModelMemory, pool: str, before: PoolState | None, state: PoolState
) -> set[ModelKey]:
    """Models that lost instances with a node, or got them back, since the last recount: they
    report it at once."""
    was = {c.name for c, _ in before.lost} if before is not None else set()
    if was == {c.name for c, _ in state.lost}:
        return set()
    changed = set()
    for key, caps in memory.asking(pool).items():
        lost = {c.name for c, _ in state.lost_by(caps.request.workload)}
        if lost != ({c.name for c, _ in before.lost_by(caps.request.workload)} if before else set()):
            changed.add(key)
    return changed


def _verdict(caps: InstanceCaps, several: bool) -> tuple[int, int | bool]:
    """What a model's decision reads from its caps on one pool. On its only pool, capacity just
    says whether every instance fits (pods wait Pending otherwise); across pools, how many do."""
    room = caps.capacity.allowed if several else caps.capacity.allowed >= caps.request.instances
    return (caps.allowed, room)


def _reconcile_quotas(world: World, any_tenants: bool) -> None:
    """Every pool's tenants' ResourceQuotas: apply the ones that differ, delete the ones no pool
    asks for any more (a tenant or namespace removed). Quotas span pools, so all pools count."""
    kube, memory = world.kube, world.memory
    if not any_tenants and not memory.quotas_written:
        return
    grants = []
    for body in list(world.cache.pools.values()):
        try:
            pool = InferencePool(metadata=body["metadata"], spec=body["spec"])
        except ValidationError:
            continue
        if pool.spec.tenants:
            grants.extend(tenant_quota_grants(pool, pool.spec.tenants, world.cache.namespace_labels))
    desired = {(q["metadata"]["namespace"], q["metadata"]["name"]): q for q in render_resource_quotas(grants)}
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL}={QUOTA_COMPONENT}"
    current = {
        (q["metadata"]["namespace"], q["metadata"]["name"]): q
        for q in kube.list(RESOURCE_QUOTA, label_selector=selector)
    }
    for key, quota in desired.items():
        kube.apply_if_changed(quota, current.get(key) or {})
    for key, quota in current.items():
        if key not in desired:
            kube.delete(quota)
    memory.quotas_written = bool(desired)


def resync(
    world: World, every_model: bool = True, register: bool = True
) -> tuple[list[str], list[ModelKey], int]:
    """The level-triggered pass's reads: refresh the cache's copies of the models and children,
    and (with `register`: the first resync after a start) have every model the pools' allocations
    do not know yet say what it asks, so that no model takes a count decided without the others'
    demands. Later, a model unknown to the allocations is a new one whose own first pass is queued
    (by its event, or here) and registers it: registering a bulk of new models here as well would
    decide each of them twice. Returns every pool and the models to queue, with the number left
    alone; each queued one then converges in its own pass against what the API server holds at
    that time, not at the time of this listing.

    Without `every_model`, a model unchanged since its last settled pass (its own resource version
    and its children's, `unchanged_since_settled`) is left alone, and the children are not listed
    again: the Deployments' watch keeps theirs current, and the operator's applies the others'.
    A full resync (`every_model`) lists every child and queues every model, for a change no event
    reported (a Service edited or deleted by hand, a watch that broke)."""
    # Every listing is read a page at a time into the cache's compact copies: whole objects of
    # every model or child are never held at once. A deletion whose event was missed leaves a copy
    # the listing lacks: it goes now.
    listed = world.cache.refresh_models(*world.kube.stream_at(MODEL_DEPLOYMENT))
    pools = [pool["metadata"]["name"] for pool in world.kube.list(INFERENCE_POOL)]
    managed = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    if every_model:
        # Deployments too: a watch that broke and listed again never reports what was deleted meanwhile.
        for resource in (DEPLOYMENT, SERVICE, CONFIGMAP):
            items, revision = world.kube.stream_at(resource, label_selector=managed)
            world.cache.refresh(resource.kind, items, revision, watched=resource is DEPLOYMENT)
        list_traffic(world.kube, world.cache, managed)
    else:
        # Gateway API (and Inference Extension) CRDs installed since the last resync are used
        # from this one on.
        rediscover(world.kube)
    # A deletion whose event was missed (a watch restarted) still gives the model's share back: its
    # pass finds it gone and forgets what it asked.
    present = {key for key, _ in listed}
    models = sorted(set(world.memory.asks) - present)
    unchanged = 0
    for key, resource_version in listed:
        if key not in world.memory.asks:
            if not register:
                models.append(key)
                continue
            # The cache's copy: the listing's, or a newer one a watch event brought since.
            body = world.cache.model(*key)
            if body is None:  # deleted since: its event forgets it
                continue
            try:
                reconcile_model(world, *key, register_only=True, listed=body)
            except Exception as err:  # its own pass reports it
                log.debug("registering the demand of %s/%s failed: %s", *key, err)
        elif not every_model and unchanged_since_settled(world, key, resource_version):
            unchanged += 1
            continue
        models.append(key)
    return pools, models, unchanged


def models_of_pool(world: World, pool: str) -> list[ModelKey]:
    """Every model that names the pool in its spec, from the API server."""
    models = []
    for m in world.kube.list(MODEL_DEPLOYMENT):
        spec = m.get("spec") or {}
        if spec.get("pool") == pool or any(p.get("name") == pool for p in spec.get("pools") or []):
            models.append((m["metadata"]["namespace"], m["metadata"]["name"]))
    return models
