"""Reading a signal from a window: fresh, gap, stale, nonsensical, not exported; and the state."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from gpupool.scaling import MetricsWindow, ScalerState, Signal, SignalStatus, read_signal
from gpupool.scaling.window import fresh_points, growth_per_second

NOW = 1_000.0


def qps(values: list[float], times: list[float] | None = None) -> MetricsWindow:
    times = times if times is not None else [NOW - 15 * (len(values) - 1 - i) for i in range(len(values))]
    return MetricsWindow(timestamps=times, qps=values)


class TestReadSignal:
    def test_newest_fresh_value(self) -> None:
        reading = read_signal(qps([1.0, 2.0, 3.0]), Signal.QPS, NOW + 5, 60)
        assert reading.ok and reading.value == 3.0 and reading.age_seconds == 5

    def test_nan_is_a_gap_skipped_for_an_older_fresh_sample(self) -> None:
        reading = read_signal(qps([1.0, 2.0, math.nan]), Signal.QPS, NOW, 60)
        assert reading.value == 2.0

    def test_statuses(self) -> None:
        assert read_signal(MetricsWindow(), Signal.QPS, NOW, 60).status is SignalStatus.NOT_EXPORTED
        assert read_signal(qps([]), Signal.QPS, NOW, 60).status is SignalStatus.NO_SAMPLES
        assert read_signal(qps([math.nan] * 3), Signal.QPS, NOW, 60).status is SignalStatus.NO_SAMPLES
        stale = read_signal(qps([1.0, 2.0]), Signal.QPS, NOW + 200, 60)
        assert stale.status is SignalStatus.STALE and stale.age_seconds == 200
        assert "200 s old" in stale.describe()

    @pytest.mark.parametrize(
        ("signal", "value"),
        [(Signal.QPS, -1.0), (Signal.QPS, math.inf), (Signal.KV_CACHE_USAGE, 1.5), (Signal.ERROR_RATE, 2.0)],
    )
    def test_nonsensical_values_invalidate_the_signal(self, signal: Signal, value: float) -> None:
        window = MetricsWindow.model_validate({"timestamps": [NOW - 15, NOW], signal.value: [0.5, value]})
        reading = read_signal(window, signal, NOW, 60)
        assert reading.status is SignalStatus.INVALID and reading.missing

    def test_samples_from_the_future_are_invalid(self) -> None:
        reading = read_signal(qps([1.0], times=[NOW + 3600]), Signal.QPS, NOW, 60)
        assert reading.status is SignalStatus.INVALID and "future" in reading.detail


def test_series_must_align_with_the_timestamps() -> None:
    with pytest.raises(ValidationError, match="2 samples for 3 timestamps"):
        MetricsWindow(timestamps=[1, 2, 3], qps=[1.0, 2.0])


def test_growth_over_fresh_points() -> None:
    window = MetricsWindow(timestamps=[NOW - 60, NOW - 30, NOW], waiting_requests=[0.0, math.nan, 30.0])
    points = fresh_points(window, Signal.WAITING_REQUESTS, NOW, 60)
    assert points == [(NOW - 60, 0.0), (NOW, 30.0)]
    assert growth_per_second(points) == 0.5
    assert growth_per_second(points[:1]) is None


def test_state_keeps_only_what_its_windows_can_see() -> None:
    state = ScalerState()
    state = state.recorded(100.0, 3, current=2, desired=3, keep_seconds=300)
    state = state.recorded(200.0, 5, current=3, desired=5, keep_seconds=300)
    state = state.recorded(450.0, 1, current=5, desired=4, keep_seconds=300)
    # The recommendation and event of t=100 are older than 300 s at t=450.
    assert [r.time for r in state.recommendations] == [200.0, 450.0]
    assert state.added_since(0) == 2 and state.removed_since(0) == 1
    assert (state.last_scale_up_time, state.last_scale_down_time) == (200.0, 450.0)
    assert ScalerState.model_validate_json(state.model_dump_json()) == state
