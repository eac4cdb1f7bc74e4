"""decide_canary(): step, promote, hold or roll back from what a canary step measured."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gpupool.api.crd import model_deployment_crd
from gpupool.api.rollout import RolloutSpec, RolloutStrategy
from gpupool.services.rollout import CanaryAction, CanaryState, StepMeasurement, decide_canary

GOOD = StepMeasurement(
    canary_requests=500, canary_errors=1, canary_ttft_p99_seconds=0.22, stable_ttft_p99_seconds=0.2
)


def spec(**fields: Any) -> RolloutSpec:
    return RolloutSpec.model_validate(fields)


def test_defaults_are_the_platform_ladder_and_limits() -> None:
    rollout = spec()
    assert rollout.strategy is RolloutStrategy.CANARY
    assert rollout.steps == [5, 25, 100]
    assert rollout.analysis.max_ttft_p99_increase_percent == 20
    assert rollout.analysis.max_error_rate_percent == 1


@pytest.mark.parametrize("steps", [[5, 25], [25, 5, 100], [5, 5, 100], [0, 100], [5, 101], []])
def test_steps_must_increase_and_end_at_100(steps: list[int]) -> None:
    with pytest.raises(ValidationError):
        spec(steps=steps)


def test_schema_checks_steps_and_ranges() -> None:
    schema = model_deployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rollout = schema["properties"]["spec"]["properties"]["rollout"]
    rules = [r["rule"] for r in rollout["x-kubernetes-validations"]]
    assert any("isSorted()" in r and "== 100" in r for r in rules)
    steps = rollout["properties"]["steps"]
    assert steps["x-kubernetes-list-type"] == "set"
    assert (steps["items"]["minimum"], steps["items"]["maximum"]) == (1, 100)
    analysis = rollout["properties"]["analysis"]["properties"]
    assert analysis["maxErrorRatePercent"]["maximum"] == 100
    assert analysis["maxTtftP99IncreasePercent"]["minimum"] == 0


def test_a_step_that_holds_its_limits_long_enough_moves_on_then_promotes() -> None:
    rollout = spec()
    first = decide_canary(rollout, CanaryState(0, 0.0), GOOD, now=301.0)
    assert (first.action, first.weight, first.state) == (CanaryAction.STEP, 25, CanaryState(1, 301.0))
    second = decide_canary(rollout, first.state, GOOD, now=602.0)
    assert (second.action, second.weight) == (CanaryAction.PROMOTE, 100)


def test_waits_for_time_and_requests() -> None:
    rollout = spec()
    assert decide_canary(rollout, CanaryState(0, 0.0), GOOD, now=10.0).action is CanaryAction.WAIT
    few = StepMeasurement(50, 0, 0.2, 0.2)
    waiting = decide_canary(rollout, CanaryState(0, 0.0), few, now=1000.0)
    assert waiting.action is CanaryAction.WAIT and "50 of 100 requests" in waiting.reason


def test_errors_or_slower_first_tokens_roll_back() -> None:
    rollout = spec()
    errors = decide_canary(rollout, CanaryState(1, 0.0), StepMeasurement(200, 3, 0.2, 0.2), now=5.0)
    assert errors.action is CanaryAction.ROLLBACK and errors.weight == 0 and "1.50%" in errors.reason
    slow = decide_canary(rollout, CanaryState(0, 0.0), StepMeasurement(200, 0, 0.25, 0.2), now=5.0)
    assert slow.action is CanaryAction.ROLLBACK and "25% above" in slow.reason
    # Exactly at the limit holds.
    edge = decide_canary(rollout, CanaryState(0, 0.0), StepMeasurement(200, 2, 0.24, 0.2), now=400.0)
    assert edge.action is CanaryAction.STEP


def test_abort_pause_and_missing_metrics() -> None:
    assert decide_canary(spec(abort=True), CanaryState(), GOOD, now=1e6).action is CanaryAction.ROLLBACK
    paused = decide_canary(spec(paused=True), CanaryState(), GOOD, now=1e6)
    assert paused.action is CanaryAction.HOLD and paused.weight == 5
    blind = decide_canary(spec(), CanaryState(), StepMeasurement(500, 0, None, 0.2), now=1e6)
    assert blind.action is CanaryAction.HOLD and "canary p99" in blind.reason
    no_stable = decide_canary(spec(), CanaryState(), StepMeasurement(500, 0, 0.2, 0.0), now=1e6)
    assert no_stable.action is CanaryAction.HOLD


def test_a_single_step_of_100_promotes_at_once() -> None:
    assert (
        decide_canary(spec(steps=[100]), CanaryState(), StepMeasurement(), now=0.0).action
        is CanaryAction.PROMOTE
    )


ladders = st.lists(st.integers(1, 99), max_size=6, unique=True).map(lambda s: [*sorted(s), 100])
measurements = st.builds(
    StepMeasurement,
    st.none() | st.integers(0, 10_000),
    st.none() | st.integers(0, 10_000),
    st.none() | st.floats(0, 10, allow_nan=False),
    st.none() | st.floats(0, 10, allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=ladders,
    step=st.integers(-2, 8),
    measured=measurements,
    since=st.floats(0, 1e6),
    now=st.floats(0, 2e6),
    paused=st.booleans(),
    abort=st.booleans(),
)
def test_the_canary_never_skips_a_step_nor_moves_unmeasured(
    steps: list[int],
    step: int,
    measured: StepMeasurement,
    since: float,
    now: float,
    paused: bool,
    abort: bool,
) -> None:
    if paused and abort:
        paused = False
    rollout = spec(steps=steps, paused=paused, abort=abort)
    decision = decide_canary(rollout, CanaryState(step, since), measured, now)
    assert decision.weight in (0, *steps)
    if abort:
        assert decision.action is CanaryAction.ROLLBACK
    if decision.action is CanaryAction.ROLLBACK:
        assert decision.weight == 0
    if decision.action in (CanaryAction.STEP, CanaryAction.PROMOTE) and len(steps) > 1:
        # Forward by one step only, never while paused, and only on full, measured evidence.
        assert not paused
        assert decision.state.step <= min(max(step, 0), len(steps) - 2) + 1
        assert measured.canary_requests is not None and measured.canary_requests >= rollout.min_step_requests
        assert measured.canary_ttft_p99_seconds is not None and measured.stable_ttft_p99_seconds
        assert now - since >= rollout.min_step_seconds
    if decision.action is CanaryAction.PROMOTE:
        assert decision.weight == 100
