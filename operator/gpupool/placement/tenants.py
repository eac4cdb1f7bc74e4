"""Tenant quotas: at most how many instances a tenant's limits leave a model on one pool.

A tenant's limit on a pool, in whole accelerators, is the smaller of maxAccelerators and
floor(maxAcceleratorMemory / memory of the pool's accelerator). Its use is what the pods of its
namespaces request on the pool, bound and pending. A model may hold what its own pods hold plus
whatever room the rest of the tenant leaves. A namespace that belongs to no tenant is not limited
by tenant quotas (tiers still apply).
"""

from __future__ import annotations

from gpupool.api.tenancy import LimitKind, Tenant, format_quantity_bytes, tenant_for_namespace
from gpupool.placement.accounting import PoolState
from gpupool.placement.request import Cap, InstanceRequest, instances_of, plural, who


def tenant_of(
    state: PoolState, namespace: str, namespace_labels: dict[str, str] | None = None
) -> Tenant | None:
    """The tenant of the pool that `namespace` belongs to, if any."""
    return tenant_for_namespace(state.tenants, namespace, namespace_labels)


def tenant_cap(
    state: PoolState, request: InstanceRequest, namespace_labels: dict[str, str] | None = None
) -> Cap:
    """At most how many of the requested instances the tenant's quota allows, and why."""
    tenant = tenant_of(state, request.namespace, namespace_labels)
    if tenant is None:
        return Cap(
            kind=LimitKind.TENANT,
            pool=state.pool,
            asked=request.instances,
            allowed=request.instances,
            room=request.accelerators,
            message=f"namespace {request.namespace} belongs to no tenant of pool {state.pool}",
        )
    limit = tenant.max_accelerators_of(state.accelerator_memory_bytes)
    assert limit is not None  # a tenant has at least one of the two limits
    claims = [c for c in state.claims_by_tenant.get(tenant.name, ()) if c.workload != request.workload]
    used = sum(c.accelerators for c in claims)
    room = max(0, limit - used)
    allowed = min(request.instances, room // request.tensor_parallel)
    memory = state.accelerator_memory_bytes
    sources = []
    if tenant.max_accelerators is not None:
        sources.append(f"maxAccelerators {tenant.max_accelerators}")
    if tenant.max_accelerator_memory is not None:
        sources.append(
            f"maxAcceleratorMemory {tenant.max_accelerator_memory} = "
            f"{(tenant.max_accelerator_memory_bytes or 0) // memory} accelerators of "
            f"{format_quantity_bytes(memory)}"
        )
    message = (
        f"tenant {tenant.name} may hold {plural(limit, 'accelerator')} of pool {state.pool} "
        f"({'; '.join(sources)}); its other workloads hold {used}"
        + (f" ({who(state.users(claims))})" if claims else "")
        + f", leaving {room}: {allowed} of the {instances_of(request.instances, request.tensor_parallel)} "
        "asked fit"
    )
    return Cap(
        kind=LimitKind.TENANT,
        pool=state.pool,
        asked=request.instances,
        allowed=allowed,
        room=room,
        message=message,
    )
