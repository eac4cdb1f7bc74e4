"""A small traffic forecaster: a sustained trend, and the same time one seasonal period ago.

Model loading takes minutes (DOMAIN §4), so an instance asked for when the load arrives is Ready
only after the peak has begun. The policy therefore sizes for the demand forecast at
`now + horizon`, where the horizon is the load time plus one evaluation interval.

Two forecasts, the larger wins (it is only ever used to add capacity or to hold it):

- trend: the trend window is cut in three parts and a least-squares line fitted to each; the
  trend is the smallest of the slopes, and only when every one rises significantly. A ramp rises
  in every part; a step (smeared over a minute by the rate) rises in one or two and ends flat: it
  is a new level, not a trend, and extrapolating it would overshoot; noise rarely rises
  significantly three times in a row. The forecast is the level (the newest line at the newest
  point) plus that slope times the horizon, capped at `max_growth` times the level so that no
  slope asks for an absurd count.
- seasonal naive with level adjustment: today's level plus how much the traffic rose over the same
  horizon one period ago, `level + (y(now + h - m) - y(now - m))`, read from the coarse history by
  linear interpolation (the additive seasonal term of Holt-Winters with a seasonal-naive estimate).
  It needs no cap: it only repeats a rise that happened.

Pure Python, no fitted state: the same inputs give the same forecast.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Forecast:
    """Demand expected `horizon_seconds` from now, and the parts it came from."""

    value: float
    level: float
    horizon_seconds: float
    trend: float | None
    seasonal: float | None

    def describe(self) -> str:
        parts = []
        if self.trend is not None:
            parts.append(f"trend {self.trend:.1f}")
        if self.seasonal is not None:
            parts.append(f"same time last period {self.seasonal:.1f}")
        return f"forecast {self.value:.1f} QPS in {self.horizon_seconds:.0f} s ({', '.join(parts)})"


@dataclass(frozen=True)
class Line:
    """A least-squares line: slope, value at the newest point, standard error of the slope."""

    slope: float
    level: float
    slope_error: float


def fit_line(points: Sequence[tuple[float, float]]) -> Line | None:
    """The least-squares line through (time, value) points, or None with fewer than 3 points."""
    n = len(points)
    if n < 3:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    if var_t <= 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var_t
    intercept = mean_v - slope * mean_t
    residual = sum((v - intercept - slope * t) ** 2 for t, v in points)
    slope_error = (residual / (n - 2) / var_t) ** 0.5 if n > 2 else float("inf")
    return Line(slope=slope, level=intercept + slope * points[-1][0], slope_error=slope_error)


# A slope counts when it exceeds this many standard errors. The samples are 1-minute rates taken
# every 15 s, so neighbours overlap and the least-squares error, which assumes independent samples,
# is too small by about the square root of the 4 samples per rate window: 2 x 2.
SIGNIFICANT_ERRORS = 4.0
# The trend window is cut into this many parts, each of which must rise.
TREND_PARTS = 3


def sustained_trend(
    points: Sequence[tuple[float, float]], window_seconds: float
) -> tuple[float, float] | None:
    """(slope, level) of a rise sustained over every part of the window, slope 0 when there is none;
    None when the points cover less than three quarters of the window."""
    if len(points) < 3 * TREND_PARTS or points[-1][0] - points[0][0] < 0.75 * window_seconds:
        return None
    end = points[-1][0]
    part = window_seconds / TREND_PARTS
    lines = []
    for index in range(TREND_PARTS):
        low, high = end - (TREND_PARTS - index) * part, end - (TREND_PARTS - index - 1) * part
        line = fit_line([p for p in points if low < p[0] <= high])
        if line is None:
            return None
        lines.append(line)
    level = max(0.0, lines[-1].level)
    rising = all(line.slope > 0 and line.slope > SIGNIFICANT_ERRORS * line.slope_error for line in lines)
    return (min(line.slope for line in lines) if rising else 0.0), level


def interpolate(times: Sequence[float], values: Sequence[float], at: float) -> float | None:
    """Linear interpolation of a series sorted by time; None outside its span."""
    if not times or at < times[0] or at > times[-1]:
        return None
    i = bisect_left(times, at)
    if times[i] == at:
        return values[i]
    t0, t1 = times[i - 1], times[i]
    v0, v1 = values[i - 1], values[i]
    return v0 + (v1 - v0) * (at - t0) / (t1 - t0)


def forecast_demand(
    recent: Sequence[tuple[float, float]],
    history_times: Sequence[float],
    history_values: Sequence[float],
    now: float,
    horizon_seconds: float,
    *,
    season_seconds: float,
    trend_window_seconds: float,
    max_growth: float,
) -> Forecast | None:
    """Demand at `now + horizon_seconds`, or None without recent points.

    `recent` are (time, QPS) points of the trend window, oldest first; the history is the coarse
    QPS series over at least one season.
    """
    if not recent:
        return None
    fitted = sustained_trend(recent, trend_window_seconds)
    trend: float | None = None
    if fitted is not None:
        slope, level = fitted
        ahead = horizon_seconds + (now - recent[-1][0])
        trend = min(level + slope * ahead, max_growth * level)
    else:
        level = max(0.0, recent[-1][1])

    seasonal: float | None = None
    before = interpolate(history_times, history_values, now - season_seconds)
    later = interpolate(history_times, history_values, now + horizon_seconds - season_seconds)
    if before is not None and later is not None:
        seasonal = max(0.0, level + (later - before))

    candidates = [v for v in (trend, seasonal) if v is not None]
    return Forecast(
        value=max(candidates) if candidates else level,
        level=level,
        horizon_seconds=horizon_seconds,
        trend=trend,
        seasonal=seasonal,
    )
