"""Status conditions as the Kubernetes API conventions define them, and the reasons gpupool uses.

Reasons are constants so that tests, dashboards and Argo CD health checks can match on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field

from gpupool.api.base import ApiModel


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    PLANNED = "Planned"
    # The autoscaler has the metrics it needs (spec.autoscaling.enabled only).
    METRICS_AVAILABLE = "MetricsAvailable"
    PLACED = "Placed"
    # The model's HTTPRoute and the Gateways it attaches to (only with spec.routing or the pool's).
    ROUTED = "Routed"
    # The weights cache of the spec's revision is downloaded (spec.weights.cache only).
    WEIGHTS_READY = "WeightsReady"
    # A pool with spec.scheduler kueue: its ResourceFlavor, Cohort and ClusterQueues exist and
    # Kueue reports the ClusterQueues active.
    QUEUES_READY = "QueuesReady"


class Reason(StrEnum):
    """CamelCase reasons; each names one situation a platform engineer can act on."""

    # The model is served.
    AVAILABLE = "Available"
    # The workload exists but not every desired instance is ready yet.
    INSTANCES_STARTING = "InstancesStarting"
    # The workload was (re)applied because the spec or the plan changed.
    ROLLING_OUT = "RollingOut"
    # A new version runs beside the stable one on part of the traffic (spec.rollout, Canary).
    CANARY_STEP = "CanaryStep"
    # The canary held every step: the stable Deployment takes the new version, the canary goes
    # once it has.
    PROMOTING = "Promoting"
    # The canary broke a limit of its analysis, or rollout.abort was set: the stable version
    # serves everything again.
    ROLLED_BACK = "RolledBack"
    # Nothing to do: desired state holds.
    RECONCILED = "Reconciled"
    # Sizing succeeded.
    PLANNED = "Planned"
    # The model needs more memory than one node of the pool has.
    DOES_NOT_FIT = "DoesNotFit"
    # spec.model.name is not in the catalog.
    UNKNOWN_MODEL = "UnknownModel"
    # spec.pool names no InferencePool.
    POOL_NOT_FOUND = "PoolNotFound"
    # spec.pool names an InferencePool that exists but whose spec does not parse (the pool's own
    # Ready condition says why).
    POOL_INVALID = "PoolInvalid"
    # spec.tier names no tier of the pool.
    UNKNOWN_TIER = "UnknownTier"
    # The precision cannot run on the pool's accelerator.
    UNSUPPORTED_PRECISION = "UnsupportedPrecision"
    # spec.maxModelLen is longer than the model's context (max_position_embeddings).
    CONTEXT_TOO_LONG = "ContextTooLong"
    # The spec asks for figures the sizing cannot represent (too large to compute with).
    OUT_OF_RANGE = "OutOfRange"
    # The engine cannot run on the pool's hardware.
    UNSUPPORTED_ENGINE = "UnsupportedEngine"
    # The spec is inconsistent in a way the CRD schema cannot express.
    INVALID_SPEC = "InvalidSpec"
    # The API server refused an object rendered from the spec (message: its answer); the same
    # objects are not sent again until the spec or the pool changes.
    REJECTED = "Rejected"
    # Pods exist but cannot be scheduled.
    UNSCHEDULABLE = "Unschedulable"
    # No desired instances (scaled to zero).
    SCALED_TO_ZERO = "ScaledToZero"
    # MetricsAvailable: every signal the autoscaler reads is fresh.
    METRICS_FRESH = "MetricsFresh"
    # MetricsAvailable: some signals are missing, stale or nonsensical; the count never goes down.
    METRICS_INCOMPLETE = "MetricsIncomplete"
    # MetricsAvailable: Prometheus returned no series for the model at all.
    NO_METRICS = "NoMetrics"
    # MetricsAvailable: Prometheus could not be queried.
    PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
    # MetricsAvailable: Prometheus refused the operator's credentials (401 or 403).
    PROMETHEUS_UNAUTHORIZED = "PrometheusUnauthorized"
    # MetricsAvailable: a Secret or key spec.prometheus names is missing or cannot be read.
    PROMETHEUS_SECRET_MISSING = "PrometheusSecretMissing"
    # MetricsAvailable: the pool has no spec.prometheus.url.
    PROMETHEUS_NOT_CONFIGURED = "PrometheusNotConfigured"
    # MetricsAvailable: spec.replicas is set and owns the count; the autoscaler stands aside.
    REPLICAS_SET = "ReplicasSet"
    # Routed: the HTTPRoute is applied and every Gateway it names exists.
    ROUTED = "Routed"
    # Routed: a Gateway the route names does not exist (the route waits for it; nothing else stops).
    GATEWAY_NOT_FOUND = "GatewayNotFound"
    # Routed: the API server has no HTTPRoute kind (the Gateway API CRDs are not installed).
    GATEWAY_API_MISSING = "GatewayAPIMissing"
    # Routed: the route asks for an Inference Extension InferencePool and the API server lacks its
    # kinds (the Gateway API Inference Extension CRDs are not installed; the route goes to the
    # Service meanwhile).
    INFERENCE_EXTENSION_MISSING = "InferenceExtensionMissing"
    # Routed: the endpoint picker's Service the InferencePool names does not exist (everything is
    # applied; with FailClose the Gateway fails the model's requests until the picker answers).
    ENDPOINT_PICKER_NOT_FOUND = "EndpointPickerNotFound"
    # Pool conditions.
    # Placement (the Placed condition): every desired instance has room within its limits.
    PLACED = "Placed"
    # The tier's share of the pool is used up: the count is cut (message: asked, allowed, by whom).
    TIER_CAPPED = "TierCapped"
    # The tenant's quota is used up: the count is cut.
    QUOTA_EXCEEDED = "QuotaExceeded"
    # The pool's nodes have no room for every instance: some wait Pending (one pool), or none
    # of the allowed pools can take the rest (several).
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    # Some instances run on a less preferred pool because the preferred ones are full.
    OVERFLOWED = "Overflowed"
    # An allowed pool cannot serve the model (does not fit, misses the SLO, missing); with every
    # allowed pool skipped, nothing is placed.
    POOL_SKIPPED = "PoolSkipped"
    # The scheduler evicted instances for a higher tier; they come back when room returns.
    PREEMPTED = "Preempted"
    # Instances evicted earlier are all back.
    RESTORED = "Restored"
    # Instances whose node went NotReady, was cordoned or disappeared; they come back elsewhere
    # when there is room.
    INSTANCES_LOST = "InstancesLost"
    # WeightsReady: the download Job of the spec's revision succeeded; instances mount the cache.
    WEIGHTS_CACHED = "Cached"
    # WeightsReady: the cache's claim waits to bind, or its download Job waits to start.
    DOWNLOAD_PENDING = "DownloadPending"
    # WeightsReady: the download Job runs; instances start once it succeeds (Ready says
    # WaitingForWeights meanwhile).
    DOWNLOADING = "Downloading"
    # WeightsReady: the download Job failed (message: why, from the Job and its pod, and when the
    # next attempt starts, or that the attempts are used up).
    DOWNLOAD_FAILED = "DownloadFailed"
    # Ready: no instance runs until the weights are cached.
    WAITING_FOR_WEIGHTS = "WaitingForWeights"
    # A ReadWriteOnce cache for more than one instance, or for an instance over several nodes:
    # nothing is created until the spec asks for a volume every instance can mount.
    CACHE_NOT_SHAREABLE = "CacheNotShareable"
    # QueuesReady: the pool's Kueue objects are applied and Kueue reports its ClusterQueues active.
    QUEUES_ACTIVE = "QueuesActive"
    # QueuesReady: Kueue has not activated a ClusterQueue yet (message: Kueue's own).
    QUEUES_INACTIVE = "QueuesInactive"
    # QueuesReady / a model's Ready: the pool names kueue but the cluster has no Kueue CRDs;
    # nothing of Kueue's is created and the pool's models are not applied.
    KUEUE_MISSING = "KueueMissing"
    # Placed: instances wait for Kueue to admit them (message: Kueue's own, per workload).
    AWAITING_ADMISSION = "AwaitingAdmission"
    NODES_FOUND = "NodesFound"
    NO_NODES = "NoNodesMatch"
    # Nodes match the pool's nodeSelector, but none advertises the accelerator's resource.
    NO_ACCELERATORS = "NoAcceleratorResource"


class Condition(ApiModel):
    type: str = Field(description="Condition type: Ready, Progressing, Degraded, Planned.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the spec this condition describes."
    )
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    reason: str = Field(
        description="CamelCase machine-readable reason.",
        json_schema_extra={"pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
    )
    message: str = Field(default="", description="Human-readable details: what is wrong and how to fix it.")


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    existing: list[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: str,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """Conditions with one of them set; lastTransitionTime moves only when the status changes.

    Keeping the old timestamp when only the message or reason changes is what the API conventions
    ask, and it is what lets a resync that finds nothing new write nothing.
    """
    previous = next((c for c in existing if c.type == type_.value), None)
    transition = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type_.value,
        status=status,
        observed_generation=generation,
        last_transition_time=transition,
        reason=reason.value,
        message=message,
    )
    others = [c for c in existing if c.type != type_.value]
    return sorted([*others, updated], key=lambda c: c.type)


def find_condition(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_.value), None)
