"""The gpupool.io/v1alpha1 API: InferencePool and ModelDeployment.

These pydantic models are the single source of truth: `gpupool crds` (and `make crds`) generates the
CustomResourceDefinitions in `crds/` from them, CEL rules included, and the operator parses every
object it reads through them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from gpupool.api.base import ApiModel
from gpupool.api.conditions import Condition
from gpupool.api.names import (
    CONFIG_KEY,
    EXTENDED_RESOURCE,
    IMAGE,
    LABEL_VALUE,
    MAX_CONFIG_KEY_LENGTH,
    MAX_EXTENDED_RESOURCE_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_QUALIFIED_NAME_LENGTH,
    MAX_SELECTOR_LABELS,
    QUALIFIED_NAME,
    LabelValue,
    check_label_keys,
    extended_resource_problem,
    extended_resource_schema,
    label_map_schema,
    qualified_name_problem,
)
from gpupool.api.rollout import RolloutSpec, RolloutStatus
from gpupool.api.schema import atomic_list, cel, list_map, with_rules
from gpupool.api.tenancy import (
    MAX_POOLS_PER_MODEL,
    MAX_TENANTS,
    POOL_OR_POOLS_RULE,
    NodeAccelerators,
    PlacementLimit,
    PoolPlacement,
    PoolPreference,
    Tenant,
    TenantUsage,
    TensorParallelFit,
    validate_tenants,
)
from gpupool.api.traffic import AccessSpec, DisruptionSpec, RoutingSpec
from gpupool.api.weights import AccessMode, WeightLoading, WeightsCache, WeightsStatus
from gpupool.catalog.accelerators import ACCELERATORS
from gpupool.catalog.types import Architecture, KVCacheDtype, Precision, Vendor
from gpupool.scaling import AutoscalingPolicy, Direction, ScalerState, SignalValues
from gpupool.sizing import Plan
from gpupool.sizing.request import DEFAULT_CONCURRENCY, DEFAULT_INTER_NODE_GBPS

GROUP = "gpupool.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes names: DNS-1123 labels and subdomains.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DEFAULT_MAX_MODEL_LEN = 8192

# Bounds that keep every figure the operator derives from a spec a finite, representable number
# (1e308 QPS once overflowed the instance count): far above any real deployment, far below where
# float or int64 arithmetic breaks.
MAX_QPS = 1_000_000.0
MAX_INSTANCES = 10_000
MAX_PRICE_PER_HOUR = 1_000_000.0
MAX_LATENCY_SLO_MS = 3_600_000
# A pool's name is part of its tiers' PriorityClass names, gpupool-<pool>-<tier>, which must stay
# within the 253 characters of a DNS subdomain (tier names have 16 characters at most).
MAX_POOL_NAME_LENGTH = 253 - len("gpupool-") - 1 - 16


# --------------------------------------------------------------------------------------------------
# Shared pieces


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A core/v1 Toleration, copied into every pod the pool runs.

    Checked as the API server checks a pod's tolerations, so a pool the CRD admits never renders
    a Deployment the API server refuses.
    """

    model_config = with_rules(
        cel(
            "self.operator == 'Exists' || (has(self.key) && size(self.key) > 0)",
            "tolerations: operator must be Exists when key is empty",
            field_path=".operator",
        ),
        cel(
            "self.operator != 'Exists' || !has(self.value) || size(self.value) == 0",
            "tolerations: value must be empty when operator is Exists",
            field_path=".value",
        ),
        cel(
            "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            "tolerations: effect must be NoExecute when tolerationSeconds is set",
            field_path=".tolerationSeconds",
        ),
    )

    key: str | None = Field(
        default=None,
        description="Taint key (a label key); empty with Exists matches all.",
        pattern=QUALIFIED_NAME,
        max_length=MAX_QUALIFIED_NAME_LENGTH,
    )
    operator: TolerationOperator = Field(default=TolerationOperator.EQUAL, description="Exists or Equal.")
    value: str | None = Field(
        default=None,
        description="Taint value (a label value), for Equal.",
        pattern=LABEL_VALUE,
        max_length=MAX_LABEL_VALUE_LENGTH,
    )
    effect: TaintEffect | None = Field(default=None, description="Taint effect; empty matches all.")
    toleration_seconds: int | None = Field(
        default=None,
        ge=-(2**62),
        le=2**62,
        description="For NoExecute: how long to stay after the taint appears.",
    )

    @field_validator("key")
    @classmethod
    def _key_is_qualified(cls, value: str | None) -> str | None:
        problem = qualified_name_problem(value) if value else None
        if problem is not None:
            raise ValueError(f"tolerations: {problem}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        exists = self.operator is TolerationOperator.EXISTS
        if not exists and not self.key:
            raise ValueError("tolerations: operator must be Exists when key is empty")
        if exists and self.value:
            raise ValueError("tolerations: value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect is not TaintEffect.NO_EXECUTE:
            raise ValueError("tolerations: effect must be NoExecute when tolerationSeconds is set")
        return self


class SecretKeyRef(ApiModel):
    name: str = Field(
        description="Secret in the ModelDeployment's namespace.", pattern=DNS_SUBDOMAIN, max_length=253
    )
    key: str = Field(
        default="token",
        description="Key inside the Secret.",
        pattern=CONFIG_KEY,
        max_length=MAX_CONFIG_KEY_LENGTH,
    )


# --------------------------------------------------------------------------------------------------
# InferencePool


class Tier(ApiModel):
    name: str = Field(description="Tier name, e.g. P0, P1, P2.", pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$")
    priority: int = Field(
        description="Value of the PriorityClass gpupool manages for this tier; higher wins.",
        ge=0,
        le=1_000_000_000,
    )
    reserved_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Share of the pool's accelerators reserved for this tier.",
    )
    preemptible: bool = Field(
        default=False,
        description="Pods of a preemptible tier never preempt others (preemptionPolicy Never) "
        "and are the first the scheduler evicts when a higher tier needs room.",
    )
    borrowing_limit_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Share of the pool the tier may hold beyond its reserve when others leave it "
        "idle (Kueue's borrowingLimit). Unset: no limit, the tier may grow into all idle capacity.",
    )
    lendable: bool = Field(
        default=True,
        description="Whether other tiers may borrow the part of this tier's reserve it leaves idle. "
        "false keeps the reserve empty until the tier's own models ask for it.",
    )
    reclaim: bool = Field(
        default=True,
        description="Whether the tier takes its reserve back from tiers holding more than their own "
        "reserve when its models ask (gpupool scales the borrowers down, least busy instance first). "
        "false: the tier waits until borrowers shrink on their own.",
    )


def default_tiers() -> list[Tier]:
    """P0 online (40%), P1 internal (30%), P2 batch and experiments (30%, preemptible).

    The shares and roles are the platform defaults in the domain brief (§6).
    """
    return [
        Tier(name="P0", priority=1_000_000, reserved_percent=40),
        Tier(name="P1", priority=100_000, reserved_percent=30),
        Tier(name="P2", priority=1_000, reserved_percent=30, preemptible=True),
    ]


def _accelerator_rule() -> dict[str, str]:
    """CEL: the accelerator belongs to the vendor, generated from the catalog."""
    by_vendor: dict[str, list[str]] = {}
    for name, accel in sorted(ACCELERATORS.items()):
        by_vendor.setdefault(accel.vendor.value, []).append(name)
    clauses = " || ".join(
        f"(self.vendor == '{vendor}' && self.accelerator in {names!r})"
        for vendor, names in sorted(by_vendor.items())
    )
    return cel(
        clauses,
        "accelerator does not belong to vendor: "
        + "; ".join(f"{v}: {', '.join(n)}" for v, n in sorted(by_vendor.items())),
        field_path=".accelerator",
    )


class PrometheusBasicAuth(ApiModel):
    """HTTP basic authentication from a Secret in the operator's own namespace."""

    secret_name: str = Field(
        description="Secret in the operator's namespace holding the credentials (a "
        "kubernetes.io/basic-auth Secret has the default keys).",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    username_key: str = Field(default="username", min_length=1, description="Key of the user name.")
    password_key: str = Field(default="password", min_length=1, description="Key of the password.")


class PrometheusBearerToken(ApiModel):
    """An `Authorization: Bearer` token from a Secret in the operator's own namespace."""

    secret_name: str = Field(
        description="Secret in the operator's namespace holding the token.",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    key: str = Field(default="token", min_length=1, description="Key of the token in the Secret.")


class PrometheusTLS(ApiModel):
    """How the operator verifies an https:// Prometheus."""

    model_config = with_rules(
        cel(
            "!(has(self.caSecretName) && self.insecureSkipVerify)",
            "prometheus.tls: give caSecretName or insecureSkipVerify, not both",
        ),
    )

    ca_secret_name: str | None = Field(
        default=None,
        description="Secret in the operator's namespace with the PEM CA bundle that signed "
        "Prometheus' certificate; unset: the system's trusted CAs.",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    ca_key: str = Field(default="ca.crt", min_length=1, description="Key of the CA bundle in the Secret.")
    insecure_skip_verify: bool = Field(
        default=False,
        description="Accept any certificate (no verification): for tests only; anyone on the path "
        "can then read the credentials and forge the metrics.",
    )

    @model_validator(mode="after")
    def _one_way_to_trust(self) -> Self:
        if self.ca_secret_name is not None and self.insecure_skip_verify:
            raise ValueError("prometheus.tls: give caSecretName or insecureSkipVerify, not both")
        return self


class PrometheusSpec(ApiModel):
    model_config = with_rules(
        cel(
            "!(has(self.basicAuth) && has(self.bearerToken))",
            "prometheus: give at most one of basicAuth and bearerToken",
        ),
        cel(
            "!has(self.tls) || self.url.startsWith('https://')",
            "prometheus.tls applies to an https:// url",
            field_path=".tls",
        ),
    )

    url: str = Field(
        description="Base URL of the Prometheus HTTP API that scrapes this pool's engines.",
        pattern=r"^https?://",
    )
    basic_auth: PrometheusBasicAuth | None = Field(
        default=None,
        description="HTTP basic authentication (Prometheus' own web.config basic_auth_users, or a "
        "proxy in front of it). At most one of basicAuth and bearerToken.",
    )
    bearer_token: PrometheusBearerToken | None = Field(
        default=None,
        description="A bearer token (an authenticating proxy, a managed Prometheus). At most one of "
        "basicAuth and bearerToken.",
    )
    tls: PrometheusTLS | None = Field(default=None, description="Certificate verification for https.")

    @model_validator(mode="after")
    def _one_auth_method(self) -> Self:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("prometheus: give at most one of basicAuth and bearerToken")
        if self.tls is not None and not self.url.startswith("https://"):
            raise ValueError("prometheus.tls applies to an https:// url")
        return self


# A qualified extended-resource name (domain/name), as device plugins advertise them.
RESOURCE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class InterNodeNetwork(ApiModel):
    """The network between the nodes of one multi-node instance (pipeline parallelism)."""

    bandwidth_gbps: int = Field(
        default=DEFAULT_INTER_NODE_GBPS,
        ge=1,
        le=3200,
        description="Line rate of each node's link to the others, in Gb/s (200 for HDR InfiniBand "
        "or 200 GbE RoCE, 400 for NDR); the plan takes Gb/s / 8 as the effective rate, about "
        "25 GB/s for 200 Gb/s as the platform guides quote.",
    )
    rdma_resource: str | None = Field(
        default=None,
        max_length=253,
        pattern=RESOURCE_NAME_PATTERN,
        description="Extended resource of the nodes' RDMA device plugin (e.g. "
        "rdma/rdma_shared_device_a); each pod of a multi-node instance requests one.",
    )
    exclusive_topology_key: str | None = Field(
        default=None,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="A node label naming a set of nodes (a rack, a leaf switch) that holds one "
        "multi-node instance at most and keeps its pods together (LeaderWorkerSet's "
        "exclusive-topology); unset means the scheduler places each pod on any node of the pool.",
    )

    @property
    def bytes_per_second(self) -> int:
        return self.bandwidth_gbps * 10**9 // 8


class Scheduler(StrEnum):
    """Who admits a pool's pods. Open to more gang schedulers (Volcano) as values of their own."""

    # The default scheduler places each pod on its own (a group of nodes may be half-placed).
    DEFAULT = "default"
    # Kueue admits each instance whole against the tiers' ClusterQueues before any pod is bound.
    KUEUE = "kueue"


class InferencePoolSpec(ApiModel):
    model_config = with_rules(
        _accelerator_rule(),
        cel(
            "self.tiers.map(t, t.reservedPercent).sum() <= 100",
            "the tiers' reservedPercent must add up to at most 100",
            field_path=".tiers",
        ),
    )

    vendor: Vendor = Field(description="Hardware vendor of the pool's accelerators: nvidia or ascend.")
    accelerator: str = Field(
        description="Accelerator model from the gpupool catalog (see `gpupool plan --help`).",
        json_schema_extra={"enum": list(sorted(ACCELERATORS))},
    )
    accelerators_per_node: int = Field(
        default=8,
        ge=1,
        le=16,
        description="Accelerators in one node's NVLink/HCCS domain; a tensor-parallel group never "
        "spans nodes.",
    )
    accelerator_resource: str | None = Field(
        default=None,
        description="Extended resource the nodes' device plugin advertises for one accelerator, "
        "which pods request and the pool counts; unset, the accelerator's usual one "
        "(nvidia.com/gpu, huawei.com/Ascend910, huawei.com/Ascend310P). Huawei Cloud CCE "
        "advertises Ascend 910C (Atlas A3) dies as huawei.com/ascend-1980.",
        pattern=EXTENDED_RESOURCE,
        max_length=MAX_EXTENDED_RESOURCE_LENGTH,
        json_schema_extra=extended_resource_schema("acceleratorResource"),
    )
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_SELECTOR_LABELS,
        description="Labels a node must carry to belong to the pool; copied to every pod. Keys are "
        "label keys, values label values (63 characters at most).",
        json_schema_extra=label_map_schema("nodeSelector"),
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Tolerations for the taints of the pool's nodes; copied to every pod.",
        json_schema_extra=atomic_list(),
    )
    tiers: list[Tier] = Field(
        default_factory=default_tiers,
        min_length=1,
        max_length=8,
        description="Priority tiers, each backed by a PriorityClass gpupool manages.",
        json_schema_extra=list_map("name"),
    )
    price_per_accelerator_hour: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PRICE_PER_HOUR,
        description="Hourly price of one accelerator, for cost reporting.",
    )
    prometheus: PrometheusSpec | None = Field(
        default=None,
        description="Where the operator reads this pool's traffic and accelerator metrics.",
    )
    scheduler: Scheduler = Field(
        default=Scheduler.DEFAULT,
        description="Who admits the pool's instances: default (the scheduler places each pod on its "
        "own) or kueue (gpupool writes a ResourceFlavor, one ClusterQueue per tier in a cohort named "
        "after the pool, and a LocalQueue per model; Kueue admits each instance, a LeaderWorkerSet "
        "group whole, before any of its pods is scheduled). kueue needs Kueue installed with its "
        "pod, deployment and leaderworkerset integrations (docs/scheduling.md).",
    )
    inter_node: InterNodeNetwork = Field(
        default_factory=InterNodeNetwork,
        description="The network between nodes, for models that need more than one node per instance.",
    )
    tenants: list[Tenant] = Field(
        default_factory=list,
        max_length=MAX_TENANTS,
        description="Teams sharing the pool, each a set of namespaces with a quota of the pool's "
        "accelerators. gpupool caps their models and writes a ResourceQuota into each of their "
        "namespaces, so pods it does not create are held to the same limit.",
        json_schema_extra=list_map("name"),
    )
    access: AccessSpec | None = Field(
        default=None,
        description="Who may call the pool's models, for models that do not say (access.clients, "
        "access.prometheus).",
    )
    routing: RoutingSpec | None = Field(
        default=None,
        description="Gateways the pool's models are routed from, for models without spec.routing.",
    )
    weight_loading: WeightLoading = Field(
        default_factory=WeightLoading,
        description="How fast the pool's instances read weights from each source (Hugging Face, "
        "local disk, network file system), for the plan's load time.",
    )

    @field_validator("node_selector")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return check_label_keys("nodeSelector", value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        accelerator = ACCELERATORS[self.accelerator]
        if accelerator.vendor is not self.vendor:
            raise ValueError(
                f"accelerator does not belong to vendor: {self.accelerator} is {accelerator.vendor.value}"
            )
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tiers must have distinct names")
        if sum(t.reserved_percent for t in self.tiers) > 100:
            raise ValueError("the tiers' reservedPercent must add up to at most 100")
        return self

    @field_validator("accelerator_resource")
    @classmethod
    def _extended_resource(cls, value: str | None) -> str | None:
        problem = extended_resource_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(f"acceleratorResource: {problem}")
        return value

    @field_validator("tenants")
    @classmethod
    def _distinct_tenants(cls, value: list[Tenant]) -> list[Tenant]:
        return validate_tenants(value)

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, value: str) -> str:
        if value not in ACCELERATORS:
            raise ValueError(f"unknown accelerator {value!r}; known: {', '.join(sorted(ACCELERATORS))}")
        return value

    def tier(self, name: str) -> Tier | None:
        return next((t for t in self.tiers if t.name == name), None)

    def resource_name(self) -> str:
        """The extended resource of one accelerator: acceleratorResource, else the catalog's."""
        return self.accelerator_resource or ACCELERATORS[self.accelerator].resource_name


class TierCapacity(ApiModel):
    name: str = Field(description="Tier name.")
    reserved: int = Field(ge=0, description="Accelerators reserved for the tier.")
    allocated: int = Field(ge=0, description="Accelerators requested by the tier's bound pods.")
    pending: int = Field(default=0, ge=0, description="Accelerators requested by its pods not bound yet.")
    borrowed: int = Field(
        default=0, ge=0, description="Accelerators the tier holds beyond its reserve (bound pods)."
    )
    preempted: int = Field(
        default=0,
        ge=0,
        description="Accelerators of its pods the scheduler is evicting for a higher tier.",
    )
    granted: int | None = Field(
        default=None,
        ge=0,
        description="Accelerators the pool's allocation gives the tier's models (unset before it is made).",
    )
    lent: int = Field(default=0, ge=0, description="Of its reserve, accelerators other tiers' models hold.")
    reclaiming: list[str] = Field(
        default_factory=list,
        description="Accelerators being taken back for its reserve, and from which tier, e.g. 'P2 8'.",
    )


class PoolAccelerators(ApiModel):
    total: int = Field(ge=0, description="Allocatable accelerators on the pool's schedulable nodes.")
    allocated: int = Field(ge=0, description="Accelerators requested by pods bound to those nodes.")
    free: int = Field(ge=0, description="total - allocated.")
    pending: int = Field(
        default=0, ge=0, description="Accelerators requested by the pool's pods not bound to a node yet."
    )
    unmanaged: int = Field(
        default=0,
        ge=0,
        description="Accelerators held on the pool's nodes by pods gpupool does not manage.",
    )


class ExcludedNode(ApiModel):
    name: str = Field(description="Node name.")
    reason: str = Field(description="Why it takes no new pods: cordoned or not ready.")


class InferencePoolStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    nodes: int = Field(default=0, ge=0, description="Nodes matching the node selector.")
    accelerators: PoolAccelerators | None = Field(default=None, description="Pool capacity.")
    tiers: list[TierCapacity] = Field(
        default_factory=list, description="Capacity per tier.", json_schema_extra=list_map("name")
    )
    node_accelerators: list[NodeAccelerators] = Field(
        default_factory=list,
        description="Capacity per schedulable node of the pool.",
        json_schema_extra=list_map("name"),
    )
    excluded_nodes: list[ExcludedNode] = Field(
        default_factory=list,
        description="Nodes that match the selector but take no new pods, with the reason.",
        json_schema_extra=list_map("name"),
    )
    fragmentation: list[TensorParallelFit] = Field(
        default_factory=list,
        description="For each tensor-parallel size, how many more instances fit on the free "
        "accelerators (an instance needs all of its accelerators on one node).",
        json_schema_extra=list_map("tensorParallel"),
    )
    tenants: list[TenantUsage] = Field(
        default_factory=list, description="Use per tenant.", json_schema_extra=list_map("name")
    )
    cost_per_hour: float | None = Field(
        default=None, ge=0, description="Price of the accelerators the pool's pods hold, per hour."
    )
    scheduler: Scheduler | None = Field(
        default=None, description="The scheduler that admits the pool's instances (spec.scheduler)."
    )
    queues: list[str] = Field(
        default_factory=list,
        description="With spec.scheduler kueue: the Kueue objects gpupool keeps for the pool "
        "(ResourceFlavor, Cohort, ClusterQueue per tier), as kind/name.",
        json_schema_extra=atomic_list(),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready; QueuesReady with spec.scheduler kueue.",
        json_schema_extra=list_map("type"),
    )


class InferencePool(ApiModel):
    api_version: str = Field(default=API_VERSION)
    kind: str = Field(default="InferencePool")
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: InferencePoolSpec
    status: InferencePoolStatus | None = None


# --------------------------------------------------------------------------------------------------
# ModelDeployment


class ModelSource(ApiModel):
    model_config = with_rules(
        cel(
            "has(self.name) != has(self.architecture)",
            "set exactly one of model.name (a catalog model) and model.architecture (explicit shapes)",
        ),
        cel(
            "!has(self.architecture) || has(self.servedName)",
            "model.servedName is required with an explicit model.architecture",
            field_path=".servedName",
        ),
    )

    name: str | None = Field(
        default=None,
        description="A model of the gpupool catalog, e.g. llama-3.1-70b (`gpupool plan --help` lists them).",
        pattern=r"^[a-z0-9][a-z0-9.\-]*$",
        max_length=63,
    )
    architecture: Architecture | None = Field(
        default=None, description="Explicit model shapes, for models not in the catalog."
    )
    served_name: str | None = Field(
        default=None,
        description="Name clients use in OpenAI-style requests; defaults to the catalog name.",
        max_length=253,
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.name is None) == (self.architecture is None):
            raise ValueError(
                "set exactly one of model.name (a catalog model) and model.architecture (explicit shapes)"
            )
        if self.architecture is not None and self.served_name is None:
            raise ValueError("model.servedName is required with an explicit model.architecture")
        return self


class HuggingFaceWeights(ApiModel):
    id: str = Field(
        description="Hugging Face repository id, e.g. meta-llama/Llama-3.1-8B-Instruct.",
        pattern=r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)?$",
        max_length=200,
    )
    revision: str | None = Field(
        default=None, description="Branch, tag or commit.", pattern=r"^\S+$", max_length=100
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the Hugging Face token (gated models)."
    )


class PvcWeights(ApiModel):
    claim_name: str = Field(
        description="PersistentVolumeClaim holding the weights.", pattern=DNS_SUBDOMAIN, max_length=253
    )
    path: str = Field(
        default="/",
        description="Directory of the weights inside the volume.",
        pattern=r"^/",
        max_length=1024,
    )


class WeightsSource(ApiModel):
    model_config = with_rules(
        cel(
            "has(self.huggingFace) != has(self.pvc)",
            "set exactly one of weights.huggingFace and weights.pvc",
        ),
        cel(
            "!has(self.cache) || has(self.huggingFace)",
            "weights.cache downloads weights.huggingFace: set weights.huggingFace (weights.pvc is "
            "mounted as it is)",
            field_path=".cache",
        ),
    )
    hugging_face: HuggingFaceWeights | None = Field(default=None, description="Download from Hugging Face.")
    pvc: PvcWeights | None = Field(default=None, description="Mount from a PersistentVolumeClaim.")
    cache: WeightsCache | None = Field(
        default=None,
        description="Download weights.huggingFace once per revision into a PersistentVolumeClaim, "
        "with a Job, and mount it read-only into every instance (docs/weights.md).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.hugging_face is None) == (self.pvc is None):
            raise ValueError("set exactly one of weights.huggingFace and weights.pvc")
        if self.cache is not None and self.hugging_face is None:
            raise ValueError(
                "weights.cache downloads weights.huggingFace: set weights.huggingFace (weights.pvc is "
                "mounted as it is)"
            )
        return self

    def cached(self) -> WeightsCache | None:
        """The cache when it is enabled, else None."""
        return self.cache if self.cache is not None and self.cache.enabled else None


class EngineType(StrEnum):
    VLLM = "vllm"
    TRITON = "triton"


class EngineSpec(ApiModel):
    type: EngineType = Field(default=EngineType.VLLM, description="Serving engine: vllm or triton.")
    image: str | None = Field(
        default=None,
        description="Image override; the default depends on engine and vendor.",
        pattern=IMAGE,
        max_length=512,
    )
    extra_args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list,
        max_length=128,
        description="Extra engine arguments, appended after the ones gpupool derives from the plan.",
        json_schema_extra=atomic_list(),
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="vLLM's --gpu-memory-utilization: the share of each accelerator's memory the "
        "engine may use; the plan is sized with it and the engine is started with it.",
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        le=16_777_216,
        description="vLLM's --max-num-batched-tokens; unset means vLLM's default for the "
        "accelerator (8192 on 70 GiB and larger devices other than A100, else 2048).",
    )
    max_num_seqs: int | None = Field(
        default=None,
        ge=1,
        le=65_536,
        description="vLLM's --max-num-seqs; unset means vLLM's default for the accelerator "
        "(1024 on 70 GiB and larger devices other than A100, else 256).",
    )
    tensor_parallel: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Force this tensor-parallel size instead of the smallest that fits; the "
        "model's status says why when it cannot work.",
    )


class TrafficSpec(ApiModel):
    peak_qps: float = Field(
        default=1.0, ge=0, le=MAX_QPS, description="Peak requests per second to plan for."
    )
    qps_per_instance: float | None = Field(
        default=None,
        gt=0,
        le=MAX_QPS,
        description="Measured requests per second one instance sustains within the SLO.",
    )
    headroom_percent: int = Field(
        default=20, ge=0, le=500, description="Capacity kept above peak traffic, in percent."
    )
    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY,
        ge=1,
        le=4096,
        description="Full-length sequences per instance the KV cache should hold; tensor parallelism "
        "grows to fit them when it can.",
    )
    latency_slo_ms: int = Field(
        default=500,
        ge=1,
        le=MAX_LATENCY_SLO_MS,
        description="Target time to first token, in milliseconds.",
    )


class ScalingSpec(ApiModel):
    model_config = with_rules(
        cel(
            "!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            "scaling.minReplicas must be at most scaling.maxReplicas",
            field_path=".minReplicas",
        ),
    )
    min_replicas: int = Field(default=1, ge=0, le=MAX_INSTANCES, description="Fewest instances.")
    max_replicas: int | None = Field(default=None, ge=0, le=MAX_INSTANCES, description="Most instances.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("scaling.minReplicas must be at most scaling.maxReplicas")
        return self


RWO_MESSAGE = (
    "weights.cache.accessMode ReadWriteOnce mounts on one node only, for one instance: set "
    "accessMode ReadWriteMany (a StorageClass that can share the volume) or at most one replica"
)


class ModelDeploymentSpec(ApiModel):
    model_config = with_rules(
        cel(
            "!has(self.model.architecture) || !has(self.model.architecture.maxPositionEmbeddings) "
            "|| self.maxModelLen <= self.model.architecture.maxPositionEmbeddings",
            "maxModelLen exceeds the model's maxPositionEmbeddings",
            field_path=".maxModelLen",
        ),
        cel(
            "!has(self.model.architecture) || has(self.weights)",
            "weights is required with an explicit model.architecture",
            field_path=".weights",
        ),
        cel(
            "!has(self.replicas) || !has(self.scaling) || !has(self.scaling.maxReplicas) "
            "|| self.replicas <= self.scaling.maxReplicas",
            "replicas exceeds scaling.maxReplicas",
            field_path=".replicas",
        ),
        POOL_OR_POOLS_RULE,
        cel(
            "!has(self.weights) || !has(self.weights.cache) || !self.weights.cache.enabled "
            "|| self.weights.cache.accessMode != 'ReadWriteOnce' "
            "|| ((!has(self.replicas) || self.replicas <= 1) "
            "&& (!has(self.scaling) || self.scaling.minReplicas <= 1))",
            RWO_MESSAGE,
            field_path=".weights.cache.accessMode",
        ),
        cel(
            "!has(self.pools) || size(self.pools) == 0 || !has(self.autoscaling) "
            "|| !self.autoscaling.enabled",
            "autoscaling runs on models of one pool; with pools, set the count with replicas or "
            "traffic.peakQps",
            field_path=".autoscaling",
        ),
    )

    model: ModelSource = Field(description="Which model to serve.")
    weights: WeightsSource | None = Field(
        default=None,
        description="Where the weights come from; defaults to the catalog's Hugging Face id.",
    )
    precision: Precision = Field(default=Precision.BF16, description="Weight precision.")
    kv_cache_dtype: KVCacheDtype = Field(default=KVCacheDtype.AUTO, description="KV-cache data type.")
    max_model_len: int = Field(
        default=DEFAULT_MAX_MODEL_LEN,
        ge=128,
        le=4_194_304,
        description="Longest sequence, prompt plus output.",
    )
    engine: EngineSpec = Field(default_factory=EngineSpec, description="Serving engine.")
    pool: str | None = Field(
        default=None,
        description="InferencePool to run on. Set this or pools.",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    pools: list[PoolPreference] = Field(
        default_factory=list,
        max_length=MAX_POOLS_PER_MODEL,
        description="Several InferencePools the model may run on (e.g. NVIDIA preferred, Ascend "
        "allowed), instead of pool. gpupool sizes the model for each, fills the cheapest that meets "
        "the latency SLO first and overflows to the next when one is full; each pool's instances "
        "run as their own Deployment.",
        json_schema_extra=list_map("name"),
    )
    tier: str = Field(
        default="P1",
        description="Priority tier of the pool.",
        pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$",
    )
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, description="Traffic to plan for.")
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INSTANCES,
        description="Explicit instance count; overrides the planned count. The scale subresource "
        "writes this field, so `kubectl scale` and an HPA or KEDA can own it.",
    )
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Bounds on the instance count.")
    autoscaling: AutoscalingPolicy | None = Field(
        default=None,
        description="Scale the instance count from the pool's Prometheus metrics (off unless set "
        "with enabled: true). "
        "Bounds come from spec.scaling; spec.replicas, when set, still owns the count.",
    )
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec,
        description="How a new version of the model (weights revision, image, engine arguments, "
        "precision) replaces the running one. Recreate and RollingUpdate set the Deployment's "
        "strategy; Canary's traffic steps and analysis are decided by gpupool's canary policy "
        "(docs/rollouts.md), and until the operator shifts traffic a Canary rolls as RollingUpdate.",
    )
    disruption: DisruptionSpec = Field(
        default_factory=DisruptionSpec,
        description="What a node drain or another eviction may take of the model at once (its "
        "PodDisruptionBudget).",
    )
    access: AccessSpec | None = Field(
        default=None,
        description="Who may call the model (its NetworkPolicy); unset fields take the pool's "
        "access, then the defaults.",
    )
    routing: RoutingSpec | None = Field(
        default=None,
        description="Gateway API routing to the model's Service (an HTTPRoute); unset: the pool's "
        "routing, else no route.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelDeploymentSpec:
        arch = self.model.architecture
        if arch is not None and self.max_model_len > arch.max_position_embeddings:
            raise ValueError("maxModelLen exceeds the model's maxPositionEmbeddings")
        if arch is not None and self.weights is None:
            raise ValueError("weights is required with an explicit model.architecture")
        maximum = self.scaling.max_replicas
        if self.replicas is not None and maximum is not None and self.replicas > maximum:
            raise ValueError("replicas exceeds scaling.maxReplicas")
        if (self.pool is None) == (not self.pools):
            raise ValueError("set exactly one of pool (one pool) and pools (several, in order of preference)")
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pools must name distinct pools")
        cache = self.weights.cached() if self.weights is not None else None
        shared = (self.replicas or 0) > 1 or self.scaling.min_replicas > 1
        if cache is not None and cache.access_mode is AccessMode.READ_WRITE_ONCE and shared:
            raise ValueError(RWO_MESSAGE)
        if self.pools and self.autoscaling is not None and self.autoscaling.enabled:
            raise ValueError(
                "autoscaling runs on models of one pool; with pools, set the count with replicas or "
                "traffic.peakQps"
            )
        return self

    def pool_names(self) -> list[str]:
        """The pools the model may use: spec.pool, or spec.pools in the order written."""
        return [self.pool] if self.pool is not None else [p.name for p in self.pools]


class AutoscalingDecision(ApiModel):
    """The autoscaler's last decision, with the numbers behind it."""

    time: str = Field(description="When it was made (RFC 3339).", json_schema_extra={"format": "date-time"})
    from_replicas: int = Field(ge=0, description="Instances asked for before the decision.")
    to_replicas: int = Field(ge=0, description="Instances asked for after it.")
    ready: int = Field(ge=0, description="Instances serving when it was made.")
    recommendation: int = Field(ge=0, description="What the metrics asked for, before stabilisation.")
    direction: Direction = Field(description="Up, Down or Hold.")
    reason: str = Field(description="Why, with the numbers.")
    metrics_available: bool = Field(description="False when a signal was missing: nothing scales down.")
    missing: list[str] = Field(
        default_factory=list, description="Unusable signals and why.", json_schema_extra=atomic_list()
    )
    overload: list[str] = Field(
        default_factory=list, description="Overload signals that fired.", json_schema_extra=atomic_list()
    )
    limits: list[str] = Field(
        default_factory=list, description="What held the count back.", json_schema_extra=atomic_list()
    )
    rules: list[str] = Field(
        default_factory=list,
        description="The named rules that shaped the decision, each 'name: why, with the numbers'.",
        json_schema_extra=atomic_list(),
    )
    signals: SignalValues = Field(description="The metric values behind the decision.")


class AutoscalingStatus(ApiModel):
    last_decision: AutoscalingDecision | None = Field(
        default=None, description="The last decision the autoscaler recorded."
    )
    state: ScalerState = Field(
        default_factory=ScalerState,
        description="Recent recommendations and scale events, the demand history of the last day and "
        "what the policy learned from it, so that a restarted operator keeps its stabilisation windows, "
        "rate limits, period, burst headroom and measured capacity.",
    )


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    model: str | None = Field(default=None, description="Resolved model name, for display.")
    plan: Plan | None = Field(default=None, description="The computed capacity plan.")
    replicas: int = Field(default=0, ge=0, description="Desired instances.")
    ready_replicas: int = Field(default=0, ge=0, description="Instances ready to serve.")
    selector: str | None = Field(default=None, description="Label selector of the instances' pods.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, Planned, Placed, MetricsAvailable, Routed, WeightsReady.",
        json_schema_extra=list_map("type"),
    )
    autoscaling: AutoscalingStatus | None = Field(
        default=None, description="The autoscaler's last decision and state (spec.autoscaling.enabled)."
    )
    placements: list[PoolPlacement] = Field(
        default_factory=list,
        description="Instances per pool, with their tensor parallelism, throughput and cost.",
        json_schema_extra=list_map("pool"),
    )
    limits: list[PlacementLimit] = Field(
        default_factory=list,
        description="Tier shares, tenant quotas and capacity that cut the instance count, with the numbers.",
        json_schema_extra=atomic_list(),
    )
    asked_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Instances asked for (spec.replicas, the autoscaler or the plan) before tier and "
        "quota caps.",
    )
    cost_per_hour: float | None = Field(
        default=None, ge=0, description="Price of the desired instances' accelerators, per hour."
    )
    weights: WeightsStatus | None = Field(
        default=None,
        description="The weights cache of the revision the spec asks for (spec.weights.cache).",
    )
    rollout: RolloutStatus | None = Field(
        default=None,
        description="The rollout of a new version (spec.rollout): canary step, weights, analysis.",
    )


class ModelDeployment(ApiModel):
    api_version: str = Field(default=API_VERSION)
    kind: str = Field(default="ModelDeployment")
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
