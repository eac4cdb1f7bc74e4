"""The simulation: conservation, load time, billing, outages, determinism, per-pod metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.scaling import AutoscalingPolicy
from gpupool.simulate.autoscalers import ClusterView, StaticAutoscaler, build_autoscaler
from gpupool.simulate.metrics import exposition
from gpupool.simulate.scenario import Scenario, run_scenario, scenario_for
from gpupool.simulate.simulator import Balancer, Simulation, SimulationConfig, balance, mixture_quantile
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


@dataclass
class Later:
    """Asks for `replicas` at its first decision, `interval_seconds` in."""

    replicas: int
    interval_seconds: float
    name: str = "later"
    reads_window: bool = False

    def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
        return self.replicas, "later"


def test_least_request_levels_the_queues_round_robin_splits_evenly() -> None:
    # Three pods; one holds 30 queued requests. 90 arrivals fill the others up to its level first
    # (60), then all three alike (10 each).
    assert balance(Balancer.LEAST_REQUEST, [0.0, 30.0, 0.0], 90.0) == pytest.approx([40.0, 10.0, 40.0])
    assert balance(Balancer.LEAST_REQUEST, [0.0, 30.0, 0.0], 20.0) == pytest.approx([10.0, 0.0, 10.0])
    assert balance(Balancer.ROUND_ROBIN, [0.0, 30.0, 0.0], 60.0) == pytest.approx([20.0, 20.0, 20.0])
    assert balance(Balancer.LEAST_REQUEST, [], 5.0) == []


def test_a_backlog_stays_on_the_pods_that_hold_it() -> None:
    # 30 QPS on 2 instances of 10 (saturating at 11): a backlog builds. Two more pods come at
    # minute 5; with round robin they take a quarter of the arrivals each and none of the backlog,
    # so the old pods' queues drain slowly; with least-request the new pods take everything until
    # the queues are level, and the time-outs stop sooner.
    sc = scenario()
    trace = flat(30, 12)

    def run(balancer: Balancer) -> Any:
        config = SimulationConfig(balancer=balancer, retry=False)
        sim = Simulation(sc.model, trace, Later(4, 300), 2, config)
        return sim, sim.run()

    rr_sim, rr = run(Balancer.ROUND_ROBIN)
    _lr_sim, lr = run(Balancer.LEAST_REQUEST)
    assert lr.slo_attainment > rr.slo_attainment
    # The newest pods never queued under least-request's levelling: the old ones did, and kept it.
    old, new = rr_sim.pods[:2], rr_sim.pods[2:]
    assert all(p.aborted > 0 for p in old) and all(p.aborted == 0 for p in new)


def test_the_true_capacity_differs_from_the_plan() -> None:
    sc = scenario()
    # 35 QPS on 4 instances planned at 10 each: fine if the plan is right, overloaded at 0.7.
    right = Simulation(sc.model, flat(35, 20), StaticAutoscaler(4), 4).run()
    wrong = Simulation(
        sc.model, flat(35, 20), StaticAutoscaler(4), 4, SimulationConfig(capacity_error=0.7)
    ).run()
    assert right.slo_attainment > 0.99
    assert wrong.slo_attainment < 0.5 and wrong.error_rate > 0.05
    with pytest.raises(ValueError, match="capacity error"):
        SimulationConfig(capacity_error=0)


def test_load_time_spread_and_provisioning_delay() -> None:
    sc = scenario()
    load = sc.model.load_time_seconds
    config = SimulationConfig(load_time_spread=0.25, provisioning_delay_seconds=60, seed=4)
    sim = Simulation(sc.model, flat(5, 30), StaticAutoscaler(6), 1, config)
    sim.run()
    starts = [p.ready_at - p.created for p in sim.pods[1:]]
    assert len(starts) == 5 and len(set(starts)) == 5
    assert all(60 + 0.75 * load <= s <= 60 + 1.25 * load for s in starts)
    again = Simulation(sc.model, flat(5, 30), StaticAutoscaler(6), 1, config)
    again.run()
    assert [p.ready_at for p in again.pods] == [p.ready_at for p in sim.pods]
    assert config.slowest_start_seconds(load) == pytest.approx(60 + 1.25 * load)


def test_timed_out_requests_are_retried_once() -> None:
    sc = scenario()
    # No instance for 10 min, then plenty: every first attempt in the last 30 s before they come
    # is served on its retry (outside the SLO), the others fail twice.
    trace = flat(5, 20)

    late = Later(2, 600)
    without = Simulation(sc.model, trace, late, 0, SimulationConfig(retry=False, poisson=False)).run()
    with_retry = Simulation(sc.model, trace, late, 0, SimulationConfig(poisson=False)).run()
    assert with_retry.requests == pytest.approx(without.requests)
    assert with_retry.failed < without.failed
    assert with_retry.within_slo == pytest.approx(without.within_slo, rel=1e-6)


def test_the_view_carries_each_ready_pods_live_counts() -> None:
    sc = scenario()
    seen: list[ClusterView] = []

    class Watch:
        name = "watch"
        interval_seconds = 60.0

        def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
            seen.append(view)
            return view.current, "watching"

    Simulation(sc.model, flat(30, 5), Watch(), 3).run()
    view = seen[-1]
    assert len(view.pod_in_flight) == 3 == len(view.pod_waiting) == len(view.pod_kv_cache_usage)
    assert all(view.pod_in_flight[p] >= view.pod_waiting[p] for p in view.pod_in_flight)
    assert sum(view.pod_in_flight.values()) > 0
