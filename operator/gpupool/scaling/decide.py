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
   (`scaleUpStep`) more, unless instances are still starting or the queue is already shrinking; below
   `scaleDownUtilization` (or accelerator utilisation below its down threshold), the count the
   target needs, when nothing is missing or overloaded.
   Without traffic metrics, only present primary overload signals can scale up (one step at a
   time, waiting for starting instances), and nothing scales down.
4. Stabilise as the HPA does: scale up to the lowest and down to the highest recommendation of
   their windows.
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

    # Demand: what finished plus what piled up (arrivals = completions + queue growth), and what is
    # coming. While a backlog drains, completions exceed arrivals and the growth is negative.
    span = _growth_span(policy)
    waiting_points = (
        fresh_points(window, Signal.WAITING_REQUESTS, now, policy.trend_window_seconds + span)
        if waiting is not None
        else []
    )
    growth: float | None = None
    if waiting is not None:
        growth = _queue_growth(waiting_points, [t for t, _ in waiting_points], now, span)
    draining = growth is not None and growth < 0
    forecast: Forecast | None = None
    demand: float | None = None
    if qps is not None:
        demand = max(0.0, qps + (growth or 0.0))
        if policy.predictive:
            forecast = forecast_demand(
                _demand_points(window, waiting_points, now, policy),
                window.qps_history_timestamps,
                window.qps_history,
                now,
                policy.horizon_seconds(load_time_seconds),
                season_seconds=policy.seasonal_period_seconds,
                trend_window_seconds=policy.trend_window_seconds,
                max_growth=policy.predictive_max_growth,
            )
            if forecast is not None:
                demand = max(demand, forecast.value)

    # Overload: the primary signals; utilisation only when the policy lets it lead, as vLLM keeps the
    # accelerator busy at a fraction of its capacity (a busy accelerator is no proof of overload).
    overload: list[str] = []
    waiting_per_instance = waiting / max(ready, 1) if waiting is not None else None
    if waiting_per_instance is not None and waiting_per_instance > policy.max_waiting_requests_per_instance:
        overload.append(
            f"{waiting_per_instance:.1f} requests waiting per Ready instance "
            f"(limit {policy.max_waiting_requests_per_instance:g})"
        )
    if kv is not None and kv > policy.kv_cache_usage_threshold:
        overload.append(f"KV cache {kv:.0%} full (limit {policy.kv_cache_usage_threshold:.0%})")
    if ttft is not None and latency_slo_seconds is not None and ttft > latency_slo_seconds:
        overload.append(
            f"p99 time to first token {ttft * 1000:.0f} ms over the {latency_slo_seconds * 1000:.0f} ms SLO"
        )
    hot = utilization is not None and utilization > policy.accelerator_utilization_up
    if hot and policy.utilization_scales_up:
        overload.append(
            f"accelerator utilisation {utilization:.0%} (limit {policy.accelerator_utilization_up:.0%})"
        )

    pending = current - ready
    # An overload signal says "more", not how much: one step (scaleUpStep), then wait for it.
    step_up = current + policy.scale_up_step if overload and pending <= 0 and not draining else current
    load: float | None = None
    notes: list[str] = []
    if overload and pending > 0:
        notes.append(f"{pending} instance(s) still starting: waiting for them before adding more")
    elif overload and draining:
        notes.append("the queue is shrinking: the current instances are catching up")
    if demand is not None:
        needed = instances_for(demand, capacity_per_instance, policy.target_utilization)
        load = demand / capacity if capacity > 0 else (math.inf if demand > 0 else 0.0)
        cold = utilization is not None and utilization < policy.accelerator_utilization_down
        if load > policy.target_utilization or overload:
            recommendation = max(needed, step_up, current)
        elif load < policy.scale_down_utilization or cold:
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
                settled = instances_for(
                    demand,
                    capacity_per_instance,
                    (policy.target_utilization + policy.scale_down_utilization) / 2,
                )
                recommendation = min(current, max(needed, settled))
        else:
            recommendation = current
    else:
        recommendation = step_up

    stabilized = _stabilized(state, recommendation, current, policy, now)
    limits: list[str] = []
    if stabilized != recommendation:
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
        queue_growth_per_second=growth,
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
    )
    new_state = state.recorded(now, recommendation, current, desired, policy.history_seconds)
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
    parts += notes
    if limits:
        parts.append("limited by " + "; ".join(limits))
    return head + (": " + ". ".join(parts) if parts else "")
