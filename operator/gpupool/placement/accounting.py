"""What a pool holds and who holds it, from Node and Pod objects as the API returns them.

Pure: plain dicts in, frozen values out; the same objects always give the same state, so status
is rebuilt from the world on every pass and never read back from an earlier status.

Rules:
- A node belongs to the pool when it carries every label of the pool's nodeSelector. A cordoned
  node (spec.unschedulable) or one whose Ready condition is not True leaves the pool's capacity,
  together with every pod on it: nothing new can start there (the pool's own pods on it, or on a
  node that is gone, are its lost instances: `PoolState.lost`). A node that reports no Ready
  condition at all is taken as ready (the API server always sets one; test fixtures may not).
- A pod in phase Succeeded or Failed holds nothing.
- A pod bound to a member node (spec.nodeName) is an allocation of that node, whoever owns it:
  device plugins hand accelerators out to any pod that asks.
- A pod of the pool (label gpupool.io/pool) that is not bound yet is pending demand: it counts
  toward its tier and tenant, since the scheduler binds it as soon as room appears, but not toward
  any node.
- A pod's request of the accelerator resource is the larger of its containers' sum and its
  largest init container, as the scheduler computes it; requests fall back to limits, because
  for extended resources the API server copies limits into requests.
- A pod's tier is its gpupool.io/tier label when the pod belongs to this pool and the pool has
  that tier; every other pod on the pool's nodes is "unmanaged", capacity no tier may count on.
- A pod preempted by the scheduler (condition DisruptionTarget, reason PreemptionByScheduler) still
  holds its accelerators until it is gone, and is reported as preempted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gpupool.api.tenancy import (
    NodeAccelerators,
    Tenant,
    TenantUsage,
    TensorParallelFit,
    tenant_for_namespace,
)
from gpupool.api.v1alpha1 import InferencePool, Tier
from gpupool.catalog.accelerators import get_accelerator
from gpupool.render.labels import POOL_LABEL, SELECTOR_LABEL, TIER_LABEL, label_value
from gpupool.sizing import TENSOR_PARALLEL_SIZES

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
PREEMPTION_REASON = "PreemptionByScheduler"


# --------------------------------------------------------------------------------------------------
# Reading objects


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def whole_quantity(value: Any) -> int:
    """An extended-resource quantity as a whole number; "8" is 8, "1k" is 1000, junk is 0.

    Extended resources cannot be fractional, so the API server only ever stores whole values;
    suffixed forms are legal quantities all the same.
    """
    text = str(value).strip()
    decimal = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    try:
        if text and text[-1] in decimal:
            return int(text[:-1]) * decimal[text[-1]]
        return int(text)
    except ValueError:
        return 0


def pod_accelerators(pod: Mapping[str, Any], resource: str) -> int:
    """Accelerators a pod requests: max(sum over containers, largest init container)."""
    spec = pod.get("spec") or {}

    def requested(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        amount = (resources.get("requests") or {}).get(resource)
        if amount is None:
            amount = (resources.get("limits") or {}).get(resource, 0)
        return whole_quantity(amount)

    regular = sum(requested(c) for c in spec.get("containers") or [])
    init = max((requested(c) for c in spec.get("initContainers") or []), default=0)
    return max(regular, init)


def node_is_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "True"


def node_exclusion(node: Mapping[str, Any]) -> str | None:
    """Why a node of the pool cannot take new pods, or None."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    if not node_is_ready(node):
        return "not ready"
    return None


def accounted_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """What `account_pool` reads of a node, and nothing else: its name and labels, whether it is
    cordoned, its Ready condition and what it can allocate. A listing's page of whole nodes
    (images, addresses, daemon endpoints) is cut to this as it arrives, so that a recount never
    holds every whole node at once; a field the accounting comes to read must be kept here."""
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    return {
        "metadata": {"name": meta["name"], "labels": meta.get("labels") or {}},
        "spec": {"unschedulable": spec.get("unschedulable", False)},
        "status": {
            "allocatable": status.get("allocatable") or {},
            "conditions": [c for c in status.get("conditions") or [] if c.get("type") == "Ready"],
        },
    }


def accounted_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What `account_pool` reads of a pod, as `accounted_node` of a node: its name, namespace and
    labels, its node, what its containers request, its phase and conditions."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    status = pod.get("status") or {}

    def resources(containers: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        return [{"resources": c.get("resources") or {}} for c in containers or []]

    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": resources(spec.get("containers")),
            "initContainers": resources(spec.get("initContainers")),
        },
        "status": {"phase": status.get("phase"), "conditions": status.get("conditions") or []},
    }


def node_selected(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = _labels(node)
    return all(labels.get(key) == value for key, value in selector.items())


def pod_preempted(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "DisruptionTarget"
        and c.get("status") == "True"
        and c.get("reason") == PREEMPTION_REASON
        for c in conditions
    )


def workload_key(namespace: str, model_deployment: str) -> str:
    """How claims name the ModelDeployment whose pods they are: "namespace/<selector label value>"."""
    return f"{namespace}/{label_value(model_deployment)}"


# --------------------------------------------------------------------------------------------------
# The state


@dataclass(frozen=True)
class Claim:
    """Accelerators one pod requests on the pool."""

    namespace: str
    name: str
    accelerators: int
    node: str | None  # None: pending, not bound yet
    tier: str | None  # None: not a gpupool pod of this pool, or a tier the pool lacks
    workload: str | None  # "namespace/ModelDeployment" for gpupool pods
    tenant: str | None
    preempted: bool = False

    @property
    def pending(self) -> bool:
        return self.node is None


@dataclass(frozen=True)
class NodeAccount:
    name: str
    allocatable: int
    requested: int

    @property
    def free(self) -> int:
        return max(0, self.allocatable - self.requested)


@dataclass(frozen=True)
class TierAccount:
    """One tier: its policy, its reserve, and what its pods hold and wait for."""

    name: str
    priority: int
    reserved_percent: int
    preemptible: bool
    reserved: int
    allocated: int
    pending: int
    preempted: int

    @property
    def used(self) -> int:
        """What the tier claims: bound and pending pods."""
        return self.allocated + self.pending


@dataclass(frozen=True)
class TenantAccount:
    name: str
    namespaces: tuple[str, ...]
    allocated: int
    pending: int
    limit: int | None

    @property
    def used(self) -> int:
        return self.allocated + self.pending


@dataclass(frozen=True)
class PoolState:
    """A pool at one moment: capacity per node, claims per pod, and the pool's policies."""

    pool: str
    resource: str
    accelerator_memory_bytes: int
    nodes: tuple[NodeAccount, ...]
    excluded_nodes: tuple[tuple[str, str], ...]  # (node, why) for members that take no new pods
    claims: tuple[Claim, ...]
    tiers: tuple[Tier, ...]
    tenants: tuple[Tenant, ...] = field(default=())
    # The pool's pods bound to a member node that takes no new pods or to a node that is gone,
    # with why: lost instances, counted nowhere else.
    lost: tuple[tuple[Claim, str], ...] = field(default=())

    # Indexes, built once per state: the operator asks for the caps of every model of a pool after
    # each recount, and each question would otherwise walk every claim.

    @cached_property
    def claims_by_tier(self) -> dict[str | None, tuple[Claim, ...]]:
        grouped: dict[str | None, list[Claim]] = {}
        for claim in self.claims:
            grouped.setdefault(claim.tier, []).append(claim)
        return {tier: tuple(claims) for tier, claims in grouped.items()}

    @cached_property
    def claims_by_workload(self) -> dict[str | None, tuple[Claim, ...]]:
        grouped: dict[str | None, list[Claim]] = {}
        for claim in self.claims:
            grouped.setdefault(claim.workload, []).append(claim)
        return {workload: tuple(claims) for workload, claims in grouped.items()}

    @cached_property
    def claims_by_tenant(self) -> dict[str | None, tuple[Claim, ...]]:
        grouped: dict[str | None, list[Claim]] = {}
        for claim in self.claims:
            grouped.setdefault(claim.tenant, []).append(claim)
        return {tenant: tuple(claims) for tenant, claims in grouped.items()}

    def lost_by(self, workload: str) -> tuple[tuple[Claim, str], ...]:
        """The workload's lost instances, with why each node lost them."""
        return tuple((c, why) for c, why in self.lost if c.workload == workload)

    @cached_property
    def _tier_use(self) -> dict[str | None, int]:
        return {tier: sum(c.accelerators for c in claims) for tier, claims in self.claims_by_tier.items()}

    @cached_property
    def _bound_by_tier_node(self) -> dict[str, dict[str, int]]:
        bound: dict[str, dict[str, int]] = {}
        for claim in self.claims:
            if claim.tier is not None and claim.node is not None:
                by_node = bound.setdefault(claim.tier, {})
                by_node[claim.node] = by_node.get(claim.node, 0) + claim.accelerators
        return bound

    def tier_use(self, tier: str, exclude_workload: str | None = None) -> int:
        """What tier `tier`'s pods request, bound and pending, without `exclude_workload`'s."""
        own = sum(c.accelerators for c in self.claims_by_workload.get(exclude_workload, ()) if c.tier == tier)
        return self._tier_use.get(tier, 0) - (own if exclude_workload is not None else 0)

    def bound_by_node(self, tier: str) -> dict[str, int]:
        """Accelerators the bound pods of tier `tier` hold, per node."""
        return self._bound_by_tier_node.get(tier, {})

    # Capacity

    @cached_property
    def total(self) -> int:
        return sum(n.allocatable for n in self.nodes)

    @cached_property
    def allocated(self) -> int:
        return sum(n.requested for n in self.nodes)

    @cached_property
    def free(self) -> int:
        return sum(n.free for n in self.nodes)

    @cached_property
    def pending(self) -> int:
        return sum(c.accelerators for c in self.claims if c.pending)

    @cached_property
    def _free_by_node(self) -> dict[str, int]:
        return {n.name: n.free for n in self.nodes}

    def free_by_node(self) -> dict[str, int]:
        return dict(self._free_by_node)

    def fragmentation(self, sizes: Sequence[int] = TENSOR_PARALLEL_SIZES) -> tuple[TensorParallelFit, ...]:
        return fragmentation(self.free_by_node().values(), sizes)

    # Tiers

    def reserved(self, tier: Tier) -> int:
        return self.total * tier.reserved_percent // 100

    @property
    def unreserved(self) -> int:
        """Accelerators no tier reserves (the shares' remainder, and rounding)."""
        return self.total - sum(self.reserved(t) for t in self.tiers)

    def tier(self, name: str) -> Tier | None:
        return next((t for t in self.tiers if t.name == name), None)

    def tier_accounts(self) -> tuple[TierAccount, ...]:
        return tuple(self._tier_account(t) for t in self.tiers)

    def _tier_account(self, tier: Tier) -> TierAccount:
        mine = self.claims_by_tier.get(tier.name, ())
        return TierAccount(
            name=tier.name,
            priority=tier.priority,
            reserved_percent=tier.reserved_percent,
            preemptible=tier.preemptible,
            reserved=self.reserved(tier),
            allocated=sum(c.accelerators for c in mine if not c.pending),
            pending=sum(c.accelerators for c in mine if c.pending),
            preempted=sum(c.accelerators for c in mine if c.preempted),
        )

    @cached_property
    def unmanaged(self) -> int:
        """Accelerators held on the pool's nodes by pods no tier of the pool accounts for."""
        return sum(c.accelerators for c in self.claims if c.tier is None and not c.pending)

    # Tenants

    def tenant(self, name: str) -> Tenant | None:
        return next((t for t in self.tenants if t.name == name), None)

    def tenant_accounts(self) -> tuple[TenantAccount, ...]:
        accounts = []
        for tenant in self.tenants:
            mine = self.claims_by_tenant.get(tenant.name, ())
            accounts.append(
                TenantAccount(
                    name=tenant.name,
                    namespaces=tuple(sorted({c.namespace for c in mine})),
                    allocated=sum(c.accelerators for c in mine if not c.pending),
                    pending=sum(c.accelerators for c in mine if c.pending),
                    limit=tenant.max_accelerators_of(self.accelerator_memory_bytes),
                )
            )
        return tuple(accounts)

    # Users, for explanations

    def users(self, claims: Iterable[Claim]) -> list[tuple[str, int]]:
        """(workload or namespace/pod, accelerators) by decreasing use, then name."""
        totals: dict[str, int] = {}
        for claim in claims:
            who = claim.workload or f"{claim.namespace}/{claim.name}"
            totals[who] = totals.get(who, 0) + claim.accelerators
        return sorted(totals.items(), key=lambda item: (-item[1], item[0]))

    # Status

    def node_status(self) -> list[NodeAccelerators]:
        return [
            NodeAccelerators(name=n.name, allocatable=n.allocatable, requested=n.requested, free=n.free)
            for n in self.nodes
        ]

    def tenant_status(self) -> list[TenantUsage]:
        return [
            TenantUsage(
                name=a.name,
                namespaces=list(a.namespaces),
                accelerators=a.allocated,
                pending=a.pending,
                accelerator_memory_bytes=a.used * self.accelerator_memory_bytes,
                limit=a.limit,
            )
            for a in self.tenant_accounts()
        ]


def fragmentation(
    free: Iterable[int], sizes: Sequence[int] = TENSOR_PARALLEL_SIZES
) -> tuple[TensorParallelFit, ...]:
    """For each tensor-parallel size, how many instances fit on nodes with `free` accelerators each.

    An instance needs all its accelerators on one node, so a node with f free fits floor(f / tp);
    what is left over on each node is stranded for that size. The counts are for one size at a
    time (8 free accelerators fit one TP=8 instance or two TP=4 instances, not both).
    """
    frees = [max(0, f) for f in free]
    return tuple(
        TensorParallelFit(
            tensor_parallel=tp,
            instances=sum(f // tp for f in frees),
            stranded_accelerators=sum(f % tp for f in frees),
        )
        for tp in sizes
    )


def account_pool(
    pool: InferencePool,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    *,
    tenants: Sequence[Tenant] = (),
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> PoolState:
    """The pool's state from Node and Pod objects (and, for selector tenants, Namespace labels).

    `namespace_labels` maps namespace names to their labels; without it, only tenants that list
    their namespaces can claim pods.
    """
    name = str(pool.metadata.get("name", ""))
    accelerator = get_accelerator(pool.spec.accelerator)
    resource = pool.spec.resource_name()
    members: dict[str, NodeAccount] = {}
    excluded: list[tuple[str, str]] = []
    known: set[str] = set()
    for node in nodes:
        node_name = str(node["metadata"]["name"])
        known.add(node_name)
        if not node_selected(node, pool.spec.node_selector):
            continue
        why = node_exclusion(node)
        if why is not None:
            excluded.append((node_name, why))
            continue
        allocatable = whole_quantity(((node.get("status") or {}).get("allocatable") or {}).get(resource, 0))
        members[node_name] = NodeAccount(node_name, allocatable, 0)

    tier_names = {t.name for t in pool.spec.tiers}
    requested: dict[str, int] = dict.fromkeys(members, 0)
    claims: list[Claim] = []
    lost: list[tuple[Claim, str]] = []
    why_excluded = dict(excluded)
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
            continue
        labels = _labels(pod)
        ours = labels.get(POOL_LABEL) == name
        spec_node = (pod.get("spec") or {}).get("nodeName")
        bound_to = str(spec_node) if spec_node else None
        if bound_to is None and not ours:
            continue  # pending elsewhere
        gone = bound_to is not None and bound_to not in members
        if gone and not (ours and (bound_to in why_excluded or bound_to not in known)):
            continue  # another pool's node, or a node that takes no new pods
        count = pod_accelerators(pod, resource)
        if count == 0:
            continue
        metadata = pod.get("metadata") or {}
        namespace = str(metadata.get("namespace", ""))
        tier = labels.get(TIER_LABEL) if ours and labels.get(TIER_LABEL) in tier_names else None
        selector = labels.get(SELECTOR_LABEL)
        workload = workload_key(namespace, selector) if ours and selector else None
        owner = tenant_for_namespace(
            tuple(tenants),
            namespace,
            dict(namespace_labels[namespace]) if namespace_labels and namespace in namespace_labels else None,
        )
        claim = Claim(
            namespace=namespace,
            name=str(metadata.get("name", "")),
            accelerators=count,
            node=bound_to,
            tier=tier,
            workload=workload,
            tenant=owner.name if owner else None,
            preempted=pod_preempted(pod),
        )
        if gone:
            lost.append((claim, why_excluded.get(str(bound_to), "gone")))
            continue
        claims.append(claim)
        if bound_to is not None:
            requested[bound_to] += count

    accounts = tuple(NodeAccount(n, members[n].allocatable, requested[n]) for n in sorted(members))
    return PoolState(
        pool=name,
        resource=resource,
        accelerator_memory_bytes=accelerator.memory_bytes,
        nodes=accounts,
        excluded_nodes=tuple(sorted(excluded)),
        claims=tuple(sorted(claims, key=lambda c: (c.namespace, c.name))),
        tiers=tuple(pool.spec.tiers),
        tenants=tuple(tenants),
        lost=tuple(sorted(lost, key=lambda item: (item[0].namespace, item[0].name))),
    )
