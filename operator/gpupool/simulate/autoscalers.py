"""The autoscalers a simulation can run: gpupool's policy and the baselines it is measured against.

- `default`: gpupool's `decide_replicas` with an `AutoscalingPolicy` (enabled).
- `guide`: the same with the platform guides' literal numbers (DOMAIN §6): scale down below 30%,
  add at most one instance per 30 s.
- `hpa`: the Kubernetes HPA algorithm with its default behaviour on mean accelerator utilisation
  (DCGM_FI_DEV_GPU_UTIL, a Pods metric), target 75% (DOMAIN §6) - what a platform team gets from
  an HPA on the GPU exporter.
- `hpa-qps`: the same algorithm on requests per second per pod, target `targetUtilization` x
  qpsPerInstance - a well-tuned HPA, the stronger baseline.
- `static`: the planned instance count for the trace's peak, never changed.
- the peers (`peers.py`, each from its own source at its shipped defaults): `knative-kpa`,
  `kubeai`, `keda`, `aibrix-apa`, `aibrix-kpa`, `dynamo`, `llm-d-wva`;
- `bound`: the clairvoyant bound (`bound.py`), which knows the trace; `scenario.run_scenario`
  builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gpupool.scaling import AutoscalingPolicy, MetricsWindow, ScalerState, ScalingDecision, decide_replicas
from gpupool.scaling.hpa import DEFAULT_SYNC_PERIOD_SECONDS, HpaBehavior, hpa_decide
from gpupool.scaling.policy import (
    DEFAULT_ACCELERATOR_UTILIZATION_UP,
    GUIDE_SCALE_DOWN_UTILIZATION,
    GUIDE_SCALE_UP_STEP,
)

PEER_NAMES = ("knative-kpa", "kubeai", "keda", "aibrix-apa", "aibrix-kpa", "dynamo", "llm-d-wva")
BOUND_NAME = "bound"
POLICY_NAMES = ("default", "guide", "hpa", "hpa-qps", "static", *PEER_NAMES, BOUND_NAME)


@dataclass(frozen=True)
class ClusterView:
    """What an autoscaler may look at when it runs."""

    current: int
    ready: int
    window: MetricsWindow
    pod_utilization: Mapping[str, float | None]
    pod_qps: Mapping[str, float | None]
    # Live values of each Ready pod, as the pod's own endpoint or a gateway reports them now:
    # requests in flight (running and queued), queued alone, KV-cache usage (0-1).
    pod_in_flight: Mapping[str, float] = field(default_factory=dict)
    pod_waiting: Mapping[str, float] = field(default_factory=dict)
    pod_kv_cache_usage: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Bounds:
    min_replicas: int
    max_replicas: int


class Autoscaler(Protocol):
    """What the simulation drives. An autoscaler may also set `reads_window = False` when it never
    reads `ClusterView.window`, which spares the simulation the range queries."""

    name: str

    @property
    def interval_seconds(self) -> float: ...

    def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
        """The desired instance count and why."""
        ...


@dataclass
class PolicyAutoscaler:
    policy: AutoscalingPolicy
    capacity_per_instance: float
    load_time_seconds: float
    bounds: Bounds
    latency_slo_seconds: float
    name: str = "default"
    state: ScalerState = field(default_factory=ScalerState)
    decisions: list[tuple[float, ScalingDecision]] = field(default_factory=list)

    @property
    def interval_seconds(self) -> float:
        return float(self.policy.evaluation_interval_seconds)

    def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
        decision = decide_replicas(
            view.window,
            self.state,
            view.current,
            view.ready,
            self.capacity_per_instance,
            self.load_time_seconds,
            self.policy,
            now,
            min_replicas=self.bounds.min_replicas,
            max_replicas=self.bounds.max_replicas,
            latency_slo_seconds=self.latency_slo_seconds,
        )
        self.state = decision.state
        if decision.desired != view.current or not decision.metrics_available:
            self.decisions.append((now, decision))
        return decision.desired, decision.reason


@dataclass
class HpaAutoscaler:
    """The HPA on a per-pod metric: "utilization" (0-100) or "qps"."""

    metric: str
    target: float
    bounds: Bounds
    behavior: HpaBehavior = field(default_factory=HpaBehavior)
    name: str = "hpa"
    state: ScalerState = field(default_factory=ScalerState)

    @property
    def interval_seconds(self) -> float:
        return float(DEFAULT_SYNC_PERIOD_SECONDS)

    def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
        if self.metric == "utilization":
            values = {p: None if v is None else v * 100 for p, v in view.pod_utilization.items()}
        else:
            values = dict(view.pod_qps)
        desired, self.state = hpa_decide(
            values,
            self.target,
            self.state,
            view.current,
            self.bounds.min_replicas,
            self.bounds.max_replicas,
            now,
            self.behavior,
        )
        known = [v for v in values.values() if v is not None]
        mean = sum(known) / len(known) if known else float("nan")
        return desired, f"HPA on {self.metric}: mean {mean:.2f} per pod, target {self.target:.2f}"


@dataclass
class StaticAutoscaler:
    replicas: int
    name: str = "static"
    reads_window: bool = False

    @property
    def interval_seconds(self) -> float:
        return float(DEFAULT_SYNC_PERIOD_SECONDS)

    def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
        del now, view
        return self.replicas, f"static: {self.replicas} instances provisioned for the peak"


def build_autoscaler(
    name: str,
    *,
    policy: AutoscalingPolicy,
    capacity_per_instance: float,
    load_time_seconds: float,
    bounds: Bounds,
    latency_slo_seconds: float,
    peak_replicas: int,
) -> Autoscaler:
    """One of POLICY_NAMES, configured for a model."""
    if name in ("default", "guide"):
        update: dict[str, object] = {"enabled": True}
        if name == "guide":
            update |= {
                "scale_down_utilization": GUIDE_SCALE_DOWN_UTILIZATION,
                "scale_up_step": GUIDE_SCALE_UP_STEP,
            }
        return PolicyAutoscaler(
            policy=policy.model_copy(update=update),
            name=name,
            capacity_per_instance=capacity_per_instance,
            load_time_seconds=load_time_seconds,
            bounds=bounds,
            latency_slo_seconds=latency_slo_seconds,
        )
    if name == "hpa":
        return HpaAutoscaler("utilization", DEFAULT_ACCELERATOR_UTILIZATION_UP * 100, bounds, name="hpa")
    if name == "hpa-qps":
        target = policy.target_utilization * capacity_per_instance
        return HpaAutoscaler("qps", target, bounds, name="hpa-qps")
    if name == "static":
        return StaticAutoscaler(min(max(peak_replicas, bounds.min_replicas), bounds.max_replicas))
    if name in PEER_NAMES:
        from gpupool.simulate.peers import build_peer  # the peers build on this module's types

        return build_peer(name, bounds=bounds, capacity_per_instance=capacity_per_instance)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
