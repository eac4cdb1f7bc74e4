"""The Kubernetes HorizontalPodAutoscaler's algorithm, as a baseline to measure the policy against.

Follows kube-controller-manager (pkg/controller/podautoscaler: replica_calculator.go and
horizontal.go) for a Pods metric with an AverageValue target:

- desired = ceil(usage ratio x pods with metrics), usage ratio = mean metric / target; no change
  while |1 - ratio| <= tolerance (0.1, the cluster default);
- pods without a metric count at the target when scaling down and at 0 when scaling up, and the
  decision is dropped if that flips its direction; terminating pods are ignored;
- behaviour defaults (pkg/apis/autoscaling/v2/defaults.go): scale up by the larger of 100% or 4
  pods per 15 s with no stabilisation; scale down by up to 100% per 15 s, to the highest
  recommendation of the last 300 s; the controller runs every 15 s.

Only the algorithm is here; which metric it is fed (DCGM utilisation, per-pod QPS) is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.scaling.state import ScalerState

DEFAULT_TOLERANCE = 0.1
DEFAULT_SYNC_PERIOD_SECONDS = 15


class HpaPolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


class HpaScalingPolicy(ApiModel):
    type: HpaPolicyType
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class HpaScalingRules(ApiModel):
    stabilization_window_seconds: int = Field(ge=0, le=3600)
    select_policy: SelectPolicy = SelectPolicy.MAX
    policies: list[HpaScalingPolicy]


def default_scale_up() -> HpaScalingRules:
    return HpaScalingRules(
        stabilization_window_seconds=0,
        policies=[
            HpaScalingPolicy(type=HpaPolicyType.PERCENT, value=100, period_seconds=15),
            HpaScalingPolicy(type=HpaPolicyType.PODS, value=4, period_seconds=15),
        ],
    )


def default_scale_down() -> HpaScalingRules:
    return HpaScalingRules(
        stabilization_window_seconds=300,
        policies=[HpaScalingPolicy(type=HpaPolicyType.PERCENT, value=100, period_seconds=15)],
    )


class HpaBehavior(ApiModel):
    scale_up: HpaScalingRules = Field(default_factory=default_scale_up)
    scale_down: HpaScalingRules = Field(default_factory=default_scale_down)

    @property
    def history_seconds(self) -> int:
        periods = [p.period_seconds for p in self.scale_up.policies + self.scale_down.policies]
        return max(
            self.scale_up.stabilization_window_seconds,
            self.scale_down.stabilization_window_seconds,
            *periods,
        )


def metric_replicas(
    current_replicas: int,
    pod_metrics: Mapping[str, float | None],
    target: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int | None:
    """Replicas the metric asks for (replica_calculator's calcPlainMetricReplicas), or None when no
    pod reports it (the HPA then does not scale).

    `pod_metrics` maps every non-terminating pod to its value, None for a pod without one.
    """
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    metrics = {pod: value for pod, value in pod_metrics.items() if value is not None}
    missing = [pod for pod, value in pod_metrics.items() if value is None]
    if not metrics:
        return None
    ratio = sum(metrics.values()) / len(metrics) / target
    if not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current_replicas
        return math.ceil(ratio * len(metrics))
    filled = dict(metrics)
    for pod in missing:
        filled[pod] = target if ratio < 1.0 else 0.0
    new_ratio = sum(filled.values()) / len(filled) / target
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current_replicas
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current_replicas) or (new_ratio > 1.0 and replicas < current_replicas):
        return current_replicas
    return replicas


def _scale_up_limit(state: ScalerState, current: int, rules: HpaScalingRules, now: float) -> int:
    if rules.select_policy is SelectPolicy.DISABLED:
        return current
    limits = []
    for policy in rules.policies:
        since = now - policy.period_seconds
        start = current - state.added_since(since) + state.removed_since(since)
        if policy.type is HpaPolicyType.PODS:
            limits.append(start + policy.value)
        else:
            limits.append(math.ceil(start * (1 + policy.value / 100)))
    return max(limits) if rules.select_policy is SelectPolicy.MAX else min(limits)


def _scale_down_limit(state: ScalerState, current: int, rules: HpaScalingRules, now: float) -> int:
    if rules.select_policy is SelectPolicy.DISABLED:
        return current
    limits = []
    for policy in rules.policies:
        since = now - policy.period_seconds
        start = current + state.removed_since(since) - state.added_since(since)
        if policy.type is HpaPolicyType.PODS:
            limits.append(start - policy.value)
        else:
            limits.append(int(start * (1 - policy.value / 100)))
    return min(limits) if rules.select_policy is SelectPolicy.MAX else max(limits)


def hpa_decide(
    pod_metrics: Mapping[str, float | None],
    target: float,
    state: ScalerState,
    current: int,
    min_replicas: int,
    max_replicas: int,
    now: float,
    behavior: HpaBehavior | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[int, ScalerState]:
    """One HPA sync: the replica count and the recommendation history to keep."""
    behavior = behavior or HpaBehavior()
    proposed = metric_replicas(current, pod_metrics, target, tolerance)
    if proposed is None:  # no metrics: the HPA sets ScalingActive=False and leaves the count
        return current, state
    # stabilizeRecommendationWithBehaviors
    up_cutoff = now - behavior.scale_up.stabilization_window_seconds
    down_cutoff = now - behavior.scale_down.stabilization_window_seconds
    up, down = proposed, proposed
    for past in state.recommendations:
        if past.time > up_cutoff:
            up = min(up, past.replicas)
        if past.time > down_cutoff:
            down = max(down, past.replicas)
    desired = current
    if desired < up:
        desired = up
    if desired > down:
        desired = down
    # convertDesiredReplicasWithBehaviorRate
    if desired > current:
        limit = max(current, _scale_up_limit(state, current, behavior.scale_up, now))
        desired = min(desired, limit, max_replicas)
    elif desired < current:
        limit = min(current, _scale_down_limit(state, current, behavior.scale_down, now))
        desired = max(desired, limit, min_replicas)
    desired = min(max(desired, min_replicas), max_replicas)
    return desired, state.recorded(now, proposed, current, desired, behavior.history_seconds)
