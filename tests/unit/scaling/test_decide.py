"""decide_replicas: hand-checked decisions, with the arithmetic in the comments."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from gpupool.scaling import (
    AutoscalingPolicy,
    Direction,
    MetricsWindow,
    ScalerState,
    ScalingDecision,
    decide_replicas,
    instances_for,
)
from gpupool.scaling.state import Recommendation, ScaleEvent

NOW = 10_000.0
CAPACITY = 10.0  # QPS per instance
LOAD_TIME = 120.0
SLO = 0.5
POLICY = AutoscalingPolicy(enabled=True)
REACTIVE = AutoscalingPolicy(enabled=True, predictive=False)

Series = float | list[float] | Callable[[float], float] | None


def window(
    qps: Series = 30.0,
    *,
    now: float = NOW,
    seconds: float = 600.0,
    waiting: Series = 0.0,
    kv: Series = 0.3,
    utilization: Series = 0.95,
    ttft: Series = 0.1,
    errors: Series = 0.0,
    history: tuple[list[float], list[float]] = ([], []),
) -> MetricsWindow:
    """Samples every 15 s over the last `seconds`; a signal is a constant, a list, a function of
    time, or None (not exported)."""
    times = [now - seconds + 15.0 * i for i in range(int(seconds / 15) + 1)]

    def series(value: Series) -> list[float] | None:
        if value is None:
            return None
        if isinstance(value, list):
            return value
        if callable(value):
            return [value(t) for t in times]
        return [float(value)] * len(times)

    return MetricsWindow(
        model="chat",
        timestamps=times,
        qps=series(qps),
        waiting_requests=series(waiting),
        kv_cache_usage=series(kv),
        accelerator_utilization=series(utilization),
        ttft_p99_seconds=series(ttft),
        error_rate=series(errors),
        qps_history_timestamps=history[0],
        qps_history=history[1],
    )


def decide(
    w: MetricsWindow,
    current: int,
    *,
    ready: int | None = None,
    state: ScalerState | None = None,
    policy: AutoscalingPolicy = REACTIVE,
    now: float = NOW,
    min_replicas: int = 1,
    max_replicas: int | None = None,
) -> ScalingDecision:
    return decide_replicas(
        w,
        state or ScalerState(),
        current,
        current if ready is None else ready,
        CAPACITY,
        LOAD_TIME,
        policy,
        now,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        latency_slo_seconds=SLO,
    )


class TestInstancesFor:
    def test_ceil_of_demand_over_capacity_at_the_target(self) -> None:
        # 30 QPS / (10 x 0.8) = 3.75 -> 4
        assert instances_for(30, 10, 0.8) == 4
        # 24 / 8 is 3.0000000000000004 in floating point; the answer is 3.
        assert instances_for(24, 10, 0.8) == 3
        assert instances_for(0, 10, 0.8) == 0


class TestScaleUp:
    def test_to_the_count_the_target_needs(self) -> None:
        # 30 QPS on 3 instances of 10 QPS is 100% > 80%: ceil(30 / 8) = 4 instances.
        decision = decide(window(30.0), 3)
        assert decision.desired == 4
        assert decision.direction is Direction.UP
        assert decision.signals.load == pytest.approx(1.0)
        assert "30.0 QPS" in decision.reason and "100%" in decision.reason
        assert decision.metrics_available

    def test_rate_limited_to_the_step_per_period(self) -> None:
        # 100 QPS needs ceil(100 / 8) = 13; at most +4 per 30 s.
        first = decide(window(100.0), 2)
        assert first.desired == 6 and "scale-up rate" in first.reason
        # 15 s later the period still holds the 4 added: no more.
        second = decide(window(100.0, now=NOW + 15), 6, ready=2, state=first.state, now=NOW + 15)
        assert second.desired == 6
        # 31 s after the first, 4 more.
        third = decide(window(100.0, now=NOW + 31), 6, ready=2, state=second.state, now=NOW + 31)
        assert third.desired == 10

    def test_queue_growth_counts_as_demand(self) -> None:
        # 63.5 QPS finish on 8 instances (80 QPS): 79.4%, under the target. But the queue grew from
        # 0 to 36 over the last minute (4.5 per instance, not yet an overload): 0.6 more requests
        # arrive per second than finish, so demand is 64.1 QPS, 80.1% -> ceil(64.1 / 8) = 9.
        waiting = lambda t: max(0.0, (t - (NOW - 60)) * 0.6)  # noqa: E731
        assert decide(window(63.5), 8).desired == 8
        decision = decide(window(63.5, waiting=waiting), 8)
        assert decision.signals.queue_growth_per_second == pytest.approx(0.6)
        assert decision.signals.demand_qps == pytest.approx(64.1)
        assert not decision.overload and decision.desired == 9

    def test_queue_growth_below_the_floor_is_a_steady_queue(self) -> None:
        # The same queue growing 0.2/s is under the floor of 5% of one instance (0.5/s): the gauge
        # of a busy engine moves that much on its own, so demand stays what finished.
        waiting = lambda t: max(0.0, (t - (NOW - 60)) * 0.2)  # noqa: E731
        decision = decide(window(23.9, waiting=waiting), 3)
        assert decision.signals.queue_growth_per_second == pytest.approx(0.2)
        assert decision.signals.demand_qps == pytest.approx(23.9)
        assert decision.desired == 3 and "queue growing" not in decision.reason

    @pytest.mark.parametrize(
        ("signals", "words"),
        [
            ({"waiting": 25.0}, "waiting per Ready instance"),
            ({"kv": 0.95}, "KV cache 95% full"),
        ],
    )
    def test_a_primary_overload_signal_adds_one_step(self, signals: dict[str, float], words: str) -> None:
        # 28 QPS on 4 instances is 70%: demand alone would hold; overload adds scaleUpStep (4).
        decision = decide(window(28.0, **signals), 4)  # type: ignore[arg-type]
        assert decision.desired == 8
        assert any(words in o for o in decision.overload)

    def test_late_first_tokens_without_a_queue_size_the_step_from_what_the_instances_finish(self) -> None:
        # 28 QPS on 4 instances with first tokens late: they serve about 7 QPS each within the SLO,
        # so 28 QPS at 80% of that needs 5, not the 8 of a fixed step.
        decision = decide(window(28.0, ttft=0.9), 4)
        assert any("900 ms over the 500 ms SLO" in o for o in decision.overload)
        assert decision.desired == 5
        assert any(r.startswith("latency-step: first tokens late at 7.00 QPS") for r in decision.rules)

    def test_late_first_tokens_at_a_low_rate_add_at_least_one_instance(self) -> None:
        decision = decide(window(8.0, ttft=0.9), 4)
        assert decision.desired == 5

    def test_late_first_tokens_with_a_queue_add_the_whole_step(self) -> None:
        decision = decide(window(28.0, ttft=0.9, waiting=25.0), 4)
        assert decision.desired == 8
        assert not any(r.startswith("latency-step") for r in decision.rules)

    def test_late_first_tokens_just_after_instances_became_ready_add_none(self) -> None:
        # The p99 of the last minute still holds the requests served before the 5th was Ready.
        state = ScalerState(ready_replicas=4)
        decision = decide(window(35.0, ttft=0.9), 5, state=state)
        assert decision.desired == 5 and not decision.overload
        assert any(r.startswith("new-instances") for r in decision.rules)
        assert decision.state.ready_rose_time == NOW and decision.state.ready_replicas == 5
        later = decide(window(35.0, ttft=0.9, now=NOW + 45), 5, state=decision.state, now=NOW + 45)
        assert later.desired == 5 and not later.overload
        minute = decide(window(35.0, ttft=0.9, now=NOW + 75), 5, state=later.state, now=NOW + 75)
        assert minute.overload and minute.desired > 5

    def test_no_second_instance_while_one_is_starting(self) -> None:
        decision = decide(window(35.0, ttft=0.9), 5, ready=4)
        assert decision.desired == 5
        assert "still starting" in decision.reason

    def test_no_instance_for_a_backlog_that_is_draining(self) -> None:
        # 100 waiting per instance, but the queue shrinks by 1 per second: capacity catches up.
        waiting = lambda t: 1000.0 - (t - (NOW - 600))  # noqa: E731
        decision = decide(window(29.0, waiting=waiting), 4)
        assert decision.overload and decision.desired == 4
        assert "shrinking" in decision.reason

    def test_busy_accelerators_alone_do_not_scale_up(self) -> None:
        # vLLM keeps the accelerator near 100% busy at 70% of its capacity.
        assert decide(window(28.0, utilization=0.99), 4).desired == 4
        policy = AutoscalingPolicy(
            enabled=True, predictive=False, utilization_scales_up=True, scale_up_step=1
        )
        assert decide(window(28.0, utilization=0.99), 4, policy=policy).desired == 5


class TestScaleDown:
    def test_one_instance_per_period_towards_the_target(self) -> None:
        # 10 QPS on 5 instances is 20% < 60%: the target needs ceil(10 / 8) = 2; -1 per 60 s.
        decision = decide(window(10.0), 5)
        assert decision.recommendation == 2
        assert decision.desired == 4
        assert decision.direction is Direction.DOWN

    def test_held_by_a_higher_recommendation_within_the_window(self) -> None:
        state = ScalerState(recommendations=[Recommendation(time=NOW - 200, replicas=5)])
        decision = decide(window(10.0), 5, state=state)
        assert decision.desired == 5
        assert "stabilisation" in decision.reason
        # Once that recommendation is older than 300 s, down it goes.
        state = ScalerState(recommendations=[Recommendation(time=NOW - 301, replicas=5)])
        assert decide(window(10.0), 5, state=state).desired == 4

    def test_cool_down_after_a_scale_up(self) -> None:
        state = ScalerState(
            events=[ScaleEvent(time=NOW - 100, from_replicas=4, to_replicas=5)],
            last_scale_up_time=NOW - 100,
        )
        decision = decide(window(10.0), 5, state=state)
        assert decision.desired == 5 and "cool-down" in decision.reason

    def test_within_the_band_when_fewer_hold_it_midway(self) -> None:
        # 28 QPS on 5 instances is 56%, below 60%: -1. 62 QPS on 10 is 62%, inside the band, but 9
        # hold it at 69%, under the midway 70%: -1 too. 64 QPS would be 71% on 9: hold.
        assert decide(window(28.0), 5).desired == 4
        assert decide(window(62.0), 10).desired == 9
        assert decide(window(64.0), 10).direction is Direction.HOLD

    def test_the_highest_demand_of_the_window_sets_the_landing(self) -> None:
        # 62 QPS now on 10 instances, but 66 QPS four minutes ago, within the 300 s window, would
        # be 73% on 9: hold. Once 66 QPS is older than the window, 9.
        w = window(lambda t: 66.0 if t < NOW - 200 else 62.0)
        assert decide(w, 10).direction is Direction.HOLD
        w = window(lambda t: 66.0 if t < NOW - 310 else 62.0)
        assert decide(w, 10).desired == 9

    def test_never_below_what_the_target_needs(self) -> None:
        # 25 QPS on 6 instances is 42%; removing 4 at once would leave 2 at 125%: the target needs
        # ceil(25 / 8) = 4, which serve it at 62.5%.
        decision = decide(window(25.0), 6, policy=REACTIVE.model_copy(update={"scale_down_step": 4}))
        assert decision.desired == 4

    def test_errors_block_scale_down(self) -> None:
        decision = decide(window(10.0, errors=0.05), 5)
        assert decision.desired == 5 and "error rate 5.0%" in decision.reason

    def test_idle_model_goes_to_min_replicas(self) -> None:
        # No request finished: latency and error rate have no samples, which is no gap.
        decision = decide(window(0.0, ttft=math.nan, errors=math.nan), 2, min_replicas=1)
        assert decision.metrics_available
        assert decision.desired == 1


class TestMissingMetrics:
    @pytest.mark.parametrize(
        ("qps", "status"),
        [
            ([], "no samples"),
            (math.nan, "no samples"),
            (lambda t: 5.0 if t < NOW - 120 else math.nan, "stale"),
            (-3.0, "invalid"),
            (math.inf, "invalid"),
        ],
        ids=["empty", "nan", "stale", "negative", "infinite"],
    )
    def test_hold_and_say_so(self, qps: Series, status: str) -> None:
        decision = decide(window(qps), 5)
        assert decision.desired == 5
        assert not decision.metrics_available
        assert any(status in m for m in decision.missing)
        assert "never scaling down" in decision.reason

    def test_a_stale_secondary_signal_blocks_scale_down_but_not_scale_up(self) -> None:
        kv = lambda t: 0.3 if t < NOW - 120 else math.nan  # noqa: E731
        assert decide(window(10.0, kv=kv), 5).desired == 5
        assert decide(window(60.0, kv=kv), 5).desired == 8  # ceil(60 / 8) = 8

    def test_a_signal_the_engine_does_not_export_is_not_missing(self) -> None:
        # Triton has no KV-cache gauge.
        decision = decide(window(10.0, kv=None), 5)
        assert decision.metrics_available and decision.desired == 4

    def test_present_overload_scales_up_without_traffic_metrics(self) -> None:
        decision = decide(window(math.nan, waiting=50.0), 5)
        assert decision.desired == 9 and not decision.metrics_available

    def test_bounds_still_apply(self) -> None:
        assert decide(window(math.nan), 7, max_replicas=5).desired == 5
        assert decide(window(math.nan), 1, min_replicas=2).desired == 2


class TestPredictive:
    def test_a_ramp_is_met_ahead_of_time(self) -> None:
        # +0.05 QPS per second for the last 10 minutes, 40 QPS now; the horizon is the load time
        # plus one interval, 135 s, so the forecast is about 40 + 0.05 x 135 = 46.75 QPS.
        ramp = lambda t: 40.0 + 0.05 * (t - NOW)  # noqa: E731
        reactive = decide(window(ramp), 5)
        predictive = decide(window(ramp), 5, policy=POLICY)
        assert reactive.desired == 5  # 40 / 50 = 80%: not above the target
        assert predictive.signals.forecast_qps == pytest.approx(46.75, rel=0.01)
        assert predictive.desired == 6  # ceil(46.75 / 8) = 6
        assert "trend" in predictive.reason

    def test_yesterdays_rise_is_met_ahead_of_time(self) -> None:
        # Yesterday traffic rose from 20 to 40 QPS over the 135 s that start now; today it is flat at
        # 22 QPS, so expect 22 + 20 = 42 QPS.
        day = 86_400.0
        times = [NOW - day - 300, NOW - day, NOW - day + 135, NOW - day + 300]
        values = [20.0, 20.0, 40.0, 40.0]
        decision = decide(window(22.0, history=(times, values)), 3, policy=POLICY)
        assert decision.signals.forecast_qps == pytest.approx(42.0, rel=0.02)
        assert decision.desired == 6  # ceil(42 / 8)

    def test_a_coming_rise_holds_instances_that_would_go(self) -> None:
        day = 86_400.0
        times = [NOW - day - 600 + 60 * i for i in range(20)]
        values = [10.0 if t <= NOW - day else 40.0 for t in times]
        assert decide(window(10.0), 5).desired == 4
        assert decide(window(10.0, history=(times, values)), 5, policy=POLICY).desired == 5


class TestDecisionRecord:
    def test_disabled_policy_holds(self) -> None:
        decision = decide(window(100.0), 2, policy=AutoscalingPolicy())
        assert decision.desired == 2 and "disabled" in decision.reason

    def test_serialises_and_the_state_survives_a_restart(self) -> None:
        first = decide(window(100.0), 2)
        wire = first.to_wire()
        assert wire["state"]["events"][0] == {"time": NOW, "fromReplicas": 2, "toReplicas": 6}
        restored = ScalerState.model_validate(first.state.to_wire())
        again = decide(window(100.0, now=NOW + 15), 6, ready=2, state=restored, now=NOW + 15)
        assert again.desired == 6  # the rate limit remembered the 4 added

    def test_rejects_nonsense_inputs(self) -> None:
        with pytest.raises(ValueError, match="capacity_per_instance"):
            decide_replicas(window(), ScalerState(), 1, 1, 0.0, 10, POLICY, NOW)
        with pytest.raises(ValueError, match="negative"):
            decide_replicas(window(), ScalerState(), -1, 1, 10.0, 10, POLICY, NOW)
        with pytest.raises(ValueError, match="bounds"):
            decide_replicas(
                window(), ScalerState(), 1, 1, 10.0, 10, POLICY, NOW, min_replicas=3, max_replicas=2
            )
