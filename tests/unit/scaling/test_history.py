"""The policy's demand history: bounded, and what it tells of period, rises and waits."""

from __future__ import annotations

import math

import pytest

from gpupool.scaling.history import (
    MAX_POINTS,
    STEP_SECONDS,
    detect_period,
    new_history,
    residual_wait,
    rise_quantile,
    since_reached,
)


def test_one_value_a_minute_and_never_more_than_a_day() -> None:
    history = new_history(0.0, 10.0)
    history = history.added(30.0, 20.0)  # same minute: the mean
    assert history.values == [15.0] and history.filling_count == 2
    history = history.added(185.0, 30.0)  # two minutes skipped: the last value fills them
    assert history.values == [15.0, 15.0, 15.0, 30.0] and history.complete() == [15.0, 15.0, 15.0]
    for minute in range(4, MAX_POINTS + 100):
        history = history.added(minute * STEP_SECONDS, 1.0 / 3)
    assert len(history.values) == MAX_POINTS
    assert history.end == (MAX_POINTS + 100) * STEP_SECONDS
    assert history.values[-1] == 0.3333  # four significant digits keep the status small


def test_finds_a_period_of_minutes_and_of_hours() -> None:
    bursts = [60.0 if i % 17 < 3 else 10.0 for i in range(240)]
    found = detect_period(bursts)
    assert found is not None and found[0] == 17 * STEP_SECONDS
    waves = [50 + 40 * math.sin(2 * math.pi * i / 300) for i in range(MAX_POINTS)]
    found = detect_period(waves)
    assert found is not None and abs(found[0] - 300 * STEP_SECONDS) <= 10 * STEP_SECONDS


@pytest.mark.parametrize(
    "values",
    [
        [10.0] * 120 + [80.0] * 120,  # a step: a new level correlates at every short lag
        [float(i) for i in range(240)],  # a ramp
        [30.0] * 240,  # nothing at all
    ],
)
def test_a_step_a_ramp_or_a_flat_line_has_no_period(values: list[float]) -> None:
    assert detect_period(values) is None


def test_noise_around_a_steady_level_has_no_period() -> None:
    # A level of 24 QPS with +-5% of noise that repeats every 5 minutes correlates perfectly at that
    # lag, but it swings by 10% of the median, under the 25% a pattern needs.
    noise = [24.0 * (1 + 0.05 * math.sin(2 * math.pi * i / 5)) for i in range(30)]
    assert detect_period(noise) is None
    # A start-up minute far off the level is no swing either (the 10th to 90th percentile).
    assert detect_period([60.0, *noise]) is None
    # The same shape at +-30% is a pattern.
    waves = [24.0 * (1 + 0.3 * math.sin(2 * math.pi * i / 5)) for i in range(30)]
    found = detect_period(waves)
    assert found is not None and found[0] == 5 * STEP_SECONDS


def test_rise_quantile_needs_enough_history_for_one_rise_to_be_in_the_tail() -> None:
    # One rise of 70 QPS within a 3-minute horizon in two hours: 117 moments, 1% of which is
    # 1.2, fewer than the 3 moments one rise spans: no headroom from it.
    once = [10.0] * 60 + [80.0] * 5 + [10.0] * 55
    assert rise_quantile(once, 180.0, 0.99) is None
    # Twice, at 95%: 6 of the 117 moments rise 70 QPS, more than the 5% tail (5.9 moments).
    twice = [10.0] * 30 + [80.0] * 5 + [10.0] * 30 + [80.0] * 5 + [10.0] * 50
    assert rise_quantile(twice, 180.0, 0.95) == 70.0
    # With a period that saw each rise coming, no headroom is needed.
    repeated = [80.0 if i % 20 < 3 else 10.0 for i in range(1000)]
    assert rise_quantile(repeated, 180.0, 0.99, period=20 * STEP_SECONDS) == 0.0
    assert rise_quantile(repeated, 180.0, 0.99) == 70.0


def test_since_the_need_was_last_reached() -> None:
    values = [70.0, 10.0, 10.0, 70.0, 10.0, 70.0, 10.0, 10.0]
    assert since_reached(values, 64.0) == 2 * STEP_SECONDS
    assert since_reached([10.0] * 5, 64.0) is None


def test_what_is_left_of_the_gaps_as_long_as_the_current_one() -> None:
    # Gaps between two needs of 1, 1 and 4 minutes.
    values = [70.0, 10.0, 70.0, 10.0, 70.0, 10.0, 10.0, 10.0, 10.0, 70.0, 10.0, 10.0]
    assert since_reached(values, 64.0) == 2 * STEP_SECONDS
    # Just after a need, every gap counts: (60 + 60 + 240) / 3.
    assert residual_wait(values, 64.0, 0.0) == pytest.approx(120.0)
    # Two minutes in, only the 4-minute gap is as long: 2 minutes of it are left.
    assert residual_wait(values, 64.0, 2 * STEP_SECONDS) == pytest.approx(120.0)
    assert residual_wait(values, 64.0, 1 * STEP_SECONDS) == pytest.approx(180.0)
    # Longer than any gap seen, or no gap between two needs at all: nothing to say.
    assert residual_wait(values, 64.0, 4 * STEP_SECONDS) is None
    assert residual_wait([10.0] * 30 + [70.0] * 5 + [10.0] * 3, 64.0, 0.0) is None
