"""The simulation: conservation, load time, billing, outages, determinism, per-pod metrics."""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.scaling import AutoscalingPolicy
from gpupool.simulate.autoscalers import StaticAutoscaler, build_autoscaler
from gpupool.simulate.metrics import exposition
from gpupool.simulate.scenario import Scenario, run_scenario, scenario_for
from gpupool.simulate.simulator import Simulation, SimulationConfig, mixture_quantile
from gpupool.simulate.traces import Trace

MINUTE = 60.0


def scenario(**scaling: Any) -> Scenario:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "team-a"},
            "spec": {
                "model": {"name": "llama-3.1-8b"},
                "pool": "h100",
                # A measured 10 QPS per instance keeps the arithmetic simple.
                "traffic": {"peakQps": 40, "qpsPerInstance": 10, "latencySloMs": 500},
                "scaling": {"minReplicas": 1, "maxReplicas": 8, **scaling},
            },
        }
    )
    pool = InferencePool.model_validate(
        {"metadata": {"name": "h100"}, "spec": {"vendor": "nvidia", "accelerator": "H100-80GB"}}
    )
    return scenario_for(md, pool)


def flat(qps: float, minutes: float = 30) -> Trace:
    return Trace("flat", (0.0, minutes * MINUTE), (qps, qps))


def test_static_capacity_above_the_load_meets_the_slo_and_bills_exactly() -> None:
    sc = scenario()
    result = Simulation(sc.model, flat(20), StaticAutoscaler(4), 4).run()
    assert result.failed == 0 and result.slo_attainment > 0.9999
    assert result.requests == pytest.approx(20 * 30 * MINUTE, rel=0.02)  # Poisson around the rate
    # 4 instances x 1 accelerator x 0.5 h
    assert result.accelerator_hours == pytest.approx(2.0)
    assert result.reaction_seconds is None and result.scale_events == []


def test_no_instance_serves_everything_fails() -> None:
    result = Simulation(scenario().model, flat(5, 10), StaticAutoscaler(0), 0).run()
    assert result.slo_attainment == 0 and result.error_rate == 1
    assert result.ttft_quantile(0.5) == float("inf")


def test_new_instances_serve_only_after_the_load_time() -> None:
    sc = scenario()
    load = sc.model.load_time_seconds
    step = Trace("step", (0.0, 10 * MINUTE, 10 * MINUTE + 1, 40 * MINUTE), (5.0, 5.0, 30.0, 30.0))
    result = run_scenario(sc, step, "default")
    first_up = next(e for e in result.scale_events if e.to_replicas > e.from_replicas)
    assert first_up.time >= 10 * MINUTE
    ready_before = next(p.ready for p in result.timeline if p.time == first_up.time)
    became_ready = next(p.time for p in result.timeline if p.ready > ready_before)
    assert became_ready - first_up.time == pytest.approx(load, abs=5)
    # The load outran the capacity until then: the reaction time covers the load time.
    reaction = result.reaction_seconds
    assert reaction is not None and reaction[1] >= load


def test_no_scale_down_while_metrics_are_lost() -> None:
    sc = scenario()
    # 30 QPS for 10 min, then 3 QPS; the metrics are lost from minute 9 to minute 30.
    trace = Trace("drop", (0.0, 10 * MINUTE, 10 * MINUTE + 1, 40 * MINUTE), (30.0, 30.0, 3.0, 3.0))
    # With metrics, the instances go within the stabilisation window after the drop.
    seen = run_scenario(sc, trace, "default")
    first_down = next(e for e in seen.scale_events if e.to_replicas < e.from_replicas)
    assert first_down.time < 20 * MINUTE
    # Without, they stay until the metrics are back.
    config = SimulationConfig(outages=((9 * MINUTE, 30 * MINUTE),))
    blind = run_scenario(sc, trace, "default", config=config)
    first_down = next(e for e in blind.scale_events if e.to_replicas < e.from_replicas)
    assert first_down.time >= 30 * MINUTE


def test_same_seed_same_result_other_seed_other_arrivals() -> None:
    sc = scenario()
    a = run_scenario(sc, flat(25), "default", config=SimulationConfig(seed=1)).summary()
    b = run_scenario(sc, flat(25), "default", config=SimulationConfig(seed=1)).summary()
    c = run_scenario(sc, flat(25), "default", config=SimulationConfig(seed=2)).summary()
    assert a == b and a["requests"] != c["requests"]


def test_hpa_on_gpu_utilisation_pins_the_count_at_the_maximum() -> None:
    # 12 QPS on instances of 10: continuous batching keeps every accelerator busy, so the HPA's
    # utilisation target is always exceeded (DOMAIN §5).
    result = run_scenario(scenario(), flat(12), "hpa")
    assert result.timeline[-1].desired == 8
    policy = run_scenario(scenario(), flat(12), "default", policy=AutoscalingPolicy())
    assert policy.timeline[-1].desired == 2  # ceil(12 / 8)


def test_per_pod_metrics_add_up_to_the_model() -> None:
    sc = scenario()
    sim = Simulation(sc.model, flat(20, 10), StaticAutoscaler(3), 3)
    result = sim.run()
    pods = sim.pod_metrics()
    assert len(pods) == 3 and all(p.serving for p in pods)
    assert sum(p.finished for p in pods) == pytest.approx(result.requests, rel=0.001)
    text = exposition(pods, with_pod_labels=True)
    assert text.count('vllm:num_requests_running{namespace="team-a"') == 3


def test_mixture_quantile() -> None:
    # Half the requests wait 1 s flat (a tiny exponential), half never finish: the median is ~1 s.
    assert mixture_quantile([(1.0, 1.0, 1e-6)], 1.0, 0.5) == pytest.approx(1.0, abs=1e-3)
    assert mixture_quantile([(1.0, 1.0, 1e-6)], 1.0, 0.9) == float("inf")


def test_triton_models_scale_without_kv_and_latency_metrics() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "glm"},
            "spec": {
                "model": {"name": "glm-4-9b"},
                "engine": {"type": "triton"},
                "pool": "h100",
                "traffic": {"peakQps": 40, "qpsPerInstance": 10},
            },
        }
    )
    pool = InferencePool.model_validate(
        {"metadata": {"name": "h100"}, "spec": {"vendor": "nvidia", "accelerator": "H100-80GB"}}
    )
    sc = scenario_for(md, pool)
    sim = Simulation(sc.model, flat(30, 10), StaticAutoscaler(4), 4)
    sim.run()
    window = sim.prometheus.window_at(sim.now, 300)
    assert window.kv_cache_usage is None and window.ttft_p99_seconds is None
    assert window.qps is not None and window.waiting_requests is not None
    # 15 QPS on 4 instances of 10 is 37.5%: what Triton does not export is not missing, so the
    # count goes down, to where the load sits between the thresholds (0.8 and 0.6, so 70%):
    # ceil(15 / 7) = 3.
    autoscaler = build_autoscaler(
        "default",
        policy=AutoscalingPolicy(),
        capacity_per_instance=sc.capacity_per_instance,
        load_time_seconds=sc.model.load_time_seconds,
        bounds=sc.bounds,
        latency_slo_seconds=sc.latency_slo_seconds,
        peak_replicas=4,
    )
    result = Simulation(sc.model, flat(15, 20), autoscaler, 4).run()
    assert result.timeline[-1].desired == 3
