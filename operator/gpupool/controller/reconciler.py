"""One idempotent reconcile per kind: read the world, ask the pure core, write only the difference.

Handlers (edge-triggered) and the periodic resync (level-triggered) both end here, so the same
function runs whatever woke it up. A lock per object keeps two triggers from interleaving.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from kubernetes.client.exceptions import ApiException
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
from gpupool.controller import metrics
from gpupool.controller.kube import (
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
    resource_of,
    with_applied_hash,
)
from gpupool.placement import Allocation, InstanceCaps, PoolState, allocated_caps, recount
from gpupool.render import render_priority_classes, selector_labels, workload_name
from gpupool.render.labels import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SELECTOR_LABEL,
    label_value,
)
from gpupool.render.quota import QUOTA_COMPONENT, render_resource_quotas, tenant_quota_grants
from gpupool.services.autoscaling import Scaling
from gpupool.services.modeldeployment import (
    ModelOutcome,
    PoolContext,
    UnparsedPool,
    WorkloadObservation,
    decide,
    total_observed,
)
from gpupool.services.pool import pool_state, status_of

# Pods that hold resources: the others have finished.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"

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


# The API server's answers to an object it will not store as it is: Bad Request, Unprocessable.
REFUSED = (400, 422)


def refusal_message(err: ApiException) -> str:
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


# Children as listed at the start of a resync pass, by (kind, namespace, name).
Snapshot = dict[tuple[str, str, str], dict[str, Any]]


# A step before the decision: the autoscaler's decision for the model (None: it has none), which
# `decide` takes as its `scaling` input.
Adjust = Callable[[ModelDeployment, WorkloadObservation | None], Scaling | None]


ModelKey = tuple[str, str]

# Pools' accounting from the last pass, by pool name: every model reconcile needs its pools' state,
# and counting walks every node and pod, so it happens once per pass, not once per model.
_states: dict[str, PoolState] = {}
# Labels of every namespace, read when some pool has tenants (selectors pick namespaces by label).
_namespace_labels: dict[str, dict[str, str]] = {}
# What each model asked of its pools at its last reconcile, with what the limits allowed then.
_asks: dict[ModelKey, dict[str, InstanceCaps]] = {}
# Each pool's allocation over every model's demand, with the state it was computed on: made once
# per recount, read by every model of the pool, and replaced when a model's demand changes.
_allocations: dict[str, tuple[PoolState, Allocation]] = {}
# Instances the scheduler evicted for a higher tier, by model, until its status says so.
_preemptions: dict[ModelKey, dict[str, str]] = {}


def note_preemption(namespace: str, model: str, pod: str, message: str) -> bool:
    """Remember that `pod` of the model was preempted; True when it is news."""
    seen = _preemptions.setdefault((namespace, model), {})
    if pod in seen:
        return False
    seen[pod] = message
    return True


def forget_model(namespace: str, name: str) -> set[str]:
    """Drop a deleted model's demand; returns the pools it asked of, whose allocations must be
    recounted without it so that its share goes back to the others."""
    _preemptions.pop((namespace, name), None)
    return set(_asks.pop((namespace, name), {}))


def model_for_label(namespace: str, label: str) -> str:
    """The ModelDeployment whose pods carry `label` as their identity label. The label is the name
    itself unless the name is longer than a label value may be; then it is a known model's."""
    for known_namespace, name in list(_asks):
        if known_namespace == namespace and label_value(name) == label:
            return name
    return label


def _preemption_message(key: ModelKey) -> str | None:
    pods = _preemptions.get(key)
    if not pods:
        return None
    names = sorted(pods)
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"the scheduler preempted {len(names)} instance(s) ({shown}) to make room for a higher tier: "
        f"{pods[names[0]]}; they come back when room returns"
    )


def _context(kube: Kube, name: str, namespace: str) -> PoolContext | UnparsedPool | None:
    pool = _read_pool(kube, name)
    if isinstance(pool, UnparsedPool) or pool is None:
        return pool
    state = _states.get(name)
    if state is None:
        state = _account_one(kube, pool)
    held = _allocations.get(name)
    allocation = held[1] if held is not None and held[0] is state else None
    return PoolContext(pool, state, _namespace_labels.get(namespace), allocation)


def _account_one(kube: Kube, pool: InferencePool) -> PoolState:
    """Count a pool the first time a model needs it, before the accounting pass has."""
    nodes = list(kube.list(NODE))
    pods = list(kube.list(POD, field_selector=LIVE_PODS))
    global _namespace_labels
    if pool.spec.tenants and not _namespace_labels:
        _namespace_labels = _read_namespaces(kube)
    state = pool_state(pool, nodes, pods, _namespace_labels or None)
    _states[pool.metadata["name"]] = state
    return state


def _read_namespaces(kube: Kube) -> dict[str, dict[str, str]]:
    return {ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {}) for ns in kube.list(NAMESPACE)}


# The last copy seen of each managed Deployment, kept by the Deployment watch as compact JSON
# (about 5 kB each instead of about 25 kB as a parsed object): an event-driven reconcile compares
# with it instead of reading the Deployment again. A copy that lags our own last apply costs at
# most one repeated apply; a drift by someone else arrives as an event that refreshes it.
# Each copy is held with its resource version and with what the model's status reads from it.
_workloads: dict[tuple[str, str], tuple[int | None, tuple[Any, ...], str]] = {}
_workloads_guard = threading.Lock()


def _revision(body: dict[str, Any]) -> int | None:
    try:
        return int(body["metadata"].get("resourceVersion", ""))
    except ValueError:
        return None  # resource versions are opaque; when one is not a number, the latest wins


def _read_by_model(body: dict[str, Any]) -> tuple[Any, ...]:
    """What a model's status reads from its Deployment; annotations, conditions and our own applies
    that change nothing of the spec do not move it."""
    status = body.get("status") or {}
    return (
        body["metadata"].get("generation"),
        status.get("observedGeneration"),
        status.get("replicas"),
        status.get("readyReplicas"),
        status.get("updatedReplicas"),
    )


def remember_workload(body: dict[str, Any]) -> bool:
    """Keep the newest copy of a Deployment; True when what its model reads from it changed."""
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    revision = _revision(body)
    read = _read_by_model(body)
    compact = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    with _workloads_guard:
        held = _workloads.get(key)
        if held is not None and held[0] is not None and revision is not None and revision < held[0]:
            return False  # an older event than the copy held
        _workloads[key] = (revision, read, json.dumps(compact, separators=(",", ":")))
    return held is None or held[1] != read


def forget_workload(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    revision = _revision(body)
    with _workloads_guard:
        held = _workloads.get(key)
        # A re-created Deployment's copy is newer than the deletion of the old one: keep it.
        if held is not None and (held[0] is None or revision is None or held[0] <= revision):
            del _workloads[key]


def _workload(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    held = _workloads.get((namespace, name))
    if held is not None:
        body: dict[str, Any] = json.loads(held[2])
        return body
    return kube.get(DEPLOYMENT, namespace, name)


def reconcile_model(
    kube: Kube,
    namespace: str,
    name: str,
    snapshot: Snapshot | None = None,
    adjust: Adjust | None = None,
    workloads_only: bool = False,
    register_only: bool = False,
) -> ModelOutcome | None:
    """Converge one ModelDeployment. Returns what was decided (None when it is gone).

    With a snapshot (the resync pass), children are compared with the listed copies instead of
    being read one by one; without one, Deployments come from the watch's copies. The
    ModelDeployment itself is always read fresh, so its status is never compared with a stale
    copy. `workloads_only` (a Deployment's status changed) compares and applies the Deployments
    alone: the Service and ConfigMap do not depend on a workload's status, and model events and
    the resync cover them. `register_only` decides without writing anything: the model's demand
    joins its pools' allocations before any model of the pass applies a count.
    """
    started = time.perf_counter()
    key = (namespace, name)
    with _locked(key):
        body = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            _asks.pop(key, None)
            _preemptions.pop(key, None)
            return None
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            message = f"spec is invalid: {_short(err)}"
            if kube.apply_status(MODEL_DEPLOYMENT, body, _invalid_spec_status(body, message)):
                kube.post_event(body, "Warning", Reason.INVALID_SPEC.value, message, now_rfc3339())
            return None
        md = ModelDeployment(
            metadata=body["metadata"],
            spec=spec,
            status=parse_status(body.get("status"), ModelDeploymentStatus),
        )
        contexts = {pool: _context(kube, pool, namespace) for pool in spec.pool_names()}
        deployments: dict[str, dict[str, Any] | None] = {}
        for pool in spec.pool_names():
            workload = workload_name(name, pool if spec.pools else None)
            if snapshot is None:
                deployments[pool] = _workload(kube, namespace, workload)
            else:
                deployments[pool] = snapshot.get(("Deployment", namespace, workload))
        preemption = _preemption_message(key)
        observed = {pool: observe_workload(d) for pool, d in deployments.items()}
        scaling = adjust(md, total_observed(observed)) if adjust is not None else None
        outcome = decide(md, contexts, observed, now_rfc3339(), scaling=scaling, preemption=preemption)
        if register_only:
            _remember_asks(key, outcome, contexts)
            return outcome
        writes = 0
        refused = _refusal_of(key, outcome) if outcome.apply else None
        if outcome.apply and refused is None:
            try:
                writes += _apply_outcome(kube, body, md, outcome, deployments, snapshot, workloads_only)
            except ApiException as err:
                if err.status not in REFUSED:
                    raise
                refused = _remember_refusal(key, body, outcome, err)
        if refused is not None:
            outcome = replace(outcome, status=_rejected_status(outcome, refused), events=[])
        else:
            _rejections.pop(key, None)
        if kube.apply_status(MODEL_DEPLOYMENT, body, outcome.status.to_wire()):
            writes += 1
            if refused is not None and _newly_rejected(md, outcome):
                kube.post_event(body, "Warning", Reason.REJECTED.value, refused, now_rfc3339())
        placed = find_condition(outcome.status.conditions, ConditionType.PLACED)
        if preemption is not None and placed is not None and placed.reason == Reason.PREEMPTED:
            _preemptions.pop(key, None)
        moved = _remember_asks(key, outcome, contexts)
        now = now_rfc3339()
        for event in outcome.events:
            kube.post_event(body, event.type, event.reason, event.message, now)
        metrics.observe_model(namespace, name, outcome.status, writes, time.perf_counter() - started)
    # The model's new demand moved other models' counts: they take theirs now, not at the next
    # recount, so the pool never holds two allocations' counts at once for long.
    for other_namespace, other in sorted(moved):
        reconcile_model(kube, other_namespace, other)
    return outcome


def _apply_outcome(
    kube: Kube,
    body: dict[str, Any],
    md: ModelDeployment,
    outcome: ModelOutcome,
    deployments: dict[str, dict[str, Any] | None],
    snapshot: Snapshot | None,
    workloads_only: bool,
) -> int:
    """Apply the model's objects that differ from what the cluster holds, then prune the
    Deployments it no longer needs; the number of writes."""
    namespace = body["metadata"]["namespace"]
    writes = 0
    current_by_name = {("Deployment", namespace, d["metadata"]["name"]): d for d in deployments.values() if d}
    fresh = all(d is None for d in deployments.values())
    for obj in outcome.objects:
        if fresh:
            # A new workload: nothing to compare with, so skip the reads.
            kube.apply(with_applied_hash(obj))
            writes += 1
            continue
        if workloads_only and obj["kind"] != "Deployment":
            continue
        obj_key = (obj["kind"], namespace, obj["metadata"]["name"])
        current = current_by_name.get(obj_key)
        if current is None and resource_of(obj) == DEPLOYMENT:
            current = None  # a pool the model did not use before: apply_if_changed reads it
        elif current is None and snapshot is not None:
            current = snapshot.get(obj_key) or kube.get(resource_of(obj), namespace, obj["metadata"]["name"])
        writes += kube.apply_if_changed(obj, current)
    writes += _prune_workloads(kube, body, md, outcome, snapshot)
    return writes


# Objects of a model the API server refused, by model: the digests of the objects as rendered
# and the server's answer. The same objects are not sent again on every resync; a change of
# the spec or of the pool renders different objects, which are tried.
_rejections: dict[ModelKey, tuple[frozenset[str], str]] = {}


def _digests(outcome: ModelOutcome) -> frozenset[str]:
    return frozenset(applied_hash(obj) for obj in outcome.objects)


def _refusal_of(key: ModelKey, outcome: ModelOutcome) -> str | None:
    """The API server's answer when it already refused exactly these objects, else None."""
    held = _rejections.get(key)
    if held is None or held[0] != _digests(outcome):
        return None
    return held[1]


def _remember_refusal(key: ModelKey, body: dict[str, Any], outcome: ModelOutcome, err: ApiException) -> str:
    message = refusal_message(err)
    _rejections[key] = (_digests(outcome), message)
    log.warning(
        "the API server refused an object of %s/%s: %s",
        key[0],
        key[1],
        message,
        extra={"obj_kind": "ModelDeployment", "obj_namespace": key[0], "obj_name": key[1]},
    )
    return message


def _rejected_status(outcome: ModelOutcome, message: str) -> ModelDeploymentStatus:
    """The decided status with Ready=False and Degraded=True saying what the API server refused."""
    status = outcome.status
    generation = status.observed_generation
    now = now_rfc3339()
    text = (
        f"the API server refused the rendered objects: {message}; fix the field it names in the "
        "ModelDeployment or its InferencePool (what ran before keeps running)"
    )
    conditions = list(status.conditions)
    for type_, state in (
        (ConditionType.READY, ConditionStatus.FALSE),
        (ConditionType.DEGRADED, ConditionStatus.TRUE),
        (ConditionType.PROGRESSING, ConditionStatus.FALSE),
    ):
        conditions = set_condition(conditions, type_, state, Reason.REJECTED, text, generation, now)
    return status.model_copy(update={"conditions": conditions})


def _newly_rejected(md: ModelDeployment, outcome: ModelOutcome) -> bool:
    """Whether the status before this pass did not already say Rejected for this generation."""
    before = find_condition(md.status.conditions if md.status else [], ConditionType.DEGRADED)
    after = find_condition(outcome.status.conditions, ConditionType.DEGRADED)
    return (
        before is None
        or after is None
        or (before.reason, before.observed_generation)
        != (
            after.reason,
            after.observed_generation,
        )
    )


def _remember_asks(
    key: ModelKey, outcome: ModelOutcome, contexts: dict[str, PoolContext | UnparsedPool | None]
) -> set[ModelKey]:
    """Keep what the model asked, and each pool's allocation with its demand in it. Returns the
    other models whose count that allocation changed."""
    _asks[key] = dict(outcome.asks)
    moved: set[ModelKey] = set()
    for pool, allocation in outcome.allocations.items():
        context = contexts.get(pool)
        if not isinstance(context, PoolContext) or context.state is None:
            continue
        if _states.get(pool) is not context.state:
            continue
        before = context.allocation
        _allocations[pool] = (context.state, allocation)
        if before is None or before is allocation:
            continue
        for other, asks in list(_asks.items()):
            caps = asks.get(pool)
            if other != key and caps is not None and caps.allowed != allocation.count(caps.request.workload):
                moved.add(other)
    return moved


# The snapshot last indexed, kept alive with its index so that `is` identifies it reliably.
_indexed: tuple[Snapshot, dict[tuple[str, str], set[str]]] | None = None


def _deployments_by_identity(snapshot: Snapshot) -> dict[tuple[str, str], set[str]]:
    """The snapshot's Deployments by (namespace, identity label), built once per resync pass."""
    global _indexed
    if _indexed is not None and _indexed[0] is snapshot:
        return _indexed[1]
    index: dict[tuple[str, str], set[str]] = {}
    for (kind, namespace, name), obj in snapshot.items():
        label = (obj["metadata"].get("labels") or {}).get(SELECTOR_LABEL)
        if kind == "Deployment" and label:
            index.setdefault((namespace, label), set()).add(name)
    _indexed = (snapshot, index)
    return index


def _prune_workloads(
    kube: Kube,
    body: dict[str, Any],
    md: ModelDeployment,
    outcome: ModelOutcome,
    snapshot: Snapshot | None,
) -> int:
    """Delete the model's Deployments that no longer serve it: a pool it left, or the single-pool
    Deployment after a switch to several pools (and back). Candidates are the workloads its last
    status named and, in a resync, every listed Deployment carrying its identity label; only
    Deployments this ModelDeployment controls are deleted."""
    namespace = body["metadata"]["namespace"]
    uid = body["metadata"].get("uid")
    wanted = {o["metadata"]["name"] for o in outcome.objects if o["kind"] == "Deployment"}
    names = {p.workload for p in (md.status.placements if md.status else []) if p.workload}
    if snapshot is not None:
        [identity] = selector_labels(body["metadata"]["name"]).values()
        names |= _deployments_by_identity(snapshot).get((namespace, identity), set())
    deleted = 0
    for stale in sorted(names - wanted):
        current = (snapshot or {}).get(("Deployment", namespace, stale)) or _workload(kube, namespace, stale)
        if current is None:
            continue
        owners = current["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == uid and o.get("controller") for o in owners):
            continue
        deleted += kube.delete(current)
    return deleted


# The last body seen of each pool, kept current by the pool watch: every model reconcile needs its
# pool, and reading it from the API server each time is the largest share of a reconcile's reads.
_pools: dict[str, dict[str, Any]] = {}


def remember_pool(body: dict[str, Any]) -> None:
    _pools[body["metadata"]["name"]] = body


def known_pools() -> list[str]:
    return sorted(_pools)


def forget_pool(name: str) -> None:
    _pools.pop(name, None)
    _states.pop(name, None)
    _allocations.pop(name, None)


def _read_pool(kube: Kube, name: str) -> InferencePool | UnparsedPool | None:
    """The pool a model names: parsed, or why it does not parse (its own status says so too)."""
    body = _pools.get(name) or kube.get(INFERENCE_POOL, None, name)
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


def reconcile_pool(kube: Kube, name: str) -> list[tuple[str, str]]:
    """Converge one pool; returns the models whose limits changed (see `reconcile_pools`)."""
    return reconcile_pools(kube, [name])


def reconcile_pools(kube: Kube, names: list[str]) -> list[tuple[str, str]]:
    """Converge pools: PriorityClasses, accounting, status, tenants' ResourceQuotas.

    Nodes, pods and namespaces are listed once for all of them. Returns the models whose tier,
    quota or capacity limits on these pools now answer differently than at their last
    reconcile: they need another pass (a model waiting for room, a borrower whose lender grew).
    """
    bodies = []
    for name in names:
        body = kube.get(INFERENCE_POOL, None, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            _states.pop(name, None)
            continue
        remember_pool(body)
        bodies.append(body)
    if not bodies:
        return []
    nodes = list(kube.list(NODE))
    pods = list(kube.list(POD, field_selector=LIVE_PODS))
    pools_with_tenants = any((b.get("spec") or {}).get("tenants") for b in _pools.values())
    if pools_with_tenants:
        # One assignment, never clear-then-fill: another thread reading the map in between would
        # see no tenant namespace at all and delete every tenant's quota as no longer asked for.
        global _namespace_labels
        _namespace_labels = _read_namespaces(kube)
    changed: set[ModelKey] = set()
    for body in bodies:
        name = body["metadata"]["name"]
        with _locked(("", name)):
            changed |= _reconcile_one_pool(kube, body, nodes, pods, pools_with_tenants)
    _reconcile_quotas(kube, pools_with_tenants)
    return sorted(changed)


def _reconcile_one_pool(
    kube: Kube,
    body: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    pools_with_tenants: bool,
) -> set[ModelKey]:
    """One pool of a batched recount. A pool that does not parse, or whose objects the API server
    refuses, gets a status saying so and never stops the recount of the others."""
    name = body["metadata"]["name"]
    try:
        pool = InferencePool(
            metadata=body["metadata"],
            spec=body.get("spec") or {},
            status=parse_status(body.get("status"), InferencePoolStatus),
        )
    except ValidationError as err:
        _refuse_pool(kube, body, Reason.INVALID_SPEC, f"spec is invalid: {_short(err)}")
        return set()
    try:
        return _count_pool(kube, body, pool, nodes, pods, pools_with_tenants)
    except ApiException as err:
        if err.status not in REFUSED:
            raise
        _refuse_pool(kube, body, Reason.REJECTED, refusal_message(err))
    except Exception:  # one pool's failure must not stop the recount of the others
        where = {"obj_kind": "InferencePool", "obj_name": name}
        log.exception("recount of pool %s failed", name, extra=where)
    return set()


def _refuse_pool(kube: Kube, body: dict[str, Any], reason: Reason, message: str) -> None:
    """Ready=False with why: once in the log and as an event when the status changes."""
    name = body["metadata"]["name"]
    _states.pop(name, None)
    if kube.apply_status(INFERENCE_POOL, body, _invalid_pool_status(body, message, reason)):
        log.warning("pool %s: %s", name, message, extra={"obj_kind": "InferencePool", "obj_name": name})
        kube.post_event(body, "Warning", reason.value, message, now_rfc3339())


def _count_pool(
    kube: Kube,
    body: dict[str, Any],
    pool: InferencePool,
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    pools_with_tenants: bool,
) -> set[ModelKey]:
    """PriorityClasses, accounting and status of one parsed pool; the models whose limits moved."""
    name = body["metadata"]["name"]
    for obj in render_priority_classes(pool):
        kube.apply_if_changed(obj)
    state = pool_state(pool, nodes, pods, _namespace_labels if pools_with_tenants else None)
    before = _states.get(name)
    _states[name] = state
    held = _allocations.get(name)
    asking = [caps.request.workload for asks in list(_asks.values()) if (caps := asks.get(name))]
    allocation = recount(state, held[1] if held is not None else None, asking)
    if allocation is not None:
        _allocations[name] = (state, allocation)
    status = status_of(pool, state, now_rfc3339(), allocation)
    kube.apply_status(INFERENCE_POOL, body, status.to_wire())
    metrics.observe_pool(name, status)
    return _limits_changed(name, state, allocation) | _lost_changed(name, before, state)


def _limits_changed(pool: str, state: PoolState, allocation: Allocation | None) -> set[ModelKey]:
    """Models whose count or caps on `pool` differ under `state` from what their last reconcile saw."""
    changed = set()
    for key, asks in list(_asks.items()):
        caps = asks.get(pool)
        if caps is None:
            continue
        if allocation is None or caps.request.workload not in allocation.demands:
            changed.add(key)
            continue
        several = len(asks) > 1
        again = allocated_caps(state, allocation, caps.request, _namespace_labels.get(key[0]))
        if _verdict(again, several) != _verdict(caps, several):
            changed.add(key)
    return changed


def _lost_changed(pool: str, before: PoolState | None, state: PoolState) -> set[ModelKey]:
    """Models that lost instances with a node, or got them back, since the last recount: they
    report it at once."""
    was = {c.name for c, _ in before.lost} if before is not None else set()
    if was == {c.name for c, _ in state.lost}:
        return set()
    changed = set()
    for key, asks in list(_asks.items()):
        caps = asks.get(pool)
        if caps is None:
            continue
        lost = {c.name for c, _ in state.lost_by(caps.request.workload)}
        if lost != ({c.name for c, _ in before.lost_by(caps.request.workload)} if before else set()):
            changed.add(key)
    return changed


def _verdict(caps: InstanceCaps, several: bool) -> tuple[int, int | bool]:
    """What a model's decision reads from its caps on one pool. On its only pool, capacity just
    says whether every instance fits (pods wait Pending otherwise); across pools, how many do."""
    room = caps.capacity.allowed if several else caps.capacity.allowed >= caps.request.instances
    return (caps.allowed, room)


_quotas_written = False


def _reconcile_quotas(kube: Kube, any_tenants: bool) -> None:
    """Every pool's tenants' ResourceQuotas: apply the ones that differ, delete the ones no pool
    asks for any more (a tenant or namespace removed). Quotas span pools, so all pools count."""
    global _quotas_written
    if not any_tenants and not _quotas_written:
        return
    grants = []
    for body in _pools.values():
        try:
            pool = InferencePool(metadata=body["metadata"], spec=body["spec"])
        except ValidationError:
            continue
        if pool.spec.tenants:
            grants.extend(tenant_quota_grants(pool, pool.spec.tenants, _namespace_labels))
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
    _quotas_written = bool(desired)


def resync_all(kube: Kube) -> None:
    """The level-triggered pass: every pool, then every model, from what the API server holds now."""
    global _indexed
    started = time.perf_counter()
    try:
        reconcile_pools(kube, [pool["metadata"]["name"] for pool in kube.list(INFERENCE_POOL)])
    except Exception:  # a failed count must not stop the pass for the models
        log.exception("resync of the pools failed")
    managed = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    snapshot: Snapshot = {
        (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]): obj
        for resource in (DEPLOYMENT, SERVICE, CONFIGMAP)
        for obj in kube.list(resource, label_selector=managed)
    }
    models = [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in kube.list(MODEL_DEPLOYMENT)]
    # A deletion whose event was missed (a watch restarted) still gives the model's share back.
    gone: set[str] = set()
    for key in set(_asks) - set(models):
        gone |= forget_model(*key)
    if gone:
        reconcile_pools(kube, sorted(gone))
    # Models the pools' allocations do not know yet (all of them after a start) say what they ask
    # first, so that no model takes a count decided without the others' demands.
    for namespace, name in models:
        if (namespace, name) not in _asks:
            try:
                reconcile_model(kube, namespace, name, snapshot, register_only=True)
            except Exception:
                log.exception("registering the demand of %s/%s failed", namespace, name)
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
    _indexed = None  # the snapshot goes with the pass
    log.info("resync of %d models took %.1fs", len(models), time.perf_counter() - started)
