"""API types for sharing pools: tenants and their quotas, pool preferences, and what status reports.

Spec types:
- `Tenant`, an entry of `InferencePool.spec.tenants`: a set of namespaces (listed, or chosen by
  labels) with a maximum number of the pool's accelerators and of accelerator memory.
- `PoolPreference`, an entry of `ModelDeployment.spec.pools`: a pool the model may run on, how much
  it is preferred, and at most how many instances it may take there.

Status types: per-node capacity, fragmentation (how many instances of each tensor-parallel size
still fit), per-tenant use, and a model's placement across pools with the limits that capped it.

Accelerator memory is written as a Kubernetes quantity string ("640Gi", "512G"), the way memory
is written everywhere else in Kubernetes (pod resources, ResourceQuota); an integer field of bytes
would read as 687194767360. The field is a plain string with a pattern rather than
int-or-string, so the generated schema stays structural with one type; a bare byte count is
quoted ("687194767360"). Status reports memory in bytes, for machines.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from gpupool.api.base import ApiModel
from gpupool.api.schema import atomic_list, cel, with_rules

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# A Kubernetes quantity without the milli suffix (bytes are whole): digits with an optional
# fraction, then a binary (Ki..Ei) or decimal (k, M..E) suffix, or a decimal exponent.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][0-9]+)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIXES: dict[str, int] = {
    "": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}

NamespaceName = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]

MAX_TENANTS = 64
MAX_NAMESPACES_PER_TENANT = 64
MAX_POOLS_PER_MODEL = 8


def parse_quantity_bytes(value: str) -> int:
    """Bytes in a Kubernetes quantity: "640Gi" is 687194767360, "1.5G" 1500000000, "8e9" 8000000000.

    Fractions of a byte round up, as the API server rounds quantities it cannot represent.
    Raises ValueError for anything else (including the milli suffix "m", meaningless for bytes).
    """
    text = value.strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity of bytes, e.g. 640Gi or 512G")
    suffix = match.group(2) or ""
    number = text[: len(text) - len(suffix)]
    try:
        amount = Decimal(number)
    except InvalidOperation as err:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{value!r} is not a number") from err
    # A binary or decimal suffix, else a decimal exponent such as e9 ("Ei" and "E" are suffixes).
    factor = Decimal(_SUFFIXES[suffix]) if suffix in _SUFFIXES else Decimal(10) ** int(suffix[1:])
    scaled = amount * factor
    whole = int(scaled.to_integral_value(rounding="ROUND_CEILING"))
    return whole


def format_quantity_bytes(size: int) -> str:
    """The shortest exact binary quantity for `size` bytes: 687194767360 is "640Gi"."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _SUFFIXES[suffix]
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


# --------------------------------------------------------------------------------------------------
# Label selectors (the metav1.LabelSelector shape, so a namespaceSelector reads as everywhere else)


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class SelectorRequirement(ApiModel):
    model_config = with_rules(
        cel(
            "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
            "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
            field_path=".values",
        ),
    )

    key: str = Field(description="Label key the requirement applies to.", min_length=1, max_length=317)
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Label values, for In and NotIn.",
        json_schema_extra=atomic_list(),
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values != bool(self.values):
            raise ValueError(
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"
            )
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator is SelectorOperator.EXISTS:
            return present
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return not present
        inside = present and labels[self.key] in self.values
        return inside if self.operator is SelectorOperator.IN else not inside


class LabelSelector(ApiModel):
    model_config = with_rules(
        cel(
            "(has(self.matchLabels) && size(self.matchLabels) > 0) "
            "|| (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
            "a namespaceSelector needs matchLabels or matchExpressions; an empty one would select "
            "every namespace",
        ),
    )

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels a namespace must carry, all of them."
    )
    match_expressions: list[SelectorRequirement] = Field(
        default_factory=list,
        max_length=16,
        description="Requirements a namespace's labels must meet, all of them.",
        json_schema_extra=atomic_list(),
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.match_labels and not self.match_expressions:
            raise ValueError("a namespaceSelector needs matchLabels or matchExpressions")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )


# --------------------------------------------------------------------------------------------------
# Tenants (InferencePool.spec.tenants)


class Tenant(ApiModel):
    """A team's share of one pool: its namespaces and the most of the pool they may hold together."""

    model_config = with_rules(
        cel(
            "(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",
            "a tenant needs namespaces or a namespaceSelector",
        ),
        cel(
            "has(self.maxAccelerators) || has(self.maxAcceleratorMemory)",
            "a tenant needs maxAccelerators or maxAcceleratorMemory (or both)",
        ),
    )

    name: str = Field(
        description="Tenant name, shown in status and in refusals.",
        pattern=DNS_LABEL,
        max_length=63,
    )
    namespaces: list[NamespaceName] = Field(
        default_factory=list,
        max_length=MAX_NAMESPACES_PER_TENANT,
        description="Namespaces of the tenant. A namespace listed here belongs to this tenant even "
        "when another tenant's namespaceSelector also selects it.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Labels that make a namespace part of the tenant (metav1.LabelSelector shape).",
    )
    max_accelerators: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Most accelerators of this pool the tenant's pods may request together, "
        "running and pending.",
    )
    max_accelerator_memory: str | None = Field(
        default=None,
        pattern=QUANTITY_PATTERN,
        max_length=32,
        description="Most accelerator memory of this pool the tenant may hold, as a Kubernetes "
        "quantity (e.g. 640Gi); whole accelerators count, each with the memory of the pool's "
        "accelerator model.",
    )

    @field_validator("namespaces")
    @classmethod
    def _distinct_namespaces(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("namespaces must be distinct")
        return value

    @field_validator("max_accelerator_memory")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quantity_bytes(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.namespaces and self.namespace_selector is None:
            raise ValueError(f"tenant {self.name}: give namespaces or a namespaceSelector")
        if self.max_accelerators is None and self.max_accelerator_memory is None:
            raise ValueError(f"tenant {self.name}: give maxAccelerators or maxAcceleratorMemory")
        return self

    @property
    def max_accelerator_memory_bytes(self) -> int | None:
        if self.max_accelerator_memory is None:
            return None
        return parse_quantity_bytes(self.max_accelerator_memory)

    def max_accelerators_of(self, accelerator_memory_bytes: int) -> int | None:
        """The tenant's limit in whole accelerators of `accelerator_memory_bytes` each, or None.

        The smaller of maxAccelerators and floor(maxAcceleratorMemory / memory per accelerator):
        an accelerator is allocated whole, so a share of one is no use.
        """
        limits = []
        if self.max_accelerators is not None:
            limits.append(self.max_accelerators)
        memory = self.max_accelerator_memory_bytes
        if memory is not None:
            if accelerator_memory_bytes <= 0:
                raise ValueError("accelerator memory must be positive")
            limits.append(memory // accelerator_memory_bytes)
        return min(limits) if limits else None

    def selects(self, namespace: str, labels: dict[str, str] | None) -> bool:
        """Whether `namespace` (carrying `labels`; None when unknown) is one of the tenant's."""
        if namespace in self.namespaces:
            return True
        if self.namespace_selector is None or labels is None:
            return False
        return self.namespace_selector.matches(labels)


def validate_tenants(tenants: list[Tenant]) -> list[Tenant]:
    """Distinct names, and no namespace listed by two tenants.

    A CEL rule for the second check would compare every namespace of every pair of tenants; its
    estimated cost exceeds what the API server allows for lists of this size, so the check runs in
    the operator (and in any Python that parses the pool). Two selectors may still pick the same
    namespace: the first tenant in list order that selects a namespace owns it, and
    `tenant_for_namespace` applies that rule.
    """
    names = [t.name for t in tenants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"tenant names must be distinct: {', '.join(duplicates)}")
    owner: dict[str, str] = {}
    for tenant in tenants:
        for namespace in tenant.namespaces:
            if namespace in owner:
                raise ValueError(
                    f"namespace {namespace} is listed by tenants {owner[namespace]} and {tenant.name}; "
                    "a namespace belongs to one tenant of a pool"
                )
            owner[namespace] = tenant.name
    return tenants


def tenant_for_namespace(
    tenants: list[Tenant] | tuple[Tenant, ...], namespace: str, labels: dict[str, str] | None = None
) -> Tenant | None:
    """The tenant `namespace` belongs to: one that lists it, else the first whose selector picks it."""
    listed = next((t for t in tenants if namespace in t.namespaces), None)
    if listed is not None:
        return listed
    return next((t for t in tenants if t.selects(namespace, labels)), None)


# --------------------------------------------------------------------------------------------------
# Pool preferences (ModelDeployment.spec.pools)


class PoolPreference(ApiModel):
    """A pool a model may run on."""

    name: str = Field(description="InferencePool name.", pattern=DNS_SUBDOMAIN, max_length=253)
    priority: int = Field(
        default=0,
        ge=-100,
        le=100,
        description="Pools of higher priority are filled first; among pools of equal priority the "
        "cheapest per request served comes first.",
    )
    max_instances: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="Most instances of the model on this pool; unset is no limit beyond the "
        "pool's tiers and quotas.",
    )


# For ModelDeploymentSpec: `pool` becomes optional and exactly one of the two is set.
POOL_OR_POOLS_RULE = cel(
    "has(self.pool) != (has(self.pools) && size(self.pools) > 0)",
    "set exactly one of pool (one pool) and pools (several, in order of preference)",
    field_path=".pools",
)

# --------------------------------------------------------------------------------------------------
# Status


class NodeAccelerators(ApiModel):
    name: str = Field(description="Node name.")
    allocatable: int = Field(ge=0, description="Accelerators the node's device plugin advertises.")
    requested: int = Field(ge=0, description="Accelerators requested by pods bound to the node.")
    free: int = Field(ge=0, description="allocatable - requested, never below zero.")


class TensorParallelFit(ApiModel):
    tensor_parallel: int = Field(ge=1, description="Tensor-parallel size of an instance.")
    instances: int = Field(
        ge=0,
        description="Instances of this size that still fit on free accelerators; an instance needs "
        "all of its accelerators on one node.",
    )
    stranded_accelerators: int = Field(
        ge=0, description="Free accelerators that no instance of this size can use."
    )


class TenantUsage(ApiModel):
    name: str = Field(description="Tenant name.")
    namespaces: list[NamespaceName] = Field(
        default_factory=list,
        description="Namespaces of the tenant that hold pods on the pool.",
        json_schema_extra=atomic_list(),
    )
    accelerators: int = Field(ge=0, description="Accelerators requested by the tenant's bound pods.")
    pending: int = Field(ge=0, description="Accelerators requested by the tenant's pending pods.")
    accelerator_memory_bytes: int = Field(
        ge=0, description="Memory of the accelerators held and pending, in bytes."
    )
    limit: int | None = Field(
        default=None, ge=0, description="The tenant's limit in whole accelerators of this pool."
    )
    cost_per_hour: float | None = Field(
        default=None, ge=0, description="Price of the accelerators its bound pods hold, per hour."
    )


class LimitKind(StrEnum):
    TIER = "Tier"
    TENANT = "Tenant"
    POOL = "Pool"
    PREFERENCE = "Preference"


class PlacementLimit(ApiModel):
    pool: str = Field(description="Pool whose limit applies.")
    kind: LimitKind = Field(description="Tier, Tenant, Pool (capacity) or Preference (maxInstances).")
    asked: int = Field(ge=0, description="Instances asked of the pool.")
    allowed: int = Field(ge=0, description="Instances the limit allows.")
    message: str = Field(description="The numbers behind the limit: asked, allowed, used by whom.")


class PoolPlacement(ApiModel):
    pool: str = Field(description="Pool name.")
    workload: str | None = Field(default=None, description="Deployment running the pool's instances.")
    ready: int = Field(default=0, ge=0, description="Instances on this pool ready to serve.")
    accelerator: str = Field(description="Accelerator of the pool.")
    tensor_parallel: int = Field(ge=1, description="Tensor-parallel size of an instance on this pool.")
    instances: int = Field(ge=0, description="Instances placed on this pool.")
    qps: float = Field(ge=0, description="Requests per second those instances serve.")
    cost_per_hour: float | None = Field(default=None, ge=0, description="Accelerator cost per hour.")
