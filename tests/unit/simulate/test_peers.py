"""The peers' arithmetic against cases worked by hand from their sources, and the clairvoyant bound."""

from __future__ import annotations

import math

import pytest

from gpupool.scaling import AutoscalingPolicy, MetricsWindow
from gpupool.simulate.autoscalers import PEER_NAMES, Bounds, ClusterView, build_autoscaler
from gpupool.simulate.bound import ClairvoyantBound
from gpupool.simulate.peers import (
    AibrixApa,
    AibrixKpa,
    DynamoPlanner,
    KalmanLoadPredictor,
    KedaQueue,
    KnativeKpa,
    KubeAi,
    LlmdSaturation,
    external_average_value,
)
from gpupool.simulate.traces import Trace

BOUNDS = Bounds(1, 20)


def view(
    current: int,
    *,
    in_flight: dict[str, float] | None = None,
    kv: dict[str, float] | None = None,
    waiting: dict[str, float] | None = None,
    window: MetricsWindow | None = None,
    ready: int | None = None,
) -> ClusterView:
    pods = in_flight or kv or waiting or {}
    return ClusterView(
        current=current,
        ready=len(pods) if ready is None else ready,
        window=window or MetricsWindow(),
        pod_utilization={},
        pod_qps={},
        pod_in_flight=in_flight or {},
        pod_waiting=waiting or dict.fromkeys(pods, 0.0),
        pod_kv_cache_usage=kv or {},
    )


def test_knative_kpa_stable_panic_and_rate_limits() -> None:
    kpa = KnativeKpa(BOUNDS)
    # 4 ready pods, 350 in flight over both windows: ceil(350 / 70) = 5; 5 / 4 < 200%: stable.
    assert kpa.scale(0.0, 4, 350, 350) == 5 and kpa.panic_since is None
    # The panic window sees 700: ceil(700 / 70) = 10 >= 2 x 4 ready: panic, the larger count.
    assert kpa.scale(2.0, 4, 400, 700) == 10 and kpa.panic_since == 2.0
    # Still panicking (within 60 s of the last time over the threshold): no scale-down.
    assert kpa.scale(30.0, 10, 100, 100) == 10
    # 60 s past the last time over: panic ends; scale-down to at least floor(10 / 2) = 5.
    assert kpa.scale(63.0, 10, 100, 100) == 5 and kpa.panic_since is None and kpa.max_panic_pods == 0
    # With 0 ready pods Knative counts 1.
    assert kpa.scale(70.0, 0, 140, 140) == 2


def test_knative_kpa_reads_the_pods_in_flight() -> None:
    kpa = KnativeKpa(BOUNDS)
    desired, reason = kpa.decide(0.0, view(2, in_flight={"a": 100.0, "b": 110.0}))
    assert desired == 3 and "stable" in reason  # ceil(210 / 70)


def test_kubeai_moving_average_and_consecutive_scale_downs() -> None:
    kubeai = KubeAi(BOUNDS)
    assert kubeai.window_count == 60 and kubeai.required_consecutive_scale_downs == 3
    # The average starts full of the first sample: 450 active -> ceil(4.5) = 5.
    assert kubeai.decide(0.0, view(5, in_flight={"a": 225.0, "b": 225.0}))[0] == 5
    # One sample of 0 among 60: average 442.5 -> 5 still.
    assert kubeai.decide(10.0, view(5, in_flight={"a": 0.0}))[0] == 5
    # A proposal of 2 is held three times, then applied.
    assert [kubeai.scale(5, 2) for _ in range(4)] == [5, 5, 5, 2]
    # The count is not reset by the scale-down itself: the next lower proposal goes at once.
    assert kubeai.scale(2, 1) == 1
    # A proposal to stay resets it.
    kubeai.scale(1, 1)
    assert kubeai.scale(3, 2) == 3


def test_external_average_value_is_the_hpa_external_metric() -> None:
    # 23 queued over 3 replicas, target 5: ceil(23 / 5) = 5, as GetExternalMetricReplicas gives.
    values = external_average_value(23.0, 3)
    assert len(values) == 3 and sum(v for v in values.values() if v is not None) == pytest.approx(23.0)
    keda = KedaQueue(BOUNDS)
    window = MetricsWindow(timestamps=[0.0, 15.0], waiting_requests=[1.0, 23.0])
    assert keda.decide(15.0, view(3, window=window))[0] == 5
    # Within the 10% tolerance: 16 over 3 replicas is 16 / 15 = 1.07 of the target.
    keda = KedaQueue(BOUNDS)
    window = MetricsWindow(timestamps=[0.0], waiting_requests=[16.0])
    assert keda.decide(15.0, view(3, window=window))[0] == 3
    # Nothing queued: down to the minimum, but only after the 300 s stabilisation.
    window = MetricsWindow(timestamps=[0.0], waiting_requests=[0.0])
    assert keda.decide(30.0, view(3, window=window))[0] == 3
    assert keda.decide(400.0, view(3, window=window))[0] == 1


def test_aibrix_apa_tolerance_rates_and_stabilisation() -> None:
    apa = AibrixApa(BOUNDS)
    # 4 pods at 0.7 for a 0.5 target: ratio 1.4 > 1.1 -> ceil(4 x 1.4) = 6 (at most ceil(2 x 4)).
    assert apa.target_replicas(4, 0.7) == 6
    # 1.0 on 4 pods: ratio 2 -> 8; at 1.5 (ratio 3) capped at 8.
    assert apa.target_replicas(4, 1.5) == 8
    # 0.52: within 10% -> 4. 0.1: ratio 0.2 -> ceil(0.8) = 1, floored at floor(4 / 2) = 2.
    assert apa.target_replicas(4, 0.52) == 4 and apa.target_replicas(4, 0.1) == 2
    # Stabilisation: a scale-down takes the lowest recommendation of the last 300 s.
    context = apa.context
    assert context.stabilize(0.0, 6, 4) == 6
    assert context.stabilize(10.0, 3, 6) == 3
    assert context.stabilize(20.0, 5, 6) == 3


def test_aibrix_kpa_divides_the_pods_mean_by_the_target() -> None:
    kpa = AibrixKpa(BOUNDS)
    # Stable 0.7, panic 0.8 on 6 pods: not panic (0.8 / 0.7 < 2); ceil(0.7 / 0.5) = 2, at least
    # floor(6 / 2) = 3.
    assert kpa.target_replicas(6, 0.7, 0.8) == (3, False)
    # Panic when the panic mean is more than twice the stable one: ceil(0.9 / 0.5) = 2 vs stable
    # ceil(0.3 / 0.5) = 1, both raised to floor(2 / 2) = 1 at least: 2; the panic count sticks.
    assert kpa.target_replicas(2, 0.3, 0.9) == (2, True)
    assert kpa.target_replicas(2, 0.0, 0.0) == (2, True)  # a zero stable value is panic too
    # Within the tolerance band the current count stays.
    assert kpa.target_replicas(5, 0.5, 0.5) == (5, False)


def test_kalman_predictor_follows_a_trend() -> None:
    predictor = KalmanLoadPredictor()
    assert predictor.predict_next(7.0) == 7.0  # nothing seen yet: the last value
    predictor.add(0.0)  # a leading zero is skipped
    assert not predictor.initialized
    for value in (100.0, 110.0, 120.0, 130.0, 140.0):
        predictor.add(value)
        forecast = predictor.predict_next(value)
    # A steady rise of 10 per interval: the forecast is ahead of the last value.
    assert 140 < forecast < 155
    assert predictor.predict_next(140.0) == forecast  # cached until the next observation


def test_dynamo_sizes_for_the_predicted_rate() -> None:
    planner = DynamoPlanner(BOUNDS, engine_rps=10.0)
    # 25 QPS over the last 180 s: 4500 requests, first observation, predicted as is: ceil(2.5) = 3.
    times = [float(t) for t in range(0, 181, 15)]
    window = MetricsWindow(timestamps=times, qps=[25.0] * len(times))
    desired, reason = planner.decide(180.0, view(1, window=window))
    assert desired == 3 and "4500 requests" in reason


def test_llm_d_saturation_scale_up_down_and_transition() -> None:
    wva = LlmdSaturation(BOUNDS)
    # Three pods, one saturated (KV 0.85); the others' spare KV (0.8 - 0.75) = 0.05 < 0.1: up to 4.
    busy = {"a": (0.85, 0.0), "b": (0.75, 0.0), "c": (0.75, 0.0)}
    assert wva.target(busy, 3) == 4
    # Spare KV 0.5 and queue 5 on each of three pods: removing one leaves 0.8 - 0.3 x 1.5 = 0.35
    # and 5 - 0 = 5 spare: down to 2.
    idle = {"a": (0.3, 0.0), "b": (0.3, 0.0), "c": (0.3, 0.0)}
    assert wva.target(idle, 3) == 2
    # A pod not reporting yet (loading): the model is in transition, nothing changes.
    assert wva.target({"a": (0.3, 0.0), "b": (0.3, 0.0)}, 3) == 3
    # The chart's HPA turns the target into the count: 4 on 3 replicas is 1.33, beyond the 10%.
    desired, _ = wva.decide(0.0, view(3, kv={"a": 0.85, "b": 0.75, "c": 0.75}))
    assert wva.wva_desired == 4 and desired == 4
    # 11 asked on 10 replicas is within the HPA's 10% tolerance: no change.
    wva = LlmdSaturation(BOUNDS)
    pods = {f"p{i}": 0.79 for i in range(10)}
    desired, _ = wva.decide(0.0, view(10, kv=pods))
    assert wva.wva_desired == 11 and desired == 10


def test_every_peer_is_built_by_name() -> None:
    for name in PEER_NAMES:
        autoscaler = build_autoscaler(
            name,
            policy=AutoscalingPolicy(),
            capacity_per_instance=10.0,
            load_time_seconds=100.0,
            bounds=BOUNDS,
            latency_slo_seconds=0.5,
            peak_replicas=4,
        )
        assert autoscaler.name == name and autoscaler.interval_seconds > 0


def test_bound_starts_each_instance_one_start_time_before_it_is_needed() -> None:
    # 10 QPS, then 40 at t = 600 s; 10 QPS per instance, 100 s to start, steps of 5 s.
    trace = Trace("step", (0.0, 600.0, 601.0, 1200.0), (10.0, 10.0, 40.0, 40.0))
    bound = ClairvoyantBound(trace, true_capacity_per_instance=10.0, start_seconds=100.0, bounds=BOUNDS)
    assert bound.needed(10.0) == 2 and bound.needed(40.0) == 5  # ceil(1.05 x qps / 10)
    assert bound.initial_replicas() == 2
    asked = {t: bound.decide(t, view(2))[0] for t in (0.0, 480.0, 495.0, 500.0, 600.0)}
    # Within 105 s (the start time and a step) of the rise it asks for the 5.
    assert asked == {0.0: 2, 480.0: 2, 495.0: 5, 500.0: 5, 600.0: 5}
    assert math.isclose(bound.interval_seconds, 5.0)
