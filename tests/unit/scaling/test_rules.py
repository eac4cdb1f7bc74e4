"""The named rules of decide_replicas, one class each, with the arithmetic in the comments."""

from __future__ import annotations

import pytest

from gpupool.scaling import MetricsWindow, ScalerState
from gpupool.scaling.history import STEP_SECONDS, DemandHistory
from gpupool.scaling.state import ScaleEvent

from .test_decide import CAPACITY, LOAD_TIME, NOW, POLICY, REACTIVE, decide, window


def after_scale_down(seconds_ago: float, before: int = 4, after: int = 2) -> ScalerState:
    at = NOW - seconds_ago
    return ScalerState(
        events=[ScaleEvent(time=at, from_replicas=before, to_replicas=after)], last_scale_down_time=at
    )


def growing(per_second: float, base: float = 0.0) -> object:
    return lambda t: base + max(0.0, (t - (NOW - 60)) * per_second)


# 2 instances serve 20 QPS; 12 QPS finish: 60%. The queue holds 12 per instance (limit 5) and grows
# 0.2/s: the requests of the two instances just removed, queueing again.
QUEUE = growing(0.2, base=24.0)


class TestHoldAfterScaleDown:
    def test_no_scale_up_on_the_queue_right_after_its_own_scale_down(self) -> None:
        decision = decide(window(12.0, waiting=QUEUE), 2, state=after_scale_down(2.0))  # type: ignore[arg-type]
        assert decision.desired == 2
        assert not decision.overload
        assert any(r.startswith("hold-after-scale-down") for r in decision.rules)
        assert "hold-after-scale-down" in decision.reason

    def test_the_same_queue_without_a_recent_scale_down_adds_a_step(self) -> None:
        decision = decide(window(12.0, waiting=QUEUE), 2, state=after_scale_down(61.0))  # type: ignore[arg-type]
        assert decision.desired == 6 and decision.overload
        assert not any(r.startswith("hold-after-scale-down") for r in decision.rules)

    def test_demand_over_the_target_still_scales_up_within_the_hold(self) -> None:
        # 19 QPS finish on 2 instances: 95% > 80%: ceil(19 / 8) = 3, whatever the queue does.
        decision = decide(window(19.0, waiting=QUEUE), 2, state=after_scale_down(2.0))  # type: ignore[arg-type]
        assert decision.desired == 3

    def test_no_scale_up_on_a_rising_trend_right_after_its_own_scale_down(self) -> None:
        # A ramp from 8 to 14 QPS over the trend window on 2 instances: 70% now, but the trend
        # forecasts 17.4 QPS within the horizon (87%), which would add one. Within the hold after
        # its own scale-down the trend is left out: the rate falling from the removed instances'
        # level, or their requests finishing on the others, is no new demand.
        ramp = window(lambda t: 8.0 + max(0.0, min(6.0, (t - (NOW - 240)) * 6.0 / 240)))
        assert decide(ramp, 2, policy=POLICY).desired == 3
        held = decide(ramp, 2, state=after_scale_down(2.0), policy=POLICY)
        assert held.desired == 2 and held.direction == "Hold"

    def test_a_late_first_token_still_counts_within_the_hold(self) -> None:
        # 12 QPS late on 2 instances: 6 QPS each within the SLO, 12 / (0.8 x 6) needs 3.
        decision = decide(window(12.0, ttft=0.9), 2, state=after_scale_down(2.0))
        assert decision.desired == 3 and decision.overload


def history(values: list[float], end: float = NOW) -> DemandHistory:
    """A finished history of one value a minute that ends at `end`."""
    return DemandHistory(start=end - STEP_SECONDS * len(values), values=values)


def bursts(minutes_to_next: int, points: int = 240) -> list[float]:
    """60 QPS for 3 minutes every 20 minutes over 10 QPS, one value a minute up to NOW, the next
    burst `minutes_to_next` minutes after NOW."""
    start = points + minutes_to_next
    return [60.0 if (i - start) % 20 < 3 else 10.0 for i in range(points)]


class TestSkiRental:
    def test_keeps_an_instance_needed_again_within_twice_the_load_time(self) -> None:
        # 10 QPS on 9 instances (90 QPS) is 11%: the load says 2. But one period (20 min) ago a
        # burst of 80 QPS came 4 min later, more than 8 instances serve at the 1 / 1.05 a demand the
        # period announced is sized at (76.2 QPS): beyond the forecast's horizon (135 s and a
        # minute), within the break-even of 2 x 120 s.
        values = [80.0 if v > 10 else v for v in bursts(4)]
        state = ScalerState(demand_history=history(values), period_seconds=1200.0)
        decision = decide(window(10.0), 9, state=state, policy=POLICY)
        assert decision.desired == 9
        assert any(r.startswith("ski-rental") for r in decision.rules)

    def test_lets_it_go_when_the_next_need_is_further_than_the_break_even(self) -> None:
        # Right after a burst the next one is 17 min away: far beyond 240 s.
        values = [70.0 if v > 10 else v for v in bursts(17)]
        state = ScalerState(demand_history=history(values), period_seconds=1200.0)
        decision = decide(window(10.0), 9, state=state, policy=POLICY)
        assert decision.desired == 8
        assert not any(r.startswith("ski-rental") for r in decision.rules)

    def test_without_a_period_the_mean_wait_of_the_history_decides(self) -> None:
        # Demand crossing what 8 instances serve (64 QPS) every other minute: in each gap the need
        # came back after 60 s, within the 480 s (4 load times) a return is weighed against.
        values = [70.0 if i % 2 else 10.0 for i in range(120)]
        state = ScalerState(demand_history=history(values))
        decision = decide(window(10.0), 9, state=state, policy=POLICY)
        assert decision.desired == 9
        assert "needed again 60 s later on average" in decision.reason

    def test_a_gap_longer_than_any_seen_before_lets_it_go(self) -> None:
        # The same minute-long dips, then 3 minutes without the need: no gap of the history lasted
        # that long, so they say nothing of when it comes back, and 180 s is beyond the one load
        # time (120 s) an unseen return is worth.
        values = [70.0 if i % 2 else 10.0 for i in range(120)] + [10.0] * 3
        state = ScalerState(demand_history=history(values))
        decision = decide(window(10.0), 9, state=state, policy=POLICY)
        assert decision.desired == 8
        assert not any(r.startswith("ski-rental") for r in decision.rules)

    def test_the_gaps_as_long_as_this_one_say_when_it_comes_back(self) -> None:
        # Gaps of 1 and of 6 minutes; 2 minutes into this one, only the 6-minute gaps still count:
        # the need came back 4 minutes later, 240 s, within 480 s.
        block = [70.0, 10.0, 70.0] + [10.0] * 6
        values = block * 10 + [70.0, 10.0, 10.0]
        state = ScalerState(demand_history=history(values))
        decision = decide(window(10.0), 9, state=state, policy=POLICY)
        assert decision.desired == 9
        assert "needed again 240 s later on average" in decision.reason

    def test_without_a_return_seen_it_keeps_the_instance_for_the_break_even(self) -> None:
        # 70 QPS for an hour, then 10 QPS: the need never came back, so the instance stays for the
        # break-even of a cold start (1.5 load times, 180 s) after the last minute that needed it,
        # and goes after.
        for minutes in (1, 2):
            recent = ScalerState(demand_history=history([70.0] * 60 + [10.0] * minutes))
            decision = decide(window(10.0), 9, state=recent, policy=POLICY)
            assert decision.desired == 9
            assert f"needed {60 * minutes} s ago" in decision.reason
        later = ScalerState(demand_history=history([70.0] * 60 + [10.0] * 3))
        assert decide(window(10.0), 9, state=later, policy=POLICY).desired == 8

    def test_a_first_rise_is_no_return(self) -> None:
        # Two hours at 10 QPS, then a step to 70 QPS, and 3 minutes back at 10: the wait before the
        # step is when a need first came, not when it came back; no gap ended between two needs,
        # and 180 s since the last one is the break-even of 1.5 load times: it goes.
        state = ScalerState(demand_history=history([10.0] * 120 + [70.0] * 30 + [10.0] * 3))
        assert decide(window(10.0), 9, state=state, policy=POLICY).desired == 8

    def test_the_kept_count_is_no_recommendation_the_stabilisation_window_holds(self) -> None:
        # While the ski-rental keeps 9, what the metrics ask for (fewer) is what the scale-down
        # window remembers: once the break-even has passed the instance goes at once, not another
        # 300 s later (the window would otherwise hold the kept 9 as a recommendation).
        state = ScalerState(demand_history=history([70.0] * 60 + [10.0] * 1))
        first_down = None
        for step in range(40):
            now = NOW + 15.0 * step
            decision = decide(window(10.0, now=now), 9, state=state, policy=POLICY, now=now)
            state = decision.state
            if step == 0:
                assert decision.desired == 9 and decision.recommendation < 9
                assert state.recommendations[-1].replicas == decision.recommendation
            if decision.desired < 9:
                first_down = now
                break
        # The need ended at the end of the history's last 70 QPS minute, NOW - 60; 180 s later the
        # break-even has passed.
        assert first_down is not None and first_down <= NOW + 135.0

    def test_off_without_prediction(self) -> None:
        values = [70.0 if v > 10 else v for v in bursts(3)]
        state = ScalerState(demand_history=history(values), period_seconds=1200.0)
        assert decide(window(10.0), 9, state=state, policy=REACTIVE).desired == 8


class TestPeriod:
    def test_starts_instances_one_load_time_before_a_repeated_burst(self) -> None:
        # One period (20 min) ago the burst of 60 QPS began 2 min later: inside the horizon of the
        # load time + one interval, 135 s; a demand the period announced is served at 1 / 1.05 of
        # the capacity: ceil(60 / 9.52) = 7 (at the 80% target it would be 8).
        state = ScalerState(demand_history=history(bursts(2)), period_seconds=1200.0)
        decision = decide(window(10.0), 2, state=state, policy=POLICY)
        assert decision.desired == 6  # +4 per 30 s (scaleUpStep) toward 7
        assert decision.recommendation == 7
        assert any(r.startswith("period") for r in decision.rules)

    def test_quiet_when_no_burst_is_due(self) -> None:
        state = ScalerState(demand_history=history(bursts(10)), period_seconds=1200.0)
        decision = decide(window(10.0), 2, state=state, policy=POLICY)
        assert decision.desired == 2 and not decision.rules

    def test_a_repeated_burst_is_served_at_the_bound_s_margin(self) -> None:
        # Inside a burst of 60 QPS that one period ago came at this very time: the rate rose from
        # 10 QPS over the last 4 minutes, and the trend alone would size for more. What the period
        # announced is no surprise: 60 QPS at 1 / 1.05 of the capacity, ceil(60 / 9.52) = 7
        # (ceil(60 / 8) = 8 at the target, more with the trend).
        rise = window(lambda t: 10.0 + max(0.0, min(50.0, (t - (NOW - 240)) * 50.0 / 240)))
        state = ScalerState(demand_history=history(bursts(0)), period_seconds=1200.0)
        decision = decide(rise, 7, state=state, policy=POLICY)
        assert decision.recommendation == 7 and decision.desired == 7
        assert any("what one period ago announced" in r for r in decision.rules)
        unannounced = decide(rise, 7, state=ScalerState(), policy=POLICY)
        assert unannounced.recommendation > 8

    def test_a_demand_beyond_the_announced_one_is_sized_at_the_target(self) -> None:
        # 80 QPS where one period ago 60 came: beyond 5% more, so a surprise: ceil(80 / 8) = 10.
        state = ScalerState(demand_history=history(bursts(0)), period_seconds=1200.0)
        decision = decide(window(80.0), 7, state=state, policy=POLICY)
        assert decision.recommendation == 10
        assert not any("announced" in r for r in decision.rules)

    def test_the_announced_count_is_where_a_scale_down_lands(self) -> None:
        # 9 instances hold the 60 QPS burst that one period ago came at this time: 67% of their
        # capacity, inside the band, where a surprise would hold. Announced, 7 serve it: down one.
        state = ScalerState(demand_history=history(bursts(0)), period_seconds=1200.0)
        decision = decide(window(60.0), 9, state=state, policy=POLICY)
        assert decision.recommendation == 7 and decision.desired == 8


class TestBurstHeadroom:
    def test_holds_the_learned_rise_within_one_load_time(self) -> None:
        # 30 QPS needs ceil(30 / 8) = 4 at the target; a learned rise of 20 QPS within the horizon
        # must fit at full capacity: ceil(50 / 10) = 5.
        state = ScalerState(burst_rise_qps=20.0)
        decision = decide(window(30.0), 4, state=state, policy=POLICY)
        assert decision.recommendation == 5
        assert any(r.startswith("burst-headroom") for r in decision.rules)

    def test_a_small_rise_fits_in_the_target_headroom(self) -> None:
        # 30 + 5 = 35 QPS at full capacity needs 4, as the target does: no rule.
        decision = decide(window(30.0), 4, state=ScalerState(burst_rise_qps=5.0), policy=POLICY)
        assert decision.desired == 4 and not decision.rules

    def test_a_known_rise_replaces_the_target_s_margin(self) -> None:
        # 50 QPS needs ceil(50 / 8) = 7 at the target. With a learned rise of 2 QPS, 6 instances
        # hold the 52 QPS at 1 / 1.05 of their capacity (57.1 QPS): 6, up and down.
        state = ScalerState(burst_rise_qps=2.0)
        up = decide(window(50.0), 5, state=state, policy=POLICY)
        assert up.recommendation == 6 and up.desired == 6
        lean = "burst-headroom: 6 instance(s) serve 50.0 QPS and the rise of 2.0"
        assert any(r.startswith(lean) for r in up.rules)
        down = decide(window(50.0), 7, state=state, policy=POLICY)
        assert down.recommendation == 6 and down.desired == 6
        assert decide(window(50.0), 5, state=ScalerState(), policy=POLICY).recommendation == 7

    def test_a_larger_known_rise_keeps_its_room(self) -> None:
        # A rise of 15 QPS: 65 QPS at 1 / 1.05 of the capacity needs 7, as the target does.
        decision = decide(window(50.0), 5, state=ScalerState(burst_rise_qps=15.0), policy=POLICY)
        assert decision.recommendation == 7

    def test_not_while_overloaded(self) -> None:
        # First tokens late: the overload step decides, not the lean count.
        state = ScalerState(burst_rise_qps=2.0)
        decision = decide(window(50.0, ttft=0.9), 7, state=state, policy=POLICY)
        assert decision.desired >= 7
        assert not any(r.startswith("burst-headroom") for r in decision.rules)


class TestLiveDemand:
    def test_sizes_the_first_step_from_running_and_queued_requests(self) -> None:
        # The one-minute rate still says 20 QPS (the jump is 15 s old) on 3 instances. 240 requests
        # run, 6 s each: 40 QPS finish now; the queue grew from 0 to 30 over the last two
        # evaluations (30 s), 1/s; its 30 requests drain over the 135 s horizon: 0.2/s.
        # 41.2 QPS at 80% -> ceil(41.2 / 8) = 6; the queue's overload step (+4) asks 7, and the
        # larger wins.
        w = window(20.0, waiting=lambda t: 0.0 if t < NOW - 15 else 30.0)
        w = w.model_copy(update={"running_requests": [240.0] * len(w.timestamps)})
        state = ScalerState(batch_seconds=6.0)
        decision = decide(w, 3, state=state, policy=REACTIVE)
        assert decision.recommendation == 7
        assert any(r.startswith("live-demand: 41.2 QPS") for r in decision.rules)

    def test_sizes_beyond_the_step_when_the_jump_is_larger(self) -> None:
        # 480 running: 80 QPS finish now, plus 1/s growth and 0.2/s backlog: ceil(81.2 / 8) = 11.
        w = window(20.0, waiting=lambda t: 0.0 if t < NOW - 15 else 30.0)
        w = w.model_copy(update={"running_requests": [480.0] * len(w.timestamps)})
        decision = decide(w, 3, state=ScalerState(batch_seconds=6.0), policy=REACTIVE)
        assert decision.recommendation == 11

    def test_learns_the_batch_time_in_a_calm_moment(self) -> None:
        w = window(20.0)
        w = w.model_copy(update={"running_requests": [120.0] * len(w.timestamps)})
        decision = decide(w, 3, policy=REACTIVE)
        assert decision.state.batch_seconds == pytest.approx(6.0)


class TestFastRise:
    def late(self, running: float) -> MetricsWindow:
        # 5 instances finish 35 QPS over the last minute, no queue, the p99 first token late in this
        # evaluation only; `running` requests in the batch, 6 s each.
        w = window(35.0, ttft=lambda t: 0.6 if t >= NOW else 0.1)
        return w.model_copy(update={"running_requests": [running] * len(w.timestamps)})

    def test_a_live_rate_ahead_of_the_minute_s_measures_no_capacity_and_sizes_the_step(self) -> None:
        # 420 running over 6 s: 70 QPS complete now, above 1.5 x 35 + 0.5: a burst began seconds
        # ago, and the late first token is its queue, not the instances' limit. No capacity
        # learned, and the step is sized from the live rate: ceil(70 / 8) = 9.
        decision = decide(self.late(420.0), 5, state=ScalerState(batch_seconds=6.0), policy=REACTIVE)
        assert decision.state.capacity_per_instance is None
        assert any(r.startswith("fast-rise: 70.0 QPS") for r in decision.rules)
        assert any(r.startswith("live-demand: 70.0 QPS") for r in decision.rules)
        assert decision.recommendation == 9 and decision.desired == 9

    def test_a_live_rate_near_the_minute_s_is_no_rise(self) -> None:
        # 240 running: 40 QPS complete now, within 1.5 x 35: the instances are at the SLO's edge at
        # 7 QPS each (the single late p99 of learned-capacity), and the latency step sizes from it.
        decision = decide(self.late(240.0), 5, state=ScalerState(batch_seconds=6.0), policy=REACTIVE)
        assert decision.state.capacity_per_instance == pytest.approx(7.0)
        assert not any(r.startswith("fast-rise") for r in decision.rules)
        assert decision.recommendation == 7


def saturated_window(qps: float) -> MetricsWindow:
    """Instances finishing `qps`, a queue growing 1/s over 8 per instance, first tokens late."""
    return window(qps, waiting=growing(1.0, base=40.0), ttft=0.4)  # type: ignore[arg-type]


class TestLearnedCapacity:
    def test_a_saturated_instance_shows_its_real_capacity(self) -> None:
        # 5 instances finish 35 QPS while the queue grows: 7 per instance at saturation, 6.3 within
        # the SLO (90%): proof the plan's 10 is too high, taken at once.
        decision = decide(saturated_window(35.0), 5, policy=REACTIVE)
        assert decision.state.capacity_per_instance == pytest.approx(6.3)
        # The next evaluation sizes with it.
        again = decide(saturated_window(35.0), 5, state=decision.state, policy=REACTIVE, now=NOW)
        assert any(r.startswith("learned-capacity: 6.30") for r in again.rules)

    def test_not_while_instances_start_or_right_after_a_change(self) -> None:
        assert decide(saturated_window(35.0), 5, ready=4, policy=REACTIVE).state.capacity_per_instance is None
        recent = ScalerState(events=[ScaleEvent(time=NOW - 30, from_replicas=4, to_replicas=5)])
        decision = decide(saturated_window(35.0), 5, state=recent, policy=REACTIVE)
        assert decision.state.capacity_per_instance is None

    def test_a_queue_with_prompt_first_tokens_is_no_saturation(self) -> None:
        w = window(35.0, waiting=growing(1.0, base=40.0), ttft=0.1)  # type: ignore[arg-type]
        assert decide(w, 5, policy=REACTIVE).state.capacity_per_instance is None

    def test_more_than_planned_without_overload_raises_it(self) -> None:
        # 5 instances finish 60 QPS (12 each) with no queue and first tokens as prompt as on an idle
        # instance (no slowdown to read): 11 after one step.
        decision = decide(window(60.0, ttft=0.05), 5, policy=REACTIVE, max_replicas=5)
        assert decision.state.capacity_per_instance == pytest.approx(11.0)

    def test_one_late_first_token_without_a_queue_at_a_steady_count(self) -> None:
        # 5 instances finish 35 QPS, no queue, and the p99 first token turns late in this evaluation
        # only: they are at the SLO's edge, 7 QPS each, taken at once (no margin: it is the SLO's own).
        w = window(35.0, ttft=lambda t: 0.6 if t >= NOW else 0.1)
        assert decide(w, 5, policy=REACTIVE).state.capacity_per_instance == pytest.approx(7.0)
        # A scale-down 90 s ago leaves the rest serving: a rate window later it is steady again...
        down = ScalerState(
            events=[ScaleEvent(time=NOW - 90, from_replicas=6, to_replicas=5)], last_scale_down_time=NOW - 90
        )
        assert decide(w, 5, state=down, policy=REACTIVE).state.capacity_per_instance == pytest.approx(7.0)
        # ...but a scale-up 90 s ago has instances that loaded within the rate window: no reading.
        up = ScalerState(
            events=[ScaleEvent(time=NOW - 90, from_replicas=4, to_replicas=5)], last_scale_up_time=NOW - 90
        )
        assert decide(w, 5, state=up, policy=REACTIVE).state.capacity_per_instance is None

    def test_the_slowdown_of_first_tokens_shows_a_higher_capacity(self) -> None:
        # 5 instances finish 30 QPS (6 each) with a p99 first token of 80 ms. An idle instance's p99
        # is 0.5 x (1 - 1/1.1) = 45.5 ms, so the slowdown 1 / (1 - rho) is 1.76: rho = 0.432, the
        # saturation rate 6 / 0.432 = 13.9 QPS, and the SLO holds up to 13.9 / 1.1 = 12.6 QPS.
        decision = decide(window(30.0, ttft=0.08), 5, policy=REACTIVE)
        seen = 6.0 / (1 - 0.5 * (1 - 1 / 1.1) / 0.08) / 1.1
        assert seen == pytest.approx(12.63, abs=0.01)
        # One reading moves the plan's 10 a fifth of the way there.
        assert decision.state.capacity_per_instance == pytest.approx(10 + 0.2 * (seen - 10))

    def test_a_slowdown_that_says_less_changes_nothing(self) -> None:
        # 6 QPS each at a p99 of 0.2 s says 6 / (1 - 0.0455 / 0.2) / 1.1 = 7.06 QPS, below the
        # plan's 10: a minute's p99 that still holds a queue, or one read in vLLM's coarse buckets,
        # reads high. Only saturation lowers the capacity.
        assert decide(window(30.0, ttft=0.2), 5, policy=REACTIVE).state.capacity_per_instance is None


def test_the_history_keeps_arrivals_not_the_retries_of_time_outs() -> None:
    # 30 QPS finish, half of them time-outs: each is counted as it ends and again as its client
    # retries, so the arrivals are 30 / (1 + 0.5) = 20 QPS. The history remembers those, not a
    # need the retries made up; below maxErrorRate the finished rate is the arrivals.
    timing_out = decide(window(30.0, errors=0.5), 4, policy=POLICY)
    assert timing_out.state.demand_history is not None
    assert timing_out.state.demand_history.values == [20.0]
    calm = decide(window(30.0, errors=0.005), 4, policy=POLICY)
    assert calm.state.demand_history is not None and calm.state.demand_history.values == [30.0]


def test_history_survives_in_the_state() -> None:
    decision = decide(window(30.0), 4, policy=POLICY)
    wire = decision.state.to_wire()
    again = ScalerState.model_validate(wire)
    assert again.demand_history is not None and again.demand_history.values == [30.0]
    assert LOAD_TIME and CAPACITY  # the shared figures of test_decide


class TestTimeOuts:
    def test_retries_of_timed_out_requests_add_no_instance_while_others_start(self) -> None:
        # 100 QPS finish, half of them time-outs, on 6 asked instances of which 2 serve: at the 80%
        # target 100 QPS needs 13, but each time-out comes back as a retry, which goes once the 4
        # starting instances serve. Sized at full capacity: ceil(100 / 10) = 10.
        decision = decide(window(100.0, errors=0.5), 6, ready=2, policy=REACTIVE)
        assert decision.recommendation == 10
        assert any(r.startswith("time-outs: 50% of requests") for r in decision.rules)
        # Without time-outs, or with every instance serving, the target sizes it: 13.
        assert decide(window(100.0), 6, ready=2, policy=REACTIVE).recommendation == 13
        assert decide(window(100.0, errors=0.5), 6, policy=REACTIVE).recommendation == 13
