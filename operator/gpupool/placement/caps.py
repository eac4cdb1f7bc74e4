"""All the limits on one model in one pool: tier share, tenant quota, and room on the nodes.

`instance_caps` is what the operator asks for a model on a pool: the tier and tenant caps (always
applied to the desired instance count) and the capacity cap (how many instances could actually
run now, counting those already running and what fits on the nodes), with the binding one first.

The capacity cap is fragmentation-aware: an instance needs all its accelerators on one node. For a
non-preemptible tier a node's reachable accelerators are its free ones plus those held by pods of
lower priority (the scheduler preempts them for it); a preemptible tier reaches free ones only.
With a single pool, the desired count is not cut to the capacity cap: pending pods then wait for
room or for a cluster autoscaler to add a node, and status says why. With several pools it decides
what overflows to the next pool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gpupool.api.tenancy import LimitKind
from gpupool.placement.accounting import PoolState
from gpupool.placement.allocation import Allocation
from gpupool.placement.request import Cap, InstanceRequest, PlacementReason, instances_of, plural
from gpupool.placement.tenants import tenant_cap
from gpupool.placement.tiers import tier_cap


def reachable_by_node(
    state: PoolState, tier_name: str, exclude_workload: str | None = None
) -> dict[str, int]:
    """Accelerators per node a new pod of `tier_name` could get: free, plus what lower tiers hold
    when the tier may preempt (the excluded workload's own pods stay where they are)."""
    tier = state.tier(tier_name)
    if tier is None:
        raise ValueError(f"pool {state.pool} has no tier {tier_name!r}")
    reach = state.free_by_node()
    if tier.preemptible:
        return reach
    lower = {t.name for t in state.tiers if t.priority < tier.priority}
    for name in lower:
        for node, held in state.bound_by_node(name).items():
            reach[node] += held
    # The excluded workload's own pods stay where they are.
    for claim in state.claims_by_workload.get(exclude_workload, ()) if exclude_workload else ():
        if claim.node is not None and claim.tier in lower:
            reach[claim.node] -= claim.accelerators
    return reach


def running_instances(state: PoolState, workload: str, nodes_per_instance: int = 1) -> int:
    """Instances of the workload on the pool: bound pods, `nodes_per_instance` pods each."""
    pods = sum(1 for c in state.claims_by_workload.get(workload, ()) if not c.pending)
    return pods // nodes_per_instance


def capacity_cap(state: PoolState, request: InstanceRequest) -> Cap:
    """How many instances could run now: those running plus what fits on the nodes, one node each."""
    running = running_instances(state, request.workload, request.nodes_per_instance)
    reach = reachable_by_node(state, request.tier, request.workload)
    tp = request.tensor_parallel
    # A pod holds `per_pod` accelerators of one node; an instance needs that many pods.
    pods = sum(r // request.per_pod for r in reach.values())
    more = pods // request.nodes_per_instance
    stranded = sum(r % request.per_pod for r in reach.values())
    allowed = min(request.instances, running + more)
    preempting = (
        ""
        if (tier := state.tier(request.tier)) is None or tier.preemptible
        else (" (free, or held by lower tiers it may preempt)")
    )
    message = (
        f"pool {state.pool} runs {running} of the model's instances and has room on its "
        f"{plural(len(state.nodes), 'node')} for {more} more of {plural(tp, 'accelerator')} each"
        f"{preempting}; {plural(stranded, 'reachable accelerator')} are stranded in pieces smaller "
        f"than {request.per_pod}: {allowed} of the {instances_of(request.instances, tp)} asked can run"
    )
    return Cap(
        kind=LimitKind.POOL,
        pool=state.pool,
        asked=request.instances,
        allowed=allowed,
        room=sum(reach.values()),
        message=message,
    )


@dataclass(frozen=True)
class InstanceCaps:
    """Every limit on a request in one pool."""

    request: InstanceRequest
    tier: Cap
    tenant: Cap
    capacity: Cap

    @property
    def allowed(self) -> int:
        """What the tier and the tenant allow: the desired count on a single pool."""
        return min(self.tier.allowed, self.tenant.allowed)

    @property
    def runnable(self) -> int:
        """What could run now besides: the room on this pool when several pools share a model."""
        return min(self.allowed, self.capacity.allowed)

    def binding(self, *, with_capacity: bool = False) -> list[Cap]:
        """The caps that cut the request, smallest allowance first (tier before tenant on ties)."""
        caps = [self.tier, self.tenant] + ([self.capacity] if with_capacity else [])
        order = {LimitKind.TIER: 0, LimitKind.TENANT: 1, LimitKind.POOL: 2}
        return sorted((c for c in caps if c.capped), key=lambda c: (c.allowed, order[c.kind]))

    def reason(self, *, with_capacity: bool = False) -> PlacementReason:
        caps = self.binding(with_capacity=with_capacity)
        if not caps:
            return PlacementReason.PLACED
        reason = caps[0].reason
        assert reason is not None
        return reason

    def message(self, *, with_capacity: bool = False) -> str:
        caps = self.binding(with_capacity=with_capacity)
        if not caps:
            return (
                f"{instances_of(self.request.instances, self.request.tensor_parallel)} within "
                f"tier {self.request.tier} and quota on pool {self.tier.pool}"
            )
        return "; ".join(c.message for c in caps)


def instance_caps(
    state: PoolState, request: InstanceRequest, namespace_labels: dict[str, str] | None = None
) -> InstanceCaps:
    """The tier, tenant and capacity caps of `request` on the pool `state` describes."""
    return InstanceCaps(
        request=request,
        tier=tier_cap(state, request),
        tenant=tenant_cap(state, request, namespace_labels),
        capacity=capacity_cap(state, request),
    )


def _share_message(state: PoolState, allocation: Allocation, request: InstanceRequest, count: int) -> str:
    """The numbers of the pool's allocation behind a tier's share."""
    share = allocation.share(request.tier)
    if share is None:
        return f"pool {state.pool} has no tier {request.tier}"
    limit = "no borrowing limit" if share.limit is None else f"at most {share.limit} with borrowing"
    parts = [f"its reserve of {share.reserve}", limit]
    if share.borrowed:
        parts.append(f"{share.borrowed} borrowed from idle capacity")
    if share.lent:
        parts.append(f"{share.lent} of its reserve lent to other tiers")
    for borrower, taken in share.reclaimed:
        parts.append(f"{taken} taken back from {borrower}")
    message = (
        f"tier {share.name} of pool {state.pool} gets {share.allocated} of the "
        f"{plural(allocation.capacity, 'accelerator')} its tiers share ({', '.join(parts)}) for the "
        f"{share.demand} its models ask; {plural(allocation.idle, 'accelerator')} stay idle"
    )
    reclaim = allocation.reclaims.get(request.workload)
    if reclaim is not None:
        cut, by = reclaim
        message += (
            f"; {plural(cut, 'running instance')} of this model go back to tier {by}'s reserve "
            "(the least busy first)"
        )
    return message + f": {count} of the {instances_of(request.instances, request.tensor_parallel)} asked"


def allocated_caps(
    state: PoolState,
    allocation: Allocation,
    request: InstanceRequest,
    namespace_labels: dict[str, str] | None = None,
) -> InstanceCaps:
    """The caps of `request` as the pool's allocation decided them: the tier's share or the
    tenant's quota holds the count at the allocation's, and capacity is reported as before."""
    count = min(request.instances, allocation.count(request.workload))
    tenant = tenant_cap(state, request, namespace_labels)
    by_quota = request.workload in allocation.tenant_capped
    tier = Cap(
        kind=LimitKind.TIER,
        pool=state.pool,
        asked=request.instances,
        allowed=request.instances if by_quota else count,
        room=count * request.tensor_parallel,
        message=_share_message(state, allocation, request, count),
    )
    quota = replace(tenant, allowed=count if by_quota else request.instances)
    return InstanceCaps(request=request, tier=tier, tenant=quota, capacity=capacity_cap(state, request))
