"""What the policy learns from its own evaluations, kept in `ScalerState` so a restart keeps it.

- The demand history (one value a minute, a day at most), and from it, every `LEARN_EVERY_SECONDS`,
  the period of the traffic and the burst rise at the SLO's quantile (gpupool.scaling.history).
- The real capacity of an instance: the plan's QPS per instance is an estimate from the model's
  shape and the accelerator's datasheet, and a real engine can serve 30% less or more. When the
  instances are saturated (a queue over its limit that keeps growing, or a p99 time to first token
  over the SLO, for a whole minute) with every instance Ready, what they finish per instance is
  their capacity (less the margin between saturation and the SLO when it is the queue that shows
  it); when they finish more than the estimate without any sign of overload, they serve at least
  that. The estimate stays within `CAPACITY_RANGE` of the plan, and is measured only in a steady
  moment: every asked instance Ready, loaded and serving for the whole last minute, whose requests
  the one-minute rate counts, and no backlog draining.
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


def measured_batch_seconds(estimate: float | None, running: float, qps: float) -> float | None:
    """Seconds a request runs, from running requests and QPS in a steady moment (no queue)."""
    if qps <= 0 or running <= 0:
        return estimate
    seen = running / qps
    return seen if estimate is None else estimate + SMOOTHING * (seen - estimate)
