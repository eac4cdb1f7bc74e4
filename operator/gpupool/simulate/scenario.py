"""From a ModelDeployment and its pool to a simulation: the plan, the engine model, the bounds.

The same path the operator takes: `plan_model` sizes the model for the pool's accelerator, the
plan's QPS per instance and load time drive both the simulated engine and the autoscaler, and the
bounds are spec.scaling's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.types import Vendor
from gpupool.scaling import AutoscalingPolicy
from gpupool.services.modeldeployment import plan_model
from gpupool.simulate.autoscalers import BOUND_NAME, Autoscaler, Bounds, build_autoscaler
from gpupool.simulate.bound import ClairvoyantBound
from gpupool.simulate.engine import EngineModel
from gpupool.simulate.metrics import EngineKind, VendorKind
from gpupool.simulate.simulator import ModelUnderTest, Simulation, SimulationConfig, SimulationResult
from gpupool.simulate.traces import Trace
from gpupool.sizing import Plan, plan_instances

MIB = 1024**2
# Without spec.scaling.maxReplicas the simulation caps the count at this multiple of the plan.
DEFAULT_MAX_FACTOR = 2


@dataclass(frozen=True)
class Scenario:
    """A planned model ready to simulate."""

    label: str
    plan: Plan
    model: ModelUnderTest
    bounds: Bounds
    latency_slo_seconds: float
    headroom: float = 0.2

    @property
    def capacity_per_instance(self) -> float:
        return self.model.engine.qps_per_instance

    def initial_replicas(self, trace: Trace, policy: AutoscalingPolicy) -> int:
        """Instances at the start: what the target utilisation needs for the trace's first load, as
        if the model had been running at that load for a while."""
        needed = math.ceil(round(trace.qps[0] / (self.capacity_per_instance * policy.target_utilization), 9))
        return min(max(needed, self.bounds.min_replicas, 1), self.bounds.max_replicas)

    def bound(self, trace: Trace, config: SimulationConfig) -> ClairvoyantBound:
        """The clairvoyant bound for `trace` under `config` (its true capacity and start times)."""
        return ClairvoyantBound(
            trace,
            true_capacity_per_instance=self.capacity_per_instance * config.capacity_error,
            start_seconds=config.slowest_start_seconds(self.model.load_time_seconds),
            bounds=self.bounds,
            dt=config.dt,
        )

    def peak_replicas(self, trace: Trace) -> int:
        """The plan's count for the trace's peak: static provisioning with the spec's headroom."""
        return plan_instances(trace.peak, self.capacity_per_instance, self.headroom)

    def autoscaler(self, name: str, policy: AutoscalingPolicy, trace: Trace) -> Autoscaler:
        """The autoscaler called `name` (gpupool's, a baseline or a peer) for this model and trace."""
        return build_autoscaler(
            name,
            policy=policy,
            capacity_per_instance=self.capacity_per_instance,
            load_time_seconds=self.model.load_time_seconds,
            bounds=self.bounds,
            latency_slo_seconds=self.latency_slo_seconds,
            peak_replicas=self.peak_replicas(trace),
        )


def scenario_for(md: ModelDeployment, pool: InferencePool) -> Scenario:
    """Plan `md` on `pool` (SpecError when it cannot be served) and build the simulated model."""
    resolved, plan = plan_model(md, pool)
    accelerator = get_accelerator(pool.spec.accelerator)
    slo = md.spec.traffic.latency_slo_ms / 1000
    engine = EngineModel.from_plan(plan, slo)
    name = md.metadata.get("name", resolved.label)
    model = ModelUnderTest(
        name=name,
        engine=engine,
        engine_kind=EngineKind(md.spec.engine.type.value),
        vendor=VendorKind.ASCEND if accelerator.vendor is Vendor.ASCEND else VendorKind.NVIDIA,
        accelerator_model=accelerator.name,
        accelerators_per_instance=plan.accelerators_per_instance,
        memory_per_accelerator_mib=plan.memory_per_accelerator.total_bytes / MIB,
        load_time_seconds=float(plan.load_time_seconds),
        namespace=md.metadata.get("namespace", "default"),
    )
    scaling = md.spec.scaling
    maximum = scaling.max_replicas
    if maximum is None:
        maximum = max(DEFAULT_MAX_FACTOR * plan.instances, scaling.min_replicas, 1)
    label = (
        f"{name} ({resolved.label} {plan.precision.value} on {accelerator.name}, tensor parallel "
        f"{plan.tensor_parallel}, {plan.qps_per_instance:.2f} QPS per instance, loads in "
        f"{plan.load_time_seconds} s)"
    )
    return Scenario(
        label=label,
        plan=plan,
        model=model,
        bounds=Bounds(scaling.min_replicas, maximum),
        latency_slo_seconds=slo,
        headroom=md.spec.traffic.headroom_percent / 100,
    )


def run_scenario(
    scenario: Scenario,
    trace: Trace,
    policy_name: str,
    *,
    policy: AutoscalingPolicy | None = None,
    config: SimulationConfig | None = None,
) -> SimulationResult:
    """Replay `trace` through the simulated model under one of the autoscalers."""
    policy = policy or AutoscalingPolicy()
    config = config or SimulationConfig()
    if policy_name == BOUND_NAME:
        bound = scenario.bound(trace, config)
        return Simulation(scenario.model, trace, bound, bound.initial_replicas(), config).run()
    autoscaler = scenario.autoscaler(policy_name, policy, trace)
    if policy_name == "static":
        initial = scenario.peak_replicas(trace)
        initial = min(max(initial, scenario.bounds.min_replicas), scenario.bounds.max_replicas)
    else:
        initial = scenario.initial_replicas(trace, policy)
    return Simulation(scenario.model, trace, autoscaler, initial, config).run()
