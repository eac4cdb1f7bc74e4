"""decide_replicas: from a window of metrics to the number of instances a model should run.

One evaluation, pure and deterministic (the clock is a parameter):

1. Read each signal; a signal the engine exports but that is empty, stale or nonsensical is
   *missing*, and with anything missing the policy never removes an instance.
2. Demand = requests finished per second + growth of the queue per second (arrivals are
   completions plus what piles up; finished requests alone understate the offered load once a
   queue forms, and overstate it while a backlog drains), or the forecast at load time + one
   interval ahead when that is higher.
3. Recommend: above `targetUtilization` of the current instances' capacity, the count that brings
   it back to the target; on a primary overload signal (queue, KV cache, latency) one step
   (`scaleUpStep`) more, unless instances are still starting or the queue is already shrinking (a
   late first token alone: the count the Ready instances' throughput calls for, and nothing for a
   minute after new instances became Ready, while the latency quantile still holds the requests
   served before them); below
   `scaleDownUtilization` (or accelerator utilisation below its down threshold), the count the
   target needs, when nothing is missing or overloaded. Once the demand history knows how far
   demand rises within a load time (burst-headroom), that rise at 1 / 1.05 of the capacity replaces
   the target's margin, up and down.
   Without traffic metrics, only present primary overload signals can scale up (one step at a
   time, waiting for starting instances), and nothing scales down.
4. Stabilise as the HPA does: scale up to the lowest and down to the highest recommendation of
   their windows; what the ski-rental keeps is a floor on that, not a recommendation the window
   would hold longer.
5. Rate-limit (step per period, cool-down after a scale-up), then clamp to the bounds, which always
   win.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from enum import StrEnum

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.scaling.forecast import Forecast, forecast_demand
from gpupool.scaling.history import STEP_SECONDS, periodic_forecast, residual_wait, since_reached
from gpupool.scaling.learning import (
    CAPACITY_RANGE,
    capacity_from_slowdown,
    measured_batch_seconds,
    measured_capacity,
    slowdown_capacity,
    with_history,
)
from gpupool.scaling.policy import AutoscalingPolicy
from gpupool.scaling.state import ScalerState
from gpupool.scaling.window import (
    MetricsWindow,
    Reading,
    Signal,
    SignalStatus,
    fresh_points,
    growth_per_second,
    read_signal,
)

# Ratios are rounded before ceil() so that 24 / (10 x 0.8) = 3.0000000000000004 needs 3 instances.
_RATIO_DECIMALS = 9

# Signals measured per finished request: without traffic they have no samples.
_PER_REQUEST = frozenset({Signal.TTFT_P99_SECONDS, Signal.ERROR_RATE})

# Queue growth is measured over at least this long: one scrape-to-scrape step is mostly noise.
_QUEUE_GROWTH_SECONDS = 60.0
# A queue that grows or shrinks by less than this share of one instance's capacity per second is
# steady: the waiting gauge of a busy engine moves by a few requests between scrapes, and over a
# minute that reads as a fraction of a request per second either way.
QUEUE_GROWTH_FLOOR_SHARE = 0.05


class Direction(StrEnum):
    UP = "Up"
    DOWN = "Down"
    HOLD = "Hold"


class SignalValues(ApiModel):
    """The numbers behind a decision; None where a signal was not available."""

    qps: float | None = Field(default=None, description="Requests finished per second.")
    queue_growth_per_second: float | None = Field(
        default=None, description="Growth of the waiting queue, requests per second (negative: draining)."
    )
    forecast_qps: float | None = Field(default=None, description="Demand forecast at the horizon.")
    demand_qps: float | None = Field(default=None, description="Demand the instance count is sized for.")
    capacity_qps: float = Field(description="What the current instances serve: current x qpsPerInstance.")
    load: float | None = Field(default=None, description="demand / capacity.")
    waiting_per_instance: float | None = Field(
        default=None, description="Queued requests per Ready instance."
    )
    kv_cache_usage: float | None = Field(default=None, description="Mean KV-cache usage, 0-1.")
    accelerator_utilization: float | None = Field(default=None, description="Mean utilisation, 0-1.")
    ttft_p99_seconds: float | None = Field(default=None, description="p99 time to first token.")
    error_rate: float | None = Field(default=None, description="Share of failed requests.")


class ScalingDecision(ApiModel):
    """What to do, why (with the numbers), and the state to keep for the next evaluation."""

    desired: int = Field(ge=0, description="Instances to run.")
    current: int = Field(ge=0, description="Instances asked for before this decision.")
    ready: int = Field(ge=0, description="Instances serving when it was made.")
    recommendation: int = Field(ge=0, description="What the metrics asked for, before stabilisation.")
    direction: Direction = Field(description="Up, Down or Hold.")
    reason: str = Field(description="One paragraph with the numbers that drove the decision.")
    metrics_available: bool = Field(
        description="False when an expected signal was empty, stale or nonsensical."
    )
    missing: list[str] = Field(default_factory=list, description="The unusable signals and why.")
    overload: list[str] = Field(default_factory=list, description="Overload signals that fired.")
    limits: list[str] = Field(default_factory=list, description="What held the count back.")
    rules: list[str] = Field(
        default_factory=list,
        description="The named rules that shaped the decision (hold-after-scale-down, latency-step, "
        "new-instances, live-demand, fast-rise, time-outs, period, burst-headroom, ski-rental, "
        "learned-capacity), each with its numbers.",
    )
    signals: SignalValues = Field(description="The metric values behind the decision.")
    state: ScalerState = Field(description="State for the next evaluation.")


def instances_for(demand_qps: float, capacity_per_instance: float, target_utilization: float) -> int:
    """Fewest instances that serve `demand_qps` at `target_utilization` of their capacity."""
    ratio = round(demand_qps / (capacity_per_instance * target_utilization), _RATIO_DECIMALS)
    return max(0, math.ceil(ratio))


def _check_inputs(
    current: int,
    ready: int,
    capacity_per_instance: float,
    load_time_seconds: float,
    min_replicas: int,
    max_replicas: int | None,
) -> None:
    if current < 0 or ready < 0:
        raise ValueError(f"current ({current}) and ready ({ready}) cannot be negative")
    if not capacity_per_instance > 0 or math.isinf(capacity_per_instance):
        raise ValueError(f"capacity_per_instance must be a positive number, got {capacity_per_instance}")
    if not load_time_seconds >= 0:
        raise ValueError(f"load_time_seconds cannot be negative, got {load_time_seconds}")
    if min_replicas < 0 or (max_replicas is not None and max_replicas < min_replicas):
        raise ValueError(f"invalid bounds: min {min_replicas}, max {max_replicas}")


def _value(reading: Reading) -> float | None:
    return reading.value if reading.ok else None


def _growth_span(policy: AutoscalingPolicy) -> float:
    return max(_QUEUE_GROWTH_SECONDS, 2.0 * policy.evaluation_interval_seconds)


def _queue_growth(
    waiting: Sequence[tuple[float, float]], waiting_times: Sequence[float], at: float, span: float
) -> float | None:
    """Growth of the waiting queue per second over the `span` seconds before `at`."""
    low = bisect_left(waiting_times, at - span)
    high = bisect_right(waiting_times, at)
    return growth_per_second(waiting[low:high])


def _demand_points(
    window: MetricsWindow,
    waiting: Sequence[tuple[float, float]],
    now: float,
    policy: AutoscalingPolicy,
) -> list[tuple[float, float]]:
    """(time, finished QPS + queue growth) over the trend window: the arrivals the forecast extends."""
    times = [t for t, _ in waiting]
    span = _growth_span(policy)
    points = []
    for time, qps in fresh_points(window, Signal.QPS, now, policy.trend_window_seconds):
        growth = _queue_growth(waiting, times, time, span) if waiting else None
        points.append((time, max(0.0, qps + (growth or 0.0))))
    return points


def _settling(state: ScalerState, ready: int, now: float) -> bool:
    """Whether instances became Ready within the last minute, the window of the latency quantile:
    a p99 over the SLO then is mostly from before they served, no reason to add more."""
    if state.ready_replicas is not None and ready > state.ready_replicas:
        return True
    rose = state.ready_rose_time
    return rose is not None and 0 <= now - rose < _QUEUE_GROWTH_SECONDS


# After its own scale-down the policy holds this long against signals of a rising queue: the removed
# instances' requests queue again on the others for a while, and that is no new demand.
def _after_scale_down(state: ScalerState, policy: AutoscalingPolicy, now: float) -> bool:
    last = state.last_scale_down_time
    return last is not None and 0 <= now - last < _growth_span(policy)


def _throughout(window: MetricsWindow, signal: Signal, now: float, limit: float) -> bool:
    """Whether `signal` stayed above `limit` through the last minute, the one-minute rate's window:
    only then does the rate of finished requests show what saturated instances serve."""
    recent = [v for _, v in fresh_points(window, signal, now, _QUEUE_GROWTH_SECONDS)]
    return len(recent) >= 3 and all(v > limit for v in recent)


def _delayed(ttft: float | None, latency_slo_seconds: float | None) -> bool:
    """Whether first tokens are late enough that a queue means saturation: above half the SLO.

    A queue with prompt first tokens is an uneven spread over the instances, not their limit.
    """
    if ttft is None or latency_slo_seconds is None:
        return True
    return ttft > latency_slo_seconds / 2


def _live_demand(
    window: MetricsWindow,
    state: ScalerState,
    now: float,
    policy: AutoscalingPolicy,
    waiting: float | None,
    growth: float | None,
    horizon: float,
    floor: float,
) -> float | None:
    """Arrivals now, from the running and queued requests rather than a one-minute rate.

    What runs completes at running / time in the batch per second (Little's law, the time learned
    in calm moments); the queue adds its growth over the last two evaluations and the backlog,
    spread over the time new instances take to help.
    """
    running = _value(read_signal(window, Signal.RUNNING_REQUESTS, now, policy.metrics_max_age_seconds))
    if running is None or not state.batch_seconds:
        return None
    live = running / state.batch_seconds
    points = fresh_points(window, Signal.WAITING_REQUESTS, now, 2.0 * policy.evaluation_interval_seconds)
    short = growth_per_second(points)
    if short is not None and short > floor:
        live += short
    elif growth is not None and growth > 0:
        live += growth
    if waiting:
        live += waiting / max(horizon, 1.0)
    return live


def _periodic(state: ScalerState, now: float, horizon: float, slack: float = 0.0) -> float | None:
    """The highest demand of the next `horizon` one period ago, when the traffic repeats; with
    `slack`, of that span widened by `slack` seconds before it."""
    if state.period_seconds is None or state.demand_history is None:
        return None
    # One step more: the history is kept per minute, and a rise inside a step is not in its mean yet.
    # The higher of the last two repetitions: bursts that recur differ in height.
    period, history = state.period_seconds, state.demand_history
    seen = [
        periodic_forecast(history, period, at - slack, horizon + STEP_SECONDS + slack)
        for at in (now, now - period)
    ]
    known = [value for value in seen if value is not None]
    return max(known) if known else None


# One late p99 (not a whole late minute) measures the capacity only below this share of the estimate.
SINGLE_LATE_SHARE = 0.9

# The requests running now, over the time a request runs, are what the instances complete now; when
# that is this much above the one-minute rate of finished requests, the rate lags a rise (a burst
# that began seconds ago): its late first tokens are no measure of capacity, and the step is sized
# from the live rate.
FAST_RISE_SHARE = 1.5

# A demand the history saw one period ago is no surprise: the count serves it at this share of the
# capacity instead of the target's, which holds room for a rise nobody saw coming. The clairvoyant
# bound (gpupool.simulate.bound) holds 1.05 times the load; 1 / 1.05 of the capacity is where a
# known load still meets the SLO with the bound's margin.
PERIODIC_UTILIZATION = 1 / 1.05
# A demand counts as the one the period announced when it is within this share above it.
PERIODIC_TOLERANCE = 0.05
# ... and, one period ago, within this long before the span now (a repetition drifts in time).
PERIODIC_SLACK_SECONDS = 2 * STEP_SECONDS


# A cold start costs the load time on an accelerator serving nothing, and as long again of demand
# served late while it loads: an idle instance is worth keeping for up to twice the load time.
SKI_RENTAL_LOAD_TIMES = 2.0
# When no return of the need was ever seen, the break-even strategy: keep the idle instance about as
# long as a cold start costs, then let it go. That cost lies between one load time (the accelerator
# time alone) and SKI_RENTAL_LOAD_TIMES (with as long again of demand served late); tuned on the
# simulator at 1.5: at 1, the 70B model lost the instance an 8-minute dip in a ramp needed again (5
# points of SLO attainment); at 2, it held a one-off surge's instances for 12 minutes.
SKI_RENTAL_UNSEEN_LOAD_TIMES = 1.5
# When the history shows the need coming back, a cold start after it costs more: the demand the
# count misses while the instance loads again, on top of the load time. The mean wait is weighed
# against this many load times (tuned on the simulator's recurring bursts: at 2, the 8B model shed
# its instances between the first two bursts, 12 minutes apart, and missed the second one).
SKI_RENTAL_RETURN_LOAD_TIMES = 4.0


def _ski_rental(
    state: ScalerState,
    current: int,
    capacity_per_instance: float,
    policy: AutoscalingPolicy,
    load_time_seconds: float,
    now: float,
    utilization: float | None = None,
) -> str | None:
    """Why the instance a scale-down would remove is kept, or None to let it go.

    It is needed again when demand exceeds what one instance fewer serves at the target (or at
    `utilization`, the share the count is sized at when the period announced the demand). With a
    period, the history one period ago says whether that happens within the break-even beyond the
    forecast's horizon (the period rule starts it again one horizon ahead of the need, so a removal
    saves only the time before that); without one, the gaps of the last day between two needs.
    """
    history = state.demand_history
    if history is None:
        return None
    threshold = (current - 1) * capacity_per_instance * (utilization or policy.target_utilization)
    break_even = SKI_RENTAL_LOAD_TIMES * load_time_seconds
    if state.period_seconds is not None:
        ahead = break_even + policy.horizon_seconds(load_time_seconds) + STEP_SECONDS
        repeat = periodic_forecast(history, state.period_seconds, now, ahead)
        if repeat is not None:
            if repeat <= threshold:
                return None
            return (
                f"ski-rental: {repeat:.1f} QPS, more than {current - 1} instance(s) serve, came within "
                f"{ahead:.0f} s one period ago (the forecast's horizon and a break-even of "
                f"{SKI_RENTAL_LOAD_TIMES:g} load times): keeping {current}"
            )
    values = history.complete()
    since = since_reached(values, threshold)
    if since is None:
        return None
    wait = residual_wait(values, threshold, since)
    if wait is None:
        # No return seen after so long: the break-even strategy keeps an idle instance about as
        # long as a cold start costs, then lets it go (paying a small multiple of the best choice
        # in hindsight at most, whenever the need comes back).
        unseen = SKI_RENTAL_UNSEEN_LOAD_TIMES * load_time_seconds
        if since >= unseen:
            return None
        return (
            f"ski-rental: more than {current - 1} instance(s) were needed {since:.0f} s ago, within the "
            f"break-even of {unseen:.0f} s ({SKI_RENTAL_UNSEEN_LOAD_TIMES:g} load times): keeping {current}"
        )
    returns = SKI_RENTAL_RETURN_LOAD_TIMES * load_time_seconds
    if wait >= returns:
        return None
    return (
        f"ski-rental: more than {current - 1} instance(s) were needed again {wait:.0f} s later on "
        f"average, in the last day's gaps as long as this one ({since:.0f} s so far), within the "
        f"break-even of {returns:.0f} s ({SKI_RENTAL_RETURN_LOAD_TIMES:g} load times when the need "
        f"comes back): keeping {current}"
    )


def _landing(
    window: MetricsWindow,
    state: ScalerState,
    policy: AutoscalingPolicy,
    now: float,
    current: int,
    sized: float,
    capacity_per_instance: float,
    ready: int,
    qps: float | None,
    ttft: float | None,
    latency_slo_seconds: float | None,
) -> int:
    """The count at which the highest demand of the scale-down window sits midway between the two
    thresholds, or `current`.

    A scale-down may land there even when the demand of this evaluation sits inside the band
    between the thresholds, whose trigger (below `scaleDownUtilization`) holds up to a third more
    instances than a steady load needs at the midway point. Only a
    window that covers the whole span says what its highest demand was; with a period, the count
    follows the repetitions (period, ski-rental) and the band's margin is what the next rise lands
    on, so the midway landing stays. When first tokens are already slower than the estimate says
    they should be, the count is sized with what they say one instance serves, so that the
    landing does not saturate the rest.
    """
    span = policy.scale_down_stabilization_seconds
    seen = fresh_points(window, Signal.QPS, now, span)
    covered = bool(seen) and seen[0][0] <= now - span + policy.evaluation_interval_seconds
    if not covered or (policy.predictive and state.period_seconds is not None):
        return current
    highest = max([sized] + [q for _, q in seen])
    slowed = (
        slowdown_capacity(qps / ready, ttft, latency_slo_seconds)
        if ttft is not None and latency_slo_seconds and ready and qps
        else None
    )
    # Never below half the estimate, the learned capacity's own floor: a reading that low is more
    # likely a rate still warming up (or one that underflows, 5e-324 QPS) than an engine that slow.
    floor = CAPACITY_RANGE[0] * capacity_per_instance
    capacity = min(capacity_per_instance, max(floor, slowed)) if slowed is not None else capacity_per_instance
    # Midway between the thresholds for the highest demand: a new high has to beat the window's by
    # a seventh to scale back up, which noise around a steady level does not.
    return instances_for(highest, capacity, (policy.target_utilization + policy.scale_down_utilization) / 2)


def _learned(
    state: ScalerState,
    now: float,
    demand: float,
    horizon: float,
    load_time_seconds: float,
    policy: AutoscalingPolicy,
    plan_capacity: float,
    qps: float,
    ready: int,
    *,
    saturated: bool,
    late: bool,
    overloaded: bool,
    running: float | None,
    calm: bool = False,
    ttft: float | None = None,
    latency_slo_seconds: float | None = None,
) -> ScalerState:
    """The state with this evaluation's demand, capacity and batch time learned."""
    learned = with_history(state, now, demand, horizon, policy.slo_attainment_target)
    update: dict[str, object] = {}
    last = state.events[-1] if state.events else None
    # Instances asked for in the last change have loaded and served for a whole rate window; after
    # a scale-down the rest were serving already, and the rate window is enough.
    wait = _QUEUE_GROWTH_SECONDS + (load_time_seconds if last is None or last.change > 0 else 0.0)
    steady = ready > 0 and (last is None or now - last.time >= wait)
    if steady:
        update["capacity_per_instance"] = measured_capacity(
            state.capacity_per_instance,
            plan_capacity,
            qps / ready,
            saturated=saturated,
            overloaded=overloaded,
            late=late,
        )
        if calm and ttft is not None and latency_slo_seconds:
            # The slowdown of first tokens tells the capacity before (or without) saturation.
            update["capacity_per_instance"] = capacity_from_slowdown(
                update["capacity_per_instance"],  # type: ignore[arg-type]
                plan_capacity,
                qps / ready,
                ttft,
                latency_slo_seconds,
            )
    if running is not None and not overloaded:
        update["batch_seconds"] = measured_batch_seconds(state.batch_seconds, running, qps)
    return learned.model_copy(update=update) if update else learned


def _stabilized(
    state: ScalerState, recommendation: int, current: int, policy: AutoscalingPolicy, now: float
) -> int:
    """The HPA's stabilisation: up to the lowest recent recommendation, down to the highest."""
    up_cutoff = now - policy.scale_up_stabilization_seconds
    down_cutoff = now - policy.scale_down_stabilization_seconds
    up, down = recommendation, recommendation
    for past in state.recommendations:
        if past.time > up_cutoff:
            up = min(up, past.replicas)
        if past.time > down_cutoff:
            down = max(down, past.replicas)
    stabilized = current
    if stabilized < up:
        stabilized = up
    if stabilized > down:
        stabilized = down
    return stabilized


def _rate_limited(
    state: ScalerState, desired: int, current: int, policy: AutoscalingPolicy, now: float
) -> tuple[int, list[str]]:
    limits: list[str] = []
    if desired > current:
        added = state.added_since(now - policy.scale_up_period_seconds)
        allowed = current + max(0, policy.scale_up_step - added)
        if desired > allowed:
            limits.append(
                f"scale-up rate: at most +{policy.scale_up_step} per {policy.scale_up_period_seconds} s "
                f"({added} added in the last {policy.scale_up_period_seconds} s)"
            )
            desired = allowed
    elif desired < current:
        last_up = state.last_scale_up_time
        delay = policy.scale_down_delay_after_scale_up_seconds
        if last_up is not None and now - last_up < delay:
            limits.append(f"cool-down: instances were added {now - last_up:.0f} s ago (wait {delay} s)")
            return current, limits
        removed = state.removed_since(now - policy.scale_down_period_seconds)
        allowed = current - max(0, policy.scale_down_step - removed)
        if desired < allowed:
            limits.append(
                f"scale-down rate: at most -{policy.scale_down_step} per {policy.scale_down_period_seconds} s"
            )
            desired = allowed
    return desired, limits


def _bounded(desired: int, min_replicas: int, max_replicas: int | None) -> tuple[int, list[str]]:
    if desired < min_replicas:
        return min_replicas, [f"minReplicas {min_replicas}"]
    if max_replicas is not None and desired > max_replicas:
        return max_replicas, [f"maxReplicas {max_replicas}"]
    return desired, []


def decide_replicas(
    window: MetricsWindow,
    state: ScalerState,
    current: int,
    ready: int,
    capacity_per_instance: float,
    load_time_seconds: float,
    policy: AutoscalingPolicy,
    now: float,
    *,
    min_replicas: int = 1,
    max_replicas: int | None = None,
    latency_slo_seconds: float | None = None,
) -> ScalingDecision:
    """How many instances the model should run now; see the module docstring for the rules.

    `current` is the instance count asked for so far (Ready or starting), `ready` the instances
    serving, `capacity_per_instance` the plan's QPS per instance, `load_time_seconds` the plan's
    estimate of start-to-serving. The bounds are spec.scaling's (its defaults are these defaults);
    `latency_slo_seconds` is spec.traffic.latencySloMs / 1000.
    """
    _check_inputs(current, ready, capacity_per_instance, load_time_seconds, min_replicas, max_replicas)
    capacity = current * capacity_per_instance
    if not policy.enabled:
        return ScalingDecision(
            desired=current,
            current=current,
            ready=ready,
            recommendation=current,
            direction=Direction.HOLD,
            reason=f"hold at {current}: autoscaling is disabled",
            metrics_available=False,
            signals=SignalValues(capacity_qps=capacity),
            state=state,
        )

    max_age = policy.metrics_max_age_seconds
    use_latency = policy.use_latency_slo and latency_slo_seconds is not None
    used = [Signal.QPS, Signal.WAITING_REQUESTS, Signal.KV_CACHE_USAGE, Signal.ACCELERATOR_UTILIZATION]
    used += [Signal.ERROR_RATE] + ([Signal.TTFT_P99_SECONDS] if use_latency else [])
    readings = {signal: read_signal(window, signal, now, max_age) for signal in used}
    qps = _value(readings[Signal.QPS])
    # No request finished, so none has a latency or can have failed: those gaps are no gaps.
    idle = qps == 0.0
    missing = [
        r.describe()
        for r in readings.values()
        if r.missing and not (idle and r.signal in _PER_REQUEST and r.status is not SignalStatus.INVALID)
    ]
    waiting = _value(readings[Signal.WAITING_REQUESTS])
    kv = _value(readings[Signal.KV_CACHE_USAGE])
    utilization = _value(readings[Signal.ACCELERATOR_UTILIZATION])
    errors = _value(readings[Signal.ERROR_RATE])
    ttft = _value(readings[Signal.TTFT_P99_SECONDS]) if use_latency else None

    plan_capacity = capacity_per_instance
    capacity_per_instance = state.capacity_per_instance or plan_capacity
    capacity = current * capacity_per_instance
    rules: list[str] = []
    if state.capacity_per_instance is not None:
        rules.append(
            f"learned-capacity: {capacity_per_instance:.2f} QPS per instance measured "
            f"(plan {plan_capacity:.2f})"
        )
    horizon = policy.horizon_seconds(load_time_seconds)
    hold = _after_scale_down(state, policy, now)

    # Demand: what finished plus what piled up (arrivals = completions + queue growth), and what is
    # coming. While a backlog drains, completions exceed arrivals and the growth is negative.
    span = _growth_span(policy)
    waiting_points = (
        fresh_points(window, Signal.WAITING_REQUESTS, now, policy.trend_window_seconds + span)
        if waiting is not None
        else []
    )
    waiting_times = [t for t, _ in waiting_points]
    floor = QUEUE_GROWTH_FLOOR_SHARE * capacity_per_instance
    measured_growth: float | None = None
    if waiting is not None:
        measured_growth = _queue_growth(waiting_points, waiting_times, now, span)
    growth = measured_growth
    if growth is not None and abs(growth) < floor:
        growth = 0.0
    if hold and growth is not None and growth > 0:
        rules.append(
            f"hold-after-scale-down: queue growing {growth:.1f}/s within {span:.0f} s of removing "
            "instances is their requests queueing again, not new demand"
        )
        growth = 0.0
    draining = growth is not None and growth < 0

    # Overload: the primary signals; utilisation only when the policy lets it lead, as vLLM keeps the
    # accelerator busy at a fraction of its capacity (a busy accelerator is no proof of overload).
    overload: list[str] = []
    waiting_per_instance = waiting / max(ready, 1) if waiting is not None else None
    queued = (
        waiting_per_instance is not None and waiting_per_instance > policy.max_waiting_requests_per_instance
    )
    if queued and hold:
        rules.append("hold-after-scale-down: a queue right after removing instances adds none")
    elif queued:
        assert waiting_per_instance is not None
        overload.append(
            f"{waiting_per_instance:.1f} requests waiting per Ready instance "
            f"(limit {policy.max_waiting_requests_per_instance:g})"
        )
    if kv is not None and kv > policy.kv_cache_usage_threshold:
        overload.append(f"KV cache {kv:.0%} full (limit {policy.kv_cache_usage_threshold:.0%})")
    slow = ttft is not None and latency_slo_seconds is not None and ttft > latency_slo_seconds
    settling = _settling(state, ready, now)
    if slow and settling:
        assert ttft is not None and latency_slo_seconds is not None
        rules.append(
            f"new-instances: the p99 time to first token of {ttft * 1000:.0f} ms is over the last "
            f"{_QUEUE_GROWTH_SECONDS:.0f} s, most of it before the instances that became Ready "
            "in that minute served: waiting for it to show them"
        )
    elif slow:
        assert ttft is not None and latency_slo_seconds is not None
        overload.append(
            f"p99 time to first token {ttft * 1000:.0f} ms over the {latency_slo_seconds * 1000:.0f} ms SLO"
        )
    hot = utilization is not None and utilization > policy.accelerator_utilization_up
    if hot and policy.utilization_scales_up:
        overload.append(
            f"accelerator utilisation {utilization:.0%} (limit {policy.accelerator_utilization_up:.0%})"
        )

    forecast: Forecast | None = None
    # The count the ski-rental keeps: a floor on the stabilised count, not a recommendation. As a
    # recommendation, the scale-down window would hold it for another 300 s once its break-even
    # had passed (a 70B flash crowd kept 6 instances 11 minutes after the need for 5 ended).
    keep = 0
    demand: float | None = None
    sized: float | None = None
    live: float | None = None
    expected = False
    running = _value(read_signal(window, Signal.RUNNING_REQUESTS, now, max_age))
    fast_rise = (
        qps is not None
        and running is not None
        and bool(state.batch_seconds)
        and running / (state.batch_seconds or 1.0) > FAST_RISE_SHARE * qps + floor
    )
    if fast_rise:
        assert running is not None and state.batch_seconds and qps is not None
        rules.append(
            f"fast-rise: {running / state.batch_seconds:.1f} QPS complete now ({running:.0f} running "
            f"over {state.batch_seconds:.1f} s each), above the {qps:.1f} QPS of the last minute"
        )
    if qps is not None:
        demand = max(0.0, qps + (growth or 0.0))
        sized = demand
        # The first step after a jump: once instances start, the next step waits for them. A late
        # first token while the live rate runs ahead of the minute's is such a jump too.
        first_step = (queued or (slow and not settling and fast_rise)) and current <= ready
        live = (
            _live_demand(window, state, now, policy, waiting, growth, horizon, floor) if first_step else None
        )
        if live is not None and live > sized and not hold:
            rules.append(f"live-demand: {live:.1f} QPS from the running and queued requests now")
            sized = live
        if policy.predictive:
            forecast = forecast_demand(
                _demand_points(window, waiting_points, now, policy),
                window.qps_history_timestamps,
                window.qps_history,
                now,
                horizon,
                season_seconds=policy.seasonal_period_seconds,
                trend_window_seconds=policy.trend_window_seconds,
                max_growth=policy.predictive_max_growth,
            )
            repeat = _periodic(state, now, horizon)
            # What runs now is within what one period ago announced: the trend of a repeated burst's
            # rise is that burst, no reason to size beyond it.
            # A repetition drifts by a minute or two: the demand of now one period ago is what
            # announced it, as much as the next horizon's.
            announced = _periodic(state, now, horizon, PERIODIC_SLACK_SECONDS)
            expected = announced is not None and sized <= announced * (1 + PERIODIC_TOLERANCE)
            if forecast is not None and not expected:
                ahead = forecast.value if not hold else max(forecast.level, forecast.seasonal or 0.0)
                sized = max(sized, ahead)
            if repeat is not None and repeat > sized:
                assert state.period_seconds is not None
                rules.append(
                    f"period: {repeat:.1f} QPS within {horizon:.0f} s one period "
                    f"({state.period_seconds:.0f} s) ago"
                )
                sized = repeat

    pending = current - ready
    # An overload signal says "more", not how much: one step (scaleUpStep), then wait for it.
    step_up = current + policy.scale_up_step if overload and pending <= 0 and not draining else current
    late_only = (
        slow and not settling and not queued and not (kv is not None and kv > policy.kv_cache_usage_threshold)
    )
    if step_up > current and late_only and ready and demand is not None:
        # First tokens late with no queue: the Ready instances are at the SLO's edge, so what they
        # finish is about what they serve within it. Size the step from that, not a fixed one.
        finished = (qps or 0.0) / ready
        edge = min(capacity_per_instance, finished)
        if edge * policy.target_utilization > 0:
            fitted = max(current + 1, instances_for(demand, edge, policy.target_utilization))
        else:
            # Late with nothing finished (or a rate whose share of the target underflows to 0):
            # one more instance, then look again. Never more than with a rate to size from, so
            # that more load never asks for fewer instances.
            fitted = current + 1
        if fitted < step_up:
            rules.append(
                f"latency-step: first tokens late at {finished:.2f} QPS per Ready instance: "
                f"{fitted} instance(s) serve {demand:.1f} QPS at {policy.target_utilization:.0%} of that"
            )
            step_up = fitted
    load: float | None = None
    notes: list[str] = []
    if overload and pending > 0:
        notes.append(f"{pending} instance(s) still starting: waiting for them before adding more")
    elif overload and draining:
        notes.append("the queue is shrinking: the current instances are catching up")
    if demand is not None and sized is not None:
        # A demand the period announced is sized nearer the capacity than one nobody saw coming.
        sized_at = max(policy.target_utilization, PERIODIC_UTILIZATION) if expected else None
        needed = instances_for(sized, capacity_per_instance, sized_at or policy.target_utilization)
        if sized_at is not None and needed < instances_for(
            sized, capacity_per_instance, policy.target_utilization
        ):
            rules.append(
                f"period: {sized:.1f} QPS is what one period ago announced, served at {sized_at:.0%} "
                f"of the capacity ({needed} instance(s))"
            )
        rise = state.burst_rise_qps if policy.predictive else None
        if rise is not None:
            # A rise on top of a demand already risen is bounded by the highest demand seen.
            seen = max(state.demand_history.values) if state.demand_history else math.inf
            burst = instances_for(min(demand + rise, max(seen, demand)), capacity_per_instance, 1.0)
            # The history knows how far demand rose within a load time at the SLO's quantile: that
            # rise on top of the demand, at the bound's margin, is the room the count needs, not the
            # target's fixed fifth.
            lean = min(sized + rise, max(seen, sized))
            known = instances_for(lean, capacity_per_instance, PERIODIC_UTILIZATION)
            if burst > needed:
                rules.append(
                    f"burst-headroom: {burst} instance(s) absorb the rise of {rise:.1f} QPS within "
                    f"{horizon:.0f} s that {policy.slo_attainment_target:.1%} of the last day stayed within"
                )
                needed = burst
            elif known < needed and sized_at is None and not overload:
                rules.append(
                    f"burst-headroom: {known} instance(s) serve {sized:.1f} QPS and the rise of "
                    f"{rise:.1f} QPS within {horizon:.0f} s that {policy.slo_attainment_target:.1%} of "
                    f"the last day stayed within ({lean:.1f} QPS) at {PERIODIC_UTILIZATION:.0%} of the "
                    "capacity, instead of the target's margin"
                )
                needed = known
                sized_at = PERIODIC_UTILIZATION
        timing_out = errors is not None and errors > policy.max_error_rate
        if needed > current and pending > 0 and timing_out:
            # Requests time out while instances start: the finished rate counts each time-out and
            # then its retry, arrivals that go once the starting instances serve. Add more only
            # for demand beyond what the asked count serves at full capacity.
            full = instances_for(sized, capacity_per_instance, 1.0)
            if full < needed:
                rules.append(
                    f"time-outs: {errors:.0%} of requests time out while {pending} instance(s) start, "
                    f"and their retries inflate the demand: sizing {sized:.1f} QPS at full capacity "
                    f"({full} instance(s))"
                )
                needed = full
        load = sized / capacity if capacity > 0 else (math.inf if sized > 0 else 0.0)
        fewer = _landing(
            window,
            state,
            policy,
            now,
            current,
            sized,
            capacity_per_instance,
            ready,
            qps,
            ttft,
            latency_slo_seconds,
        )
        cold = utilization is not None and utilization < policy.accelerator_utilization_down
        if needed > current or overload:
            recommendation = max(needed, step_up, current)
        elif (
            load < policy.scale_down_utilization or cold or fewer < current or (sized_at and needed < current)
        ):
            blockers = []
            if missing:
                blockers.append("metrics are missing")
            if errors is not None and errors > policy.max_error_rate:
                blockers.append(f"error rate {errors:.1%} is above {policy.max_error_rate:.0%}")
            if blockers:
                recommendation = current
                notes.append("no scale-down while " + " and ".join(blockers))
            else:
                # Land where the load sits between the two thresholds, not on the scale-up one:
                # scaling down to exactly what the target needs would put the next small rise
                # over it, and the count would swing back and forth.
                settled = (
                    needed
                    if sized_at is not None
                    else instances_for(
                        sized,
                        capacity_per_instance,
                        (policy.target_utilization + policy.scale_down_utilization) / 2,
                    )
                )
                recommendation = min(
                    current, max(needed, min(settled, fewer) if fewer < current else settled)
                )
                if recommendation < current and policy.predictive:
                    kept = _ski_rental(
                        state, current, capacity_per_instance, policy, load_time_seconds, now, sized_at
                    )
                    if kept is not None:
                        rules.append(kept)
                        keep = current
        else:
            recommendation = current
    else:
        recommendation = step_up

    # A late p99 for a whole minute; or, with neither a queue nor a full KV cache, one late p99 at
    # a steady count that finishes clearly less than the estimate per instance: the instances are
    # at the SLO's edge now (the overload step that follows changes the count, so a whole late
    # minute rarely comes). Near the estimate, or while the trend rises, one late minute is as
    # likely a one-minute rate that lags a rising load.
    rising = fast_rise or (
        forecast is not None and forecast.trend is not None and forecast.trend > forecast.level
    )
    edge_now = (
        late_only
        and not rising
        and bool(ready)
        and (qps or 0.0) / max(ready, 1) < SINGLE_LATE_SHARE * capacity_per_instance
    )
    late = slow and (
        edge_now or _throughout(window, Signal.TTFT_P99_SECONDS, now, latency_slo_seconds or 0.0)
    )
    saturated_queue = (
        _throughout(window, Signal.WAITING_REQUESTS, now, policy.max_waiting_requests_per_instance * ready)
        and (growth or 0.0) > 0
        and _delayed(ttft, latency_slo_seconds)
    )
    if qps is not None and demand is not None:
        # While requests time out, each is counted once as it ends and once more as its client
        # retries: a share e of time-outs among the finished is arrivals x (1 + e). The history
        # keeps the arrivals, so that the period, the headroom and the ski-rental do not remember
        # a need the retries made up.
        arrivals = demand / (1 + errors) if errors is not None and errors > policy.max_error_rate else demand
        state = _learned(
            state,
            now,
            arrivals,
            horizon,
            load_time_seconds,
            policy,
            plan_capacity,
            qps,
            ready,
            # A queue draining a backlog makes first tokens late at any rate: no measure of capacity.
            saturated=ready == current
            and not hold
            and not draining
            and not settling
            and (late or saturated_queue),
            late=late,
            overloaded=bool(overload) or queued,
            running=running,
            calm=ready == current and not overload and not queued and not draining and not hold,
            ttft=ttft,
            latency_slo_seconds=latency_slo_seconds,
        )

    stabilized = max(keep, _stabilized(state, recommendation, current, policy, now))
    limits: list[str] = []
    if stabilized != recommendation and stabilized != keep:
        if recommendation < current:
            limits.append(
                f"stabilisation: {stabilized} recommended within the last "
                f"{policy.scale_down_stabilization_seconds} s"
            )
        elif recommendation > current:
            limits.append(
                f"stabilisation: {stabilized} recommended within the last "
                f"{policy.scale_up_stabilization_seconds} s"
            )
    desired, rate_limits = _rate_limited(state, stabilized, current, policy, now)
    desired, bound_limits = _bounded(desired, min_replicas, max_replicas)
    limits += rate_limits + bound_limits

    signals = SignalValues(
        qps=qps,
        queue_growth_per_second=measured_growth,
        forecast_qps=forecast.value if forecast is not None else None,
        demand_qps=demand,
        capacity_qps=capacity,
        load=load if load is None or math.isfinite(load) else None,
        waiting_per_instance=waiting_per_instance,
        kv_cache_usage=kv,
        accelerator_utilization=utilization,
        ttft_p99_seconds=ttft,
        error_rate=errors,
    )
    direction = Direction.UP if desired > current else Direction.DOWN if desired < current else Direction.HOLD
    reason = _reason(
        direction,
        current,
        desired,
        qps,
        growth,
        forecast,
        demand,
        load,
        capacity_per_instance,
        policy,
        overload,
        missing,
        notes,
        limits,
        rules,
    )
    new_state = state.recorded(now, recommendation, current, desired, policy.history_seconds, ready)
    return ScalingDecision(
        desired=desired,
        current=current,
        ready=ready,
        recommendation=recommendation,
        direction=direction,
        reason=reason,
        metrics_available=not missing,
        missing=missing,
        overload=overload,
        limits=limits,
        rules=rules,
        signals=signals,
        state=new_state,
    )


def _reason(
    direction: Direction,
    current: int,
    desired: int,
    qps: float | None,
    growth: float | None,
    forecast: Forecast | None,
    demand: float | None,
    load: float | None,
    capacity_per_instance: float,
    policy: AutoscalingPolicy,
    overload: list[str],
    missing: list[str],
    notes: list[str],
    limits: list[str],
    rules: list[str],
) -> str:
    head = {
        Direction.UP: f"scale up {current} -> {desired}",
        Direction.DOWN: f"scale down {current} -> {desired}",
        Direction.HOLD: f"hold at {current}",
    }[direction]
    parts: list[str] = []
    if demand is not None and qps is not None and load is not None:
        sources = [f"{qps:.1f} QPS finished"]
        if growth:
            sources.append(f"queue {'growing' if growth > 0 else 'shrinking'} {abs(growth):.1f}/s")
        if forecast is not None:
            sources.append(forecast.describe())
        capacity = current * capacity_per_instance
        share = f"{load:.0%}" if math.isfinite(load) else "more than all"
        parts.append(
            f"demand {demand:.1f} QPS ({'; '.join(sources)}) is {share} of the {capacity:.1f} QPS "
            f"{current} instance(s) serve at {capacity_per_instance:.2f} QPS each (scale up above "
            f"{policy.target_utilization:.0%}, down below {policy.scale_down_utilization:.0%})"
        )
    if overload:
        parts.append("overloaded: " + "; ".join(overload))
    if missing:
        parts.append("metrics unavailable: " + "; ".join(missing) + " - never scaling down without them")
    parts += rules + notes
    if limits:
        parts.append("limited by " + "; ".join(limits))
    return head + (": " + ". ".join(parts) if parts else "")
