"""ResourceQuota objects that back tenant quotas in each tenant namespace.

gpupool caps a tenant's models itself (and says why in status); a ResourceQuota makes the same
limit hold for pods gpupool does not create, such as a plain Deployment asking for GPUs. Rules:

- Kubernetes quotas extended resources by request only: the key is `requests.<resource name>`,
  e.g. `requests.nvidia.com/gpu` or `requests.huawei.com/Ascend910` (limits.* keys are refused,
  since extended resources cannot be overcommitted).
- The limit of a tenant on a pool, in whole accelerators, is the smaller of maxAccelerators and
  floor(maxAcceleratorMemory / memory of the pool's accelerator); ResourceQuota knows nothing of
  accelerator memory, so the memory limit reaches it converted.
- A ResourceQuota counts a namespace's whole use of a resource, whatever pool the pods land on, and
  cannot total several namespaces. So each namespace of a tenant gets the tenant's whole limit (a
  backstop; gpupool enforces the total across the tenant's namespaces), and when a namespace is a
  tenant of several pools with the same resource (two NVIDIA pools), it gets one quota per
  resource holding the sum of those pools' limits, owned by every one of them. (A PriorityClass
  scope could tell pools apart, but the Kubernetes documentation lists extended resources among
  those a PriorityClass-scoped quota does not track.)
- Each quota is named `gpupool-<resource>`, labelled like every gpupool object, and owned by its
  (cluster-scoped) pools, so the garbage collector removes it with the last of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gpupool.api.tenancy import Tenant, tenant_for_namespace
from gpupool.api.v1alpha1 import API_VERSION, InferencePool
from gpupool.catalog.accelerators import get_accelerator
from gpupool.render import labels as lbl
from gpupool.render.workload import owner_references

TENANT_LABEL: Final = "gpupool.io/tenant"
QUOTA_COMPONENT: Final = "tenant-quota"
# Which pools and tenants a quota's limit adds up, e.g. "a100/team-a=4,h100/team-a=8".
SOURCES_ANNOTATION: Final = "gpupool.io/quota-sources"


def quota_key(resource: str) -> str:
    """The ResourceQuota key for an extended resource: `requests.` and the resource name."""
    return f"requests.{resource}"


def quota_name(resource: str) -> str:
    """`gpupool-nvidia-com-gpu` for nvidia.com/gpu: one quota per resource and namespace."""
    return lbl.object_name(f"gpupool-{resource.lower().replace('.', '-').replace('/', '-')}")


@dataclass(frozen=True)
class QuotaGrant:
    """A tenant's limit on one pool, in one of its namespaces."""

    pool: str
    pool_uid: str | None
    resource: str
    tenant: str
    namespace: str
    accelerators: int


def tenant_namespaces(
    tenants: Sequence[Tenant], tenant: Tenant, namespace_labels: Mapping[str, Mapping[str, str]] | None
) -> list[str]:
    """The namespaces `tenant` owns among the pool's tenants.

    Without `namespace_labels` (namespace name to labels): the namespaces it lists. With it: the
    listed ones that exist, and every existing namespace its selector picks that no earlier tenant
    owns.
    """
    if namespace_labels is None:
        return sorted(tenant.namespaces)
    owned = []
    for namespace, labels in namespace_labels.items():
        owner = tenant_for_namespace(tuple(tenants), namespace, dict(labels))
        if owner is not None and owner.name == tenant.name:
            owned.append(namespace)
    return sorted(owned)


def tenant_quota_grants(
    pool: InferencePool,
    tenants: Sequence[Tenant],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[QuotaGrant]:
    """One grant per tenant namespace: the tenant's limit on this pool, in whole accelerators."""
    accelerator = get_accelerator(pool.spec.accelerator)
    name = str(pool.metadata["name"])
    uid = pool.metadata.get("uid")
    grants = []
    for tenant in tenants:
        limit = tenant.max_accelerators_of(accelerator.memory_bytes)
        if limit is None:
            continue
        for namespace in tenant_namespaces(tenants, tenant, namespace_labels):
            grants.append(
                QuotaGrant(
                    pool=name,
                    pool_uid=str(uid) if uid else None,
                    resource=pool.spec.resource_name(),
                    tenant=tenant.name,
                    namespace=namespace,
                    accelerators=limit,
                )
            )
    return grants


def _owners(grants: Sequence[QuotaGrant]) -> list[dict[str, Any]]:
    pools = sorted({(g.pool, g.pool_uid) for g in grants if g.pool_uid})
    refs = [
        owner_references(API_VERSION, "InferencePool", {"name": pool, "uid": uid})[0] for pool, uid in pools
    ]
    if len(refs) > 1:
        # At most one owner may be the controller; a quota shared by pools has none.
        refs = [{**ref, "controller": False} for ref in refs]
    return refs


def render_resource_quotas(grants: Iterable[QuotaGrant]) -> list[dict[str, Any]]:
    """One ResourceQuota per (namespace, resource), limiting the sum of its grants."""
    grouped: dict[tuple[str, str], list[QuotaGrant]] = {}
    for grant in grants:
        grouped.setdefault((grant.namespace, grant.resource), []).append(grant)
    quotas = []
    for (namespace, resource), group in sorted(grouped.items()):
        group = sorted(group, key=lambda g: (g.pool, g.tenant))
        pools = sorted({g.pool for g in group})
        tenants = sorted({g.tenant for g in group})
        labels = {
            lbl.COMPONENT_LABEL: QUOTA_COMPONENT,
            lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY,
            lbl.PART_OF_LABEL: lbl.MANAGED_BY,
        }
        if len(pools) == 1:
            labels[lbl.POOL_LABEL] = lbl.label_value(pools[0])
        if len(tenants) == 1:
            labels[TENANT_LABEL] = lbl.label_value(tenants[0])
        owners = _owners(group)
        quotas.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {
                    "name": quota_name(resource),
                    "namespace": namespace,
                    "labels": dict(sorted(labels.items())),
                    "annotations": {
                        SOURCES_ANNOTATION: ",".join(f"{g.pool}/{g.tenant}={g.accelerators}" for g in group)
                    },
                    **({"ownerReferences": owners} if owners else {}),
                },
                "spec": {"hard": {quota_key(resource): str(sum(g.accelerators for g in group))}},
            }
        )
    return quotas


def render_tenant_quotas(
    pool: InferencePool,
    tenants: Sequence[Tenant],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """The ResourceQuotas of one pool's tenants, for a pool that shares no namespace's resource."""
    return render_resource_quotas(tenant_quota_grants(pool, tenants, namespace_labels))
