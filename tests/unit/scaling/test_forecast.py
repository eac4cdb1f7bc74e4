"""The forecaster: lines, sustained trends (not steps, not noise), and last period's rise."""

from __future__ import annotations

import random

import pytest

from gpupool.scaling.forecast import fit_line, forecast_demand, interpolate, sustained_trend

NOW = 10_000.0


def points(f: object, seconds: float = 300.0) -> list[tuple[float, float]]:
    assert callable(f)
    return [(NOW - seconds + 15 * i, float(f(NOW - seconds + 15 * i))) for i in range(int(seconds / 15) + 1)]


def test_fit_line_is_exact_on_a_line() -> None:
    line = fit_line([(0.0, 1.0), (10.0, 3.0), (20.0, 5.0)])
    assert line is not None
    assert line.slope == pytest.approx(0.2) and line.level == pytest.approx(5.0)
    assert line.slope_error == pytest.approx(0.0)
    assert fit_line([(0.0, 1.0), (1.0, 2.0)]) is None


def test_a_ramp_is_a_trend() -> None:
    found = sustained_trend(points(lambda t: 10 + 0.1 * (t - NOW)), 300)
    assert found is not None
    slope, level = found
    assert slope == pytest.approx(0.1) and level == pytest.approx(10.0)


def test_a_step_is_a_new_level_not_a_trend() -> None:
    # A jump from 20 to 60 QPS 150 s ago, smeared over a minute by the rate.
    step = lambda t: 20 + 40 * min(1.0, max(0.0, (t - (NOW - 150)) / 60))  # noqa: E731
    assert sustained_trend(points(step), 300) == (0.0, pytest.approx(60.0))


def test_noise_is_not_a_trend() -> None:
    rng = random.Random(7)
    trends = [sustained_trend(points(lambda t: 50 * (1 + rng.uniform(-0.2, 0.2))), 300) for _ in range(200)]
    assert sum(1 for found in trends if found and found[0] > 0) <= 2


def test_too_little_history_gives_no_trend() -> None:
    assert sustained_trend(points(lambda t: t, seconds=120), 300) is None


def test_forecast_extends_the_trend_over_the_horizon_with_a_cap() -> None:
    ramp = points(lambda t: 10 + 0.1 * (t - NOW))
    forecast = forecast_demand(
        ramp, [], [], NOW, 100, season_seconds=86_400, trend_window_seconds=300, max_growth=3
    )
    assert forecast is not None and forecast.value == pytest.approx(20.0)  # 10 + 0.1 x 100
    capped = forecast_demand(
        ramp, [], [], NOW, 1000, season_seconds=86_400, trend_window_seconds=300, max_growth=3
    )
    assert capped is not None and capped.value == pytest.approx(30.0)  # 3 x 10


def test_forecast_repeats_last_periods_rise() -> None:
    flat = points(lambda t: 30.0)
    day = 86_400.0
    history = ([NOW - day - 300, NOW - day, NOW - day + 200, NOW - day + 600], [25.0, 25.0, 45.0, 45.0])
    forecast = forecast_demand(
        flat, *history, NOW, 200, season_seconds=day, trend_window_seconds=300, max_growth=3
    )
    assert forecast is not None
    assert forecast.seasonal == pytest.approx(50.0)  # 30 now + (45 - 25) yesterday
    assert forecast.value == pytest.approx(50.0)
    assert "same time last period 50.0" in forecast.describe()


def test_interpolate() -> None:
    assert interpolate([0.0, 10.0], [0.0, 100.0], 2.5) == 25.0
    assert interpolate([0.0, 10.0], [0.0, 100.0], 11.0) is None
