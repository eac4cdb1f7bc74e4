"""Decide a canary's next move from what its analysis measured: wait, step, promote or roll back.

Pure and total: `decide_canary` takes the rollout spec, where the canary stands (its step and since
when) and the measured values of the step so far, and returns the decision with the state it leads
to and why, with the numbers. The controller (reading Prometheus, shifting traffic) calls it; the
clock is a parameter.

Rules, in order:
1. `abort`: roll back.
2. A limit broken over at least `minStepRequests` of the canary's requests: roll back. The error
   rate must stay within `maxErrorRatePercent`; the canary's p99 time to first token within
   `maxTtftP99IncreasePercent` above the stable version's.
3. `paused`: hold the step.
4. Missing values (no measurement yet, a stable version that served nothing to compare with):
   hold; a canary never moves on what was not measured.
5. The step has lasted `minStepSeconds` and served `minStepRequests`: the next step, or, when the
   next is 100%, promotion (at 100% there is no stable version left to compare with).
6. Otherwise: wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpupool.api.rollout import RolloutSpec


class CanaryAction(StrEnum):
    WAIT = "Wait"
    HOLD = "Hold"
    STEP = "Step"
    PROMOTE = "Promote"
    ROLLBACK = "RollBack"


@dataclass(frozen=True)
class CanaryState:
    """Where a canary stands: the index of its step in `spec.steps`, and when the step began
    (seconds on the caller's clock)."""

    step: int = 0
    since: float = 0.0


@dataclass(frozen=True)
class StepMeasurement:
    """What the analysis measured of the current step (None: not measured)."""

    canary_requests: int | None = None
    canary_errors: int | None = None
    canary_ttft_p99_seconds: float | None = None
    stable_ttft_p99_seconds: float | None = None


@dataclass(frozen=True)
class CanaryDecision:
    action: CanaryAction
    state: CanaryState
    weight: int  # the canary's share of the traffic after the decision, in percent
    reason: str


def _breach(spec: RolloutSpec, m: StepMeasurement) -> str | None:
    """The limit the step broke, judged once it has served its minimum of requests; None if none."""
    if m.canary_requests is None or m.canary_requests < max(spec.min_step_requests, 1):
        return None
    limits = spec.analysis
    if m.canary_errors is not None:
        rate = 100.0 * m.canary_errors / m.canary_requests
        if rate > limits.max_error_rate_percent:
            return (
                f"error rate {rate:.2f}% over {m.canary_requests} requests exceeds "
                f"{limits.max_error_rate_percent:g}%"
            )
    canary, stable = m.canary_ttft_p99_seconds, m.stable_ttft_p99_seconds
    if canary is not None and stable is not None and stable > 0:
        ceiling = stable * (1 + limits.max_ttft_p99_increase_percent / 100)
        if canary > ceiling:
            rise = 100 * (canary / stable - 1)
            return (
                f"p99 time to first token {canary * 1000:.0f} ms is {rise:.0f}% above the stable "
                f"{stable * 1000:.0f} ms (limit {limits.max_ttft_p99_increase_percent:g}%)"
            )
    return None


def _missing(m: StepMeasurement) -> list[str]:
    missing = []
    if m.canary_requests is None:
        missing.append("canary requests")
    if m.canary_errors is None:
        missing.append("canary errors")
    if m.canary_ttft_p99_seconds is None:
        missing.append("canary p99 time to first token")
    if m.stable_ttft_p99_seconds is None or m.stable_ttft_p99_seconds <= 0:
        missing.append("stable p99 time to first token")
    return missing


def decide_canary(
    spec: RolloutSpec, state: CanaryState, measured: StepMeasurement, now: float
) -> CanaryDecision:
    """The canary's next move. `state.step` outside the steps is taken as the last one below 100."""
    last = len(spec.steps) - 1
    step = min(max(state.step, 0), max(last - 1, 0))
    state = CanaryState(step, state.since)
    weight = spec.steps[step]
    if spec.abort:
        return CanaryDecision(CanaryAction.ROLLBACK, state, 0, "rollout.abort is set")
    if last == 0:
        return CanaryDecision(
            CanaryAction.PROMOTE, CanaryState(0, now), 100, "rollout.steps is [100]: promoted"
        )
    breach = _breach(spec, measured)
    if breach is not None:
        return CanaryDecision(CanaryAction.ROLLBACK, state, 0, f"step {weight}%: {breach}")
    if spec.paused:
        return CanaryDecision(CanaryAction.HOLD, state, weight, f"rollout.paused holds step {weight}%")
    missing = _missing(measured)
    if missing:
        return CanaryDecision(
            CanaryAction.HOLD, state, weight, f"step {weight}% holds: no measurement of {', '.join(missing)}"
        )
    elapsed = max(now - state.since, 0.0)
    served = measured.canary_requests or 0
    if elapsed < spec.min_step_seconds or served < spec.min_step_requests:
        return CanaryDecision(
            CanaryAction.WAIT,
            state,
            weight,
            f"step {weight}%: {elapsed:.0f} of {spec.min_step_seconds} s, {served} of "
            f"{spec.min_step_requests} requests",
        )
    if step + 1 >= last:
        return CanaryDecision(
            CanaryAction.PROMOTE,
            CanaryState(last, now),
            100,
            f"step {weight}% held its limits over {elapsed:.0f} s and {served} requests: promoted",
        )
    following = spec.steps[step + 1]
    return CanaryDecision(
        CanaryAction.STEP,
        CanaryState(step + 1, now),
        following,
        f"step {weight}% held its limits over {elapsed:.0f} s and {served} requests: on to {following}%",
    )
