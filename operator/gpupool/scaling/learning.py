"""What the policy learns from its own evaluations, kept in `ScalerState` so a restart keeps it.

- The demand history (one value a minute, a day at most), and from it, every `LEARN_EVERY_SECONDS`,
  the period of the traffic and the burst rise at the SLO's quantile (gpupool.scaling.history).
- The real capacity of an instance: the plan's QPS per instance is an estimate from the model's
  shape and the accelerator's datasheet, and a real engine can serve 30% less or more. When the
  instances are saturated (a queue over its limit that keeps growing, or a p99 time to first token
  over the SLO, for a whole minute, or one late p99 with no queue well under the estimate) with
  every instance Ready, what they finish per instance is their capacity (less the margin between
  saturation and the SLO when it is the queue that shows it); when they finish more than the
  estimate without any sign of overload, they serve at least that, and the slowdown of their first
  tokens says how much more they would serve (`capacity_from_slowdown`, upwards only). The estimate
  stays within `CAPACITY_RANGE` of the plan, and is measured only in a steady moment: every asked
  instance Ready, loaded and serving for the whole last minute, whose requests the one-minute rate
  counts, and no backlog draining.
- The time a request spends running (running requests over QPS, Little's law), which turns the
  live running count into a rate that reacts at once, where a one-minute rate lags.
"""

from __future__ import annotations

from gpupool.scaling.history import detect_period, new_history, rise_quantile
from gpupool.scaling.state import ScalerState

# The window of the rates the policy reads (rate(...[1m]) in the operator's queries).
RATE_WINDOW_SECONDS = 60.0
# Period and burst rise are learned again every 10 minutes: the scans cost tens of milliseconds.
LEARN_EVERY_SECONDS = 600.0
# vLLM's queue starts to grow at saturation, some 10% above the rate at which the p99 time to first
# token still meets the SLO (the margin the plan's "QPS within the SLO" leaves).
SATURATION_TO_SLO = 0.9
# A prefill shares the accelerator with the decode batch: its time grows as 1 / (1 - rho), the
# slowdown of a processor-sharing server (M/M/1-PS). With the SLO met exactly at the plan's capacity,
# 1 / 1.1 of saturation, the p99 first token of an idle instance is this share of the SLO.
IDLE_TTFT_SHARE_OF_SLO = 1 - 1 / 1.1
# Below a third of saturation the slowdown is within the noise of a one-minute quantile: no reading.
MIN_SLOWDOWN = 1.5
# A quantile of one minute's requests is noisy: each reading moves the estimate this far.
SLOWDOWN_SMOOTHING = 0.2
# The learned capacity stays between half and twice the plan's: a guard against a misread window.
CAPACITY_RANGE = (0.5, 2.0)
# A higher throughput without overload moves the estimates this far: two or three evaluations to
# settle, one outlier cannot swing it up.
SMOOTHING = 0.5


def with_history(
    state: ScalerState, now: float, demand: float, horizon: float, quantile: float
) -> ScalerState:
    """`state` with `demand` added to its history, and the period and burst rise relearned when due."""
    # The demand is a one-minute rate: the mean of the minute before now, so it belongs to its middle.
    at = now - RATE_WINDOW_SECONDS / 2
    history = (
        new_history(at, demand) if state.demand_history is None else state.demand_history.added(at, demand)
    )
    update: dict[str, object] = {"demand_history": history}
    if state.learned_at is None or now - state.learned_at >= LEARN_EVERY_SECONDS:
        values = history.complete()
        found = detect_period(values)
        period = found[0] if found is not None else None
        update |= {
            "learned_at": now,
            "period_seconds": period,
            "burst_rise_qps": rise_quantile(values, horizon, quantile, period),
        }
    return state.model_copy(update=update)


def measured_capacity(
    estimate: float | None,
    plan: float,
    per_instance_qps: float,
    *,
    saturated: bool,
    overloaded: bool,
    late: bool = False,
) -> float | None:
    """The new capacity estimate from one evaluation's QPS per Ready instance, or the old one.

    `saturated`: a queue that keeps up or a latency over the SLO, every asked instance Ready;
    `late`: it is the latency (the SLO's own edge: what they finish is their capacity within it,
    no margin to take off); `overloaded`: any overload signal at all (then a high QPS proves
    nothing).
    """
    current = plan if estimate is None else estimate
    low, high = CAPACITY_RANGE[0] * plan, CAPACITY_RANGE[1] * plan
    if saturated and per_instance_qps >= low:
        # Below half the plan, saturation is more likely something else (a rate still warming up,
        # an engine restarting) than an engine that slow: the measurement is left out.
        # Saturation below the estimate is proof the estimate is too high: taken at once.
        seen = per_instance_qps * (1.0 if late else SATURATION_TO_SLO)
        if seen < current:
            return max(low, seen)
    elif not overloaded and current < per_instance_qps <= high:
        # Above twice the plan the window is more likely misread (requests counted from instances
        # already gone) than the engine that fast.
        return current + SMOOTHING * (per_instance_qps - current)
    return estimate


def slowdown_capacity(per_instance_qps: float, ttft_p99: float, slo: float) -> float | None:
    """What one instance serves within the SLO, from the slowdown of its first tokens, or None.

    At utilisation rho of the saturation rate S, the p99 first token is idle / (1 - rho), with idle =
    IDLE_TTFT_SHARE_OF_SLO x the SLO; so S = qps / (1 - idle / p99), and the p99 meets the SLO at
    rho = 1 - idle / slo. None outside MIN_SLOWDOWN times the idle latency .. the SLO, where a
    one-minute quantile says too little.
    """
    idle = IDLE_TTFT_SHARE_OF_SLO * slo
    if per_instance_qps <= 0 or not MIN_SLOWDOWN * idle <= ttft_p99 <= slo:
        return None
    saturation = per_instance_qps / (1 - idle / ttft_p99)  # ttft_p99 >= 1.5 idle: no division by 0
    return saturation * (1 - IDLE_TTFT_SHARE_OF_SLO)


def capacity_from_slowdown(
    estimate: float | None, plan: float, per_instance_qps: float, ttft_p99: float, slo: float
) -> float | None:
    """The capacity estimate moved towards what the slowdown of first tokens says, or the old one.

    Read only in a calm moment (every asked instance Ready, no overload, no queue draining): it
    learns a capacity above the plan's, which instances sized at the target never show by
    saturating. Only upwards: the p99 of a minute that still holds a burst's queue, or interpolated
    in vLLM's coarse buckets above 100 ms (0.1, 0.25, 0.5 s), reads high, so the capacity low; a
    capacity below the plan shows itself by saturation (measured_capacity).
    """
    high = CAPACITY_RANGE[1] * plan
    # Above twice the plan per instance, the window is more likely misread than the engine that fast.
    seen = slowdown_capacity(per_instance_qps, ttft_p99, slo) if per_instance_qps <= high else None
    current = plan if estimate is None else estimate
    if seen is None or seen <= current:
        return estimate
    return min(high, current + SLOWDOWN_SMOOTHING * (seen - current))


def measured_batch_seconds(estimate: float | None, running: float, qps: float) -> float | None:
    """Seconds a request runs, from running requests and QPS in a steady moment (no queue)."""
    if qps <= 0 or running <= 0:
        return estimate
    seen = running / qps
    return seen if estimate is None else estimate + SMOOTHING * (seen - estimate)
