"""One allocation per pool: every model's instance count, decided together from one snapshot.

Each model asking for instances of one pool is a `Demand` (how many instances of how many
accelerators, and how many it holds now). `allocate` fills the pool in one pass, in tier
priority order, the way Kueue admits workloads against a cohort (nominal quota, borrowing and
lending limits, reclaim within the cohort) and Volcano's capacity plugin shares a cluster between
queues (guarantee, capability, reclaim):

1. **Keep.** What a model holds and still asks for is kept: first its instances bound to a
   schedulable node (always: capacity lost to a sick node never cuts what runs elsewhere), then
   its pending instances while the pool has room for them, highest tier first. A tenant over its
   quota keeps only what the quota allows.
2. **Reserves are floors.** Tier by tier, highest first, each tier's models grow up to the
   tier's reserve. When the pool has no room left, a tier with `reclaim` takes its reserve back
   from tiers holding more than their own reserve, the lowest priority first, one instance at a
   time, and only when what it can take back is enough for the instance it wants.
3. **Idle capacity is lent** in priority order to the tiers that still ask, up to each tier's
   borrowing limit (reserve + `borrowingLimitPercent` of the pool; no limit by default). The idle
   reserve of a tier that is not `lendable` is kept for it.

Within a tier, instances go to the model holding the fewest accelerators first (max-min fair),
then by name, one instance at a time; a cut takes from the model holding the most. Running
instances are never traded for new ones except to give a tier its reserve back, so a repeated pass
over its own result changes nothing.

Counts are bounded: by the pool's accelerators where it has schedulable nodes, and by
`MAX_INSTANCES_WITHOUT_NODES` per model where it has none (pending pods make a cluster autoscaler
add nodes; a billion would not).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from gpupool.api.v1alpha1 import Tier
from gpupool.placement.accounting import Claim, PoolState
from gpupool.placement.request import InstanceRequest

# Instances a model may ask of a pool that has no schedulable node: enough pending pods for a
# cluster autoscaler to add a few full nodes, not enough to flood the API server.
MAX_INSTANCES_WITHOUT_NODES = 16


@dataclass(frozen=True)
class Demand:
    """What one model asks of the pool, and what it holds there now."""

    workload: str  # workload_key(namespace, name)
    tier: str
    tensor_parallel: int
    instances: int  # asked
    running: int = 0  # bound to a schedulable node of the pool
    pending: int = 0  # created, not bound yet
    tenant: str | None = None

    def __post_init__(self) -> None:
        if self.tensor_parallel < 1:
            raise ValueError(f"tensor_parallel must be at least 1, got {self.tensor_parallel}")
        if min(self.instances, self.running, self.pending) < 0:
            raise ValueError("instance counts cannot be negative")


@dataclass(frozen=True)
class TierShare:
    """A tier's part of the allocation, in accelerators."""

    name: str
    reserve: int
    demand: int  # what its models ask
    allocated: int  # what the allocation gives them
    limit: int | None  # reserve + borrowing limit (None: no limit)
    borrowed: int  # allocated beyond the reserve
    lent: int  # of its reserve, what other tiers hold
    reclaimed: tuple[tuple[str, int], ...] = ()  # (borrower tier, accelerators) taken back for it

    @property
    def unmet(self) -> int:
        return max(0, self.demand - self.allocated)


@dataclass(frozen=True)
class Allocation:
    """Every model's instance count on one pool, with the tiers' numbers behind it."""

    pool: str
    capacity: int  # accelerators the tiers can use: schedulable total minus pods outside gpupool
    counts: Mapping[str, int]  # workload -> instances
    tiers: tuple[TierShare, ...]
    # Running instances cut to give a tier its reserve back: workload -> (instances, for tier)
    reclaims: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    tenant_capped: frozenset[str] = frozenset()  # workloads whose tenant quota is used up
    bounded: bool = True  # False: no schedulable node, counts are bounded per model only
    demands: Mapping[str, Demand] = field(default_factory=dict)  # what it was computed from

    def count(self, workload: str) -> int:
        return self.counts.get(workload, 0)

    def share(self, tier: str) -> TierShare | None:
        return next((t for t in self.tiers if t.name == tier), None)

    @property
    def idle(self) -> int:
        return max(0, self.capacity - sum(t.allocated for t in self.tiers))


class _Fill:
    """The allocation while it is being built."""

    def __init__(
        self, state: PoolState, demands: list[Demand], tenant_limits: Mapping[str, int | None]
    ) -> None:
        self.state = state
        self.demands = {d.workload: d for d in demands}
        self.count = dict.fromkeys(self.demands, 0)
        self.capacity = max(0, state.total - state.unmanaged)
        self.reserve = {t.name: state.reserved(t) for t in state.tiers}
        self.limit = {t.name: _borrowing_ceiling(state, t) for t in state.tiers}
        self.tenant_limits = tenant_limits
        self.reclaims: dict[str, tuple[int, str]] = {}
        self.reclaimed: dict[str, dict[str, int]] = {}
        self.tenant_capped: set[str] = set()
        # Pods of workloads that ask nothing here (not reconciled yet, or gone) hold what they hold.
        self._used: dict[str, int] = {}
        self._tenant_used: dict[str, int] = {}
        self._held = 0
        for claim in state.claims:
            if claim.tier is None or claim.workload in self.demands:
                continue
            self._used[claim.tier] = self._used.get(claim.tier, 0) + claim.accelerators
            if claim.tenant is not None:
                self._tenant_used[claim.tenant] = self._tenant_used.get(claim.tenant, 0) + claim.accelerators
            self._held += claim.accelerators
        self._by_tier: dict[str, list[Demand]] = {}
        for demand in demands:
            self._by_tier.setdefault(demand.tier, []).append(demand)

    # Sums, kept up to date by `put`

    def put(self, workload: str, count: int) -> None:
        demand = self.demands[workload]
        delta = (count - self.count[workload]) * demand.tensor_parallel
        self.count[workload] = count
        self._used[demand.tier] = self._used.get(demand.tier, 0) + delta
        if demand.tenant is not None:
            self._tenant_used[demand.tenant] = self._tenant_used.get(demand.tenant, 0) + delta
        self._held += delta

    def saved(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], int]:
        return dict(self.count), dict(self._used), dict(self._tenant_used), self._held

    def restore(self, saved: tuple[dict[str, int], dict[str, int], dict[str, int], int]) -> None:
        self.count, self._used, self._tenant_used, self._held = saved

    def used(self, tier: str) -> int:
        return self._used.get(tier, 0)

    def tenant_used(self, tenant: str) -> int:
        return self._tenant_used.get(tenant, 0)

    @property
    def free(self) -> int:
        return self.capacity - self._held

    def held_back(self, tier: str) -> int:
        """Idle reserve of other tiers that do not lend it."""
        return sum(
            max(0, self.reserve[t.name] - self.used(t.name))
            for t in self.state.tiers
            if t.name != tier and not t.lendable
        )

    def quota_allows(self, demand: Demand) -> bool:
        if demand.tenant is None:
            return True
        limit = self.tenant_limits.get(demand.tenant)
        if limit is None or self.tenant_used(demand.tenant) + demand.tensor_parallel <= limit:
            return True
        self.tenant_capped.add(demand.workload)
        return False

    # Choosing

    def holding(self, demand: Demand) -> tuple[int, str]:
        return (self.count[demand.workload] * demand.tensor_parallel, demand.workload)

    def models(self, tier: str) -> list[Demand]:
        return self._by_tier.get(tier, [])

    def growing(self, tier: str, ceiling: int | None) -> _Growing:
        """The tier's models in the order they grow: fewest accelerators held first, within
        `ceiling`."""
        return _Growing(self, tier, ceiling)

    def borrowers(self, tier: str) -> list[Tier]:
        """Tiers holding more than their reserve that `tier` may take back from, lowest first."""
        others = [t for t in self.state.tiers if t.name != tier and self.used(t.name) > self.reserve[t.name]]
        return sorted(others, key=lambda t: (not t.preemptible, t.priority, t.name))

    def victim(self, tier: str) -> tuple[Tier, Demand] | None:
        """The instance `tier` takes back next: of the lowest borrower, its model holding the most.
        Only what a borrower holds beyond its own reserve is taken while that is enough; an instance
        larger than what it borrowed (which would leave it under its reserve) is taken last."""
        borrowers = self.borrowers(tier)
        for within in (True, False):
            for borrower in borrowers:
                spare = self.used(borrower.name) - self.reserve[borrower.name]
                held = [
                    d
                    for d in self.models(borrower.name)
                    if self.count[d.workload] > 0 and (not within or d.tensor_parallel <= spare)
                ]
                if held:
                    return borrower, max(
                        held, key=lambda d: (self.count[d.workload] * d.tensor_parallel, d.workload)
                    )
        return None

    def reclaimable(self, tier: str) -> int:
        """Accelerators `tier` could take back from borrowers, whole instances only."""
        saved = self.saved()
        freed = 0
        while (found := self.victim(tier)) is not None:
            self.put(found[1].workload, self.count[found[1].workload] - 1)
            freed += found[1].tensor_parallel
        self.restore(saved)
        return freed

    def take_back(self, tier: str) -> None:
        found = self.victim(tier)
        assert found is not None  # reclaimable() said there was enough
        borrower, demand = found
        self.put(demand.workload, self.count[demand.workload] - 1)
        cut, _ = self.reclaims.get(demand.workload, (0, tier))
        self.reclaims[demand.workload] = (cut + 1, tier)
        by = self.reclaimed.setdefault(tier, {})
        by[borrower.name] = by.get(borrower.name, 0) + demand.tensor_parallel

    # Phases

    def keep(self) -> None:
        order = sorted(self.demands.values(), key=lambda d: (-self._priority(d.tier), d.workload))
        for demand in order:
            self.put(demand.workload, min(demand.instances, demand.running))
        for tenant, limit in self.tenant_limits.items():
            while limit is not None and self.tenant_used(tenant) > limit:
                over = max(
                    (d for d in self.demands.values() if d.tenant == tenant and self.count[d.workload]),
                    key=lambda d: (-self._priority(d.tier), self.count[d.workload], d.workload),
                )
                self.put(over.workload, self.count[over.workload] - 1)
                self.tenant_capped.add(over.workload)
        for demand in order:
            room = min(demand.instances, demand.running + demand.pending) - self.count[demand.workload]
            while room > 0 and self.free >= demand.tensor_parallel and self.quota_allows(demand):
                self.put(demand.workload, self.count[demand.workload] + 1)
                room -= 1

    def floors(self) -> None:
        """Reserves, highest tier first, until no tier moves: a borrower cut under its own reserve
        (its instances are larger than what it borrowed) takes its floor back in the same pass, so
        the next pass over this result finds nothing to do."""
        for _ in range(len(self.state.tiers) + 1):
            before = dict(self.count)
            self._floors_once()
            if self.count == before:
                return

    def _floors_once(self) -> None:
        for tier in self._by_priority():
            # A model passed over (its tenant's quota, no room to take back) is not offered again.
            growing = self.growing(tier.name, self.reserve[tier.name])
            while (demand := growing.next()) is not None:
                size = demand.tensor_parallel
                if not self.quota_allows(demand):
                    continue
                if self.free < size:
                    if not tier.reclaim or self.free + self.reclaimable(tier.name) < size:
                        continue
                    while self.free < size:
                        self.take_back(tier.name)
                self.put(demand.workload, self.count[demand.workload] + 1)
                growing.again(demand)

    def lend(self) -> None:
        for tier in self._by_priority():
            growing = self.growing(tier.name, self.limit[tier.name])
            while (demand := growing.next()) is not None:
                # The quota first: when both stop the model, its tenant's quota is what it can act on.
                if (
                    not self.quota_allows(demand)
                    or self.free - self.held_back(tier.name) < demand.tensor_parallel
                ):
                    continue
                self.put(demand.workload, self.count[demand.workload] + 1)
                growing.again(demand)

    def _by_priority(self) -> list[Tier]:
        return sorted(self.state.tiers, key=lambda t: (-t.priority, t.name))

    def _priority(self, tier: str) -> int:
        found = self.state.tier(tier)
        return found.priority if found is not None else -1

    # Result

    def shares(self) -> tuple[TierShare, ...]:
        used = {t.name: self.used(t.name) for t in self.state.tiers}
        borrowed = {n: max(0, u - self.reserve[n]) for n, u in used.items()}
        # What is borrowed comes from the unreserved rest first, then from idle reserves, the
        # lowest-priority lender first.
        owed = max(0, sum(borrowed.values()) - max(0, self.capacity - sum(self.reserve.values())))
        lent: dict[str, int] = {}
        for tier in sorted(self.state.tiers, key=lambda t: (t.priority, t.name)):
            idle = max(0, self.reserve[tier.name] - used[tier.name])
            lent[tier.name] = min(idle, owed)
            owed -= lent[tier.name]
        return tuple(
            TierShare(
                name=t.name,
                reserve=self.reserve[t.name],
                demand=sum(d.instances * d.tensor_parallel for d in self.models(t.name)),
                allocated=used[t.name],
                limit=self.limit[t.name],
                borrowed=borrowed[t.name],
                lent=lent[t.name],
                reclaimed=tuple(sorted(self.reclaimed.get(t.name, {}).items())),
            )
            for t in self.state.tiers
        )


class _Growing:
    """One tier's models that may grow, fewest accelerators held first (then by name), as a heap:
    a pool of many models fills in time proportional to the instances it grants, not to that
    times the models. `next` takes the model out; `again` puts it back after it grew. While a tier
    grows only its own counts rise (a reclaim cuts other tiers), so a model that no longer fits
    under the ceiling never fits again in this round and is dropped."""

    def __init__(self, fill: _Fill, tier: str, ceiling: int | None) -> None:
        self._fill = fill
        self._tier = tier
        self._ceiling = ceiling
        self._heap: list[tuple[int, str, Demand]] = []
        for demand in fill.models(tier):
            self.again(demand)

    def again(self, demand: Demand) -> None:
        if self._fill.count[demand.workload] < demand.instances:
            heapq.heappush(self._heap, (*self._fill.holding(demand), demand))

    def next(self) -> Demand | None:
        used = self._fill.used(self._tier)
        while self._heap:
            _, _, demand = heapq.heappop(self._heap)
            if self._ceiling is None or used + demand.tensor_parallel <= self._ceiling:
                return demand
        return None


def _borrowing_ceiling(state: PoolState, tier: Tier) -> int | None:
    if tier.borrowing_limit_percent is None:
        return None
    return state.reserved(tier) + state.total * tier.borrowing_limit_percent // 100


def tenant_limits(state: PoolState) -> dict[str, int | None]:
    return {t.name: t.max_accelerators_of(state.accelerator_memory_bytes) for t in state.tenants}


def held_instances(claims: Iterable[Claim], accelerators_per_instance: int) -> tuple[int, int]:
    """(running, pending) instances of a model's pods: whole instances' worth of bound
    accelerators run; the rest is pending. An instance over several nodes (a LeaderWorkerSet
    group, one pod per node) runs only when all its pods are bound, so a half-bound group, being
    placed or taken apart, is never kept as a running instance."""
    bound = waiting = 0
    for claim in claims:
        if claim.pending:
            waiting += claim.accelerators
        else:
            bound += claim.accelerators
    running = bound // accelerators_per_instance
    rest = bound - running * accelerators_per_instance + waiting
    return running, -(-rest // accelerators_per_instance)


def demand_of(state: PoolState, request: InstanceRequest, tenant: str | None = None) -> Demand:
    """A model's demand on the pool `state` describes: its bound pods are running instances, its
    unbound ones pending (pods on a node that left the pool are neither)."""
    claims = state.claims_by_workload.get(request.workload, ())
    running, pending = held_instances(claims, request.tensor_parallel)
    return Demand(
        workload=request.workload,
        tier=request.tier,
        tensor_parallel=request.tensor_parallel,
        instances=request.instances,
        running=running,
        pending=pending,
        tenant=tenant,
    )


def allocate(state: PoolState, demands: Iterable[Demand]) -> Allocation:
    """Every model's instance count on the pool `state` describes (see the module's docstring)."""
    known = {t.name for t in state.tiers}
    usable = sorted((d for d in demands if d.tier in known), key=lambda d: d.workload)
    limits = tenant_limits(state)
    if not state.nodes or state.total == 0:
        # No schedulable node: nothing to share, only the tenant's quota and a fixed bound apply.
        counts: dict[str, int] = {}
        used: dict[str, int] = {}
        capped = set()
        for demand in usable:
            count = min(demand.instances, MAX_INSTANCES_WITHOUT_NODES)
            limit = limits.get(demand.tenant) if demand.tenant is not None else None
            if limit is not None:
                room = max(0, limit - used.get(demand.tenant or "", 0)) // demand.tensor_parallel
                if room < count:
                    capped.add(demand.workload)
                count = min(count, room)
                used[demand.tenant or ""] = used.get(demand.tenant or "", 0) + count * demand.tensor_parallel
            counts[demand.workload] = count
        return Allocation(
            pool=state.pool,
            capacity=0,
            counts=counts,
            tiers=(),
            tenant_capped=frozenset(capped),
            bounded=False,
            demands={d.workload: d for d in usable},
        )
    fill = _Fill(state, usable, limits)
    fill.keep()
    fill.floors()
    fill.lend()
    return Allocation(
        pool=state.pool,
        capacity=fill.capacity,
        counts=dict(fill.count),
        tiers=fill.shares(),
        reclaims=dict(fill.reclaims),
        tenant_capped=frozenset(w for w in fill.tenant_capped if fill.count[w] < fill.demands[w].instances),
        demands=fill.demands,
    )


def recount(
    state: PoolState, allocation: Allocation | None, workloads: Iterable[str] | None = None
) -> Allocation | None:
    """The allocation over the same demands (of `workloads` only, when given: models that are gone
    ask for nothing), with what each model holds counted from `state`."""
    if allocation is None:
        return None
    asking = None if workloads is None else set(workloads)
    demands = []
    for demand in allocation.demands.values():
        if asking is not None and demand.workload not in asking:
            continue
        claims = state.claims_by_workload.get(demand.workload, ())
        running, pending = held_instances(claims, demand.tensor_parallel)
        demands.append(replace(demand, running=running, pending=pending))
    return allocate(state, demands)


def reallocate(state: PoolState, allocation: Allocation | None, demand: Demand) -> Allocation:
    """The allocation with `demand` in place of the model's earlier one: the same object when
    nothing changed, so a pool's allocation is computed once per recount and read by every model."""
    if allocation is not None and allocation.demands.get(demand.workload) == demand:
        return allocation
    if allocation is not None and _changes_nothing(state, allocation, demand):
        # A model new to the pool that asks for nothing and holds nothing there (scaled to zero)
        # moves no other count: no allocation over every demand again, which costs as much as the
        # pool has models.
        return replace(
            allocation,
            counts={**allocation.counts, demand.workload: 0},
            demands={**allocation.demands, demand.workload: demand},
        )
    others = [d for w, d in (allocation.demands.items() if allocation else ()) if w != demand.workload]
    return allocate(state, [*others, demand])


def _changes_nothing(state: PoolState, allocation: Allocation, demand: Demand) -> bool:
    """Whether adding `demand` leaves every other count and every tier's numbers as they are: it is
    new, of a known tier, asks for no instance and the pool holds no pod of it (a workload's pods
    count as used while it asks nothing, and stop counting once it does)."""
    return (
        demand.workload not in allocation.demands
        and demand.instances == 0
        and state.tier(demand.tier) is not None
        and not state.claims_by_workload.get(demand.workload)
    )
