"""Placement: sharing a pool's accelerators fairly, and a model's instances across pools.

Pure: Node and Pod dicts, API types and plans in; capacity, caps with their explanations, and
placements out. No Kubernetes client, no kopf, no IO. See docs/placement.md for the rules.
"""

from gpupool.placement.accounting import (
    Claim,
    NodeAccount,
    PoolState,
    TenantAccount,
    TierAccount,
    account_pool,
    accounted_node,
    accounted_pod,
    fragmentation,
    pod_accelerators,
    workload_key,
)
from gpupool.placement.allocation import (
    MAX_INSTANCES_WITHOUT_NODES,
    Allocation,
    Demand,
    TierShare,
    allocate,
    demand_of,
    reallocate,
    recount,
)
from gpupool.placement.caps import (
    InstanceCaps,
    allocated_caps,
    capacity_cap,
    instance_caps,
    reachable_by_node,
    running_instances,
)
from gpupool.placement.packing import (
    Instance,
    Packing,
    SearchTooLarge,
    fits_all,
    max_placeable_accelerators,
    pack_best_fit,
    pack_first_fit,
    pack_most_allocated,
    pack_optimal,
    pack_spread,
)
from gpupool.placement.pools import (
    CrossPoolPlacement,
    PoolOption,
    PoolShare,
    latency_floor_ms,
    place_across_pools,
)
from gpupool.placement.request import Cap, InstanceRequest, PlacementReason
from gpupool.placement.tenants import tenant_cap, tenant_of
from gpupool.placement.tiers import TierRoom, tier_cap, tier_room

__all__ = [
    "MAX_INSTANCES_WITHOUT_NODES",
    "Allocation",
    "Cap",
    "Claim",
    "CrossPoolPlacement",
    "Demand",
    "Instance",
    "InstanceCaps",
    "InstanceRequest",
    "NodeAccount",
    "Packing",
    "PlacementReason",
    "PoolOption",
    "PoolShare",
    "PoolState",
    "SearchTooLarge",
    "TenantAccount",
    "TierAccount",
    "TierRoom",
    "TierShare",
    "account_pool",
    "accounted_node",
    "accounted_pod",
    "allocate",
    "allocated_caps",
    "capacity_cap",
    "demand_of",
    "fits_all",
    "fragmentation",
    "instance_caps",
    "latency_floor_ms",
    "max_placeable_accelerators",
    "pack_best_fit",
    "pack_first_fit",
    "pack_most_allocated",
    "pack_optimal",
    "pack_spread",
    "place_across_pools",
    "pod_accelerators",
    "reachable_by_node",
    "reallocate",
    "recount",
    "running_instances",
    "tenant_cap",
    "tenant_of",
    "tier_cap",
    "tier_room",
    "workload_key",
]
